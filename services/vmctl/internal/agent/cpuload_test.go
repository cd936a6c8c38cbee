package agent

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"

	"stratuslab.dev/services/vmctl/internal/hosts"
	"stratuslab.dev/services/vmctl/internal/hypervisor"
	"stratuslab.dev/services/vmctl/internal/machine"
)

func TestCPUMeter(t *testing.T) {
	t0 := time.Date(2026, 11, 22, 10, 0, 0, 0, time.UTC)
	run := func(id string, used time.Duration) hypervisor.DomainStatus {
		return hypervisor.DomainStatus{UUID: id, State: hypervisor.Running, CPUTime: used}
	}
	tests := []struct {
		name  string
		steps [][]hypervisor.DomainStatus // one observation every 2 s
		want  string                      // percentages at the last one
	}{
		{"first sight", [][]hypervisor.DomainStatus{{run("a", time.Hour)}}, "map[]"},
		{"half a CPU", [][]hypervisor.DomainStatus{{run("a", time.Hour)}, {run("a", time.Hour+time.Second)}}, "map[a:50]"},
		{"two busy CPUs", [][]hypervisor.DomainStatus{{run("a", 0)}, {run("a", 4*time.Second)}}, "map[a:200]"},
		{"idle", [][]hypervisor.DomainStatus{{run("a", time.Second)}, {run("a", time.Second)}}, "map[a:0]"},
		{"started again", [][]hypervisor.DomainStatus{{run("a", time.Hour)}, {run("a", time.Second)}}, "map[]"},
		{"not running", [][]hypervisor.DomainStatus{{run("a", 0)}, {{UUID: "a", State: hypervisor.Shutoff, CPUTime: time.Second}}}, "map[]"},
		{"gone then back", [][]hypervisor.DomainStatus{{run("a", 0)}, {}, {run("a", time.Second)}}, "map[]"},
		{"each its own", [][]hypervisor.DomainStatus{{run("a", 0), run("b", 0)}, {run("a", time.Second), run("b", 2*time.Second)}}, "map[a:50 b:100]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newCPUMeter()
			var got map[string]int
			for i, doms := range tt.steps {
				got = c.observe(t0.Add(time.Duration(i)*2*time.Second), doms)
			}
			if s := fmt.Sprint(got); s != tt.want {
				t.Errorf("got %s, want %s", s, tt.want)
			}
		})
	}
}

func TestCPUWorthShowing(t *testing.T) {
	c := newCPUMeter()
	c.markShown("a", 50)
	c.markShown("b", 50)
	got := c.worthShowing(map[string]int{"a": 54, "b": 45, "c": 0})
	if s := fmt.Sprint(got); s != "map[b:45 c:0]" {
		t.Errorf("worth showing %s, want b (moved 5 points) and c (never shown)", s)
	}
}

// TestHeartbeatShowsCPU: the heartbeat writes the CPU use of the machines
// running on its host, once it moved, and leaves the others alone.
// libvirt's test driver counts a domain's CPU time as the wall clock, so a
// running domain uses one CPU.
func TestHeartbeatShowsCPU(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	if err := e.agent.Register(ctx); err != nil {
		t.Fatal(err)
	}
	mk := func(state machine.Detailed, host string) string {
		id := uuid.NewString()
		if err := e.hv.Define(ctx, hypervisor.Domain{UUID: id, Name: "stratus-" + id, CPU: 1, MemoryMiB: 64}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = e.hv.Destroy(ctx, id); _ = e.hv.Undefine(ctx, id) })
		if err := e.hv.Start(ctx, id); err != nil {
			t.Fatal(err)
		}
		m := &machine.Machine{ID: machine.ID(id), UUID: id, Owner: "alice", Type: "t1.micro", Host: hosts.DocumentID(host)}
		m.SetState(state, "", time.Now())
		body, _ := m.Encode()
		if _, err := e.machines.Create(ctx, m.ID, body); err != nil {
			t.Fatal(err)
		}
		return id
	}
	here, stopping, elsewhere := mk(machine.Running, "h1"), mk(machine.Shutdown, "h1"), mk(machine.Running, "h2")
	read := func(id string) (*machine.Machine, uint64) {
		doc, err := e.machines.Get(ctx, machine.ID(id))
		if err != nil {
			t.Fatal(err)
		}
		m, err := machine.Decode(doc.Body)
		if err != nil {
			t.Fatal(err)
		}
		return m, doc.Revision
	}
	for range 2 {
		if _, err := e.agent.heartbeat(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
	}
	m, rev := read(here)
	if m.CPUPercent < 80 || m.CPUPercent > 120 {
		t.Errorf("the running machine shows %d%% of a CPU, want about 100", m.CPUPercent)
	}
	for _, id := range []string{stopping, elsewhere} {
		if m, _ := read(id); m.CPUPercent != 0 {
			t.Errorf("machine %s (%s on %s) shows %d%%, want nothing written", id, m.DetailedState, m.Host, m.CPUPercent)
		}
	}
	// The same use again is not written again.
	time.Sleep(500 * time.Millisecond)
	if _, err := e.agent.heartbeat(ctx); err != nil {
		t.Fatal(err)
	}
	if _, again := read(here); again != rev {
		t.Errorf("an unchanged CPU use was written again (revision %d → %d)", rev, again)
	}
}
