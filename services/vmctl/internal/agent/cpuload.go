package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"stratuslab.dev/platform/store"
	cimiv1 "stratuslab.dev/proto/stratus/cimi/v1"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/vmctl/internal/hosts"
	"stratuslab.dev/services/vmctl/internal/hypervisor"
	"stratuslab.dev/services/vmctl/internal/machine"
)

// cpuStep is how far a machine's CPU use must move, in points, before it
// is written again: each write is a document revision and an event, and
// describe-instance needs no finer grain.
const cpuStep = 5

// cpuSample is a domain's CPU time at one moment.
type cpuSample struct {
	at   time.Time
	used time.Duration
}

// cpuMeter turns the CPU time of each domain, read at every heartbeat,
// into the share of one CPU it used since the previous heartbeat, as
// describe-instance's cpu% column showed it.
type cpuMeter struct {
	mu    sync.Mutex
	last  map[string]cpuSample
	shown map[string]int // what was last written for each machine
}

func newCPUMeter() *cpuMeter {
	return &cpuMeter{last: map[string]cpuSample{}, shown: map[string]int{}}
}

// observe records what doms had used at now and returns the percentage of
// each running domain also seen at the previous observation.
func (c *cpuMeter) observe(now time.Time, doms []hypervisor.DomainStatus) map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	seen := make(map[string]bool, len(doms))
	for _, d := range doms {
		seen[d.UUID] = true
		prev, ok := c.last[d.UUID]
		c.last[d.UUID] = cpuSample{at: now, used: d.CPUTime}
		wall, used := now.Sub(prev.at), d.CPUTime-prev.used
		// A counter that went back is a domain started again.
		if !ok || d.State != hypervisor.Running || wall <= 0 || used < 0 {
			continue
		}
		out[d.UUID] = int((used*100 + wall/2) / wall)
	}
	for id := range c.last {
		if !seen[id] {
			delete(c.last, id)
			delete(c.shown, id)
		}
	}
	return out
}

// worthShowing returns the percentages that moved by cpuStep points or
// more from what was last written.
func (c *cpuMeter) worthShowing(usage map[string]int) map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for id, v := range usage {
		if shown, ok := c.shown[id]; !ok || max(v-shown, shown-v) >= cpuStep {
			out[id] = v
		}
	}
	return out
}

// markShown records that v was written for machine id.
func (c *cpuMeter) markShown(id string, v int) {
	c.mu.Lock()
	c.shown[id] = v
	c.mu.Unlock()
}

// showCPU writes the CPU use of the machines running here whose use moved
// enough, and announces each change. A machine that is not running here,
// or was written meanwhile, waits for the next heartbeat.
func (a *Agent) showCPU(ctx context.Context, usage map[string]int) error {
	if a.cfg.Machines == nil {
		return nil
	}
	for id, v := range a.cpu.worthShowing(usage) {
		doc, err := a.cfg.Machines.Get(ctx, machine.ID(id))
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		m, err := machine.Decode(doc.Body)
		if err != nil || m.DetailedState != machine.Running || m.Host != hosts.DocumentID(a.cfg.HostID) {
			continue
		}
		if m.CPUPercent == v {
			a.cpu.markShown(id, v)
			continue
		}
		m.CPUPercent = v
		body, err := m.Encode()
		if err != nil {
			return err
		}
		if _, err := a.cfg.Machines.Put(ctx, machine.ID(id), body, doc.Revision); errors.Is(err, store.ErrConflict) {
			continue
		} else if err != nil {
			return fmt.Errorf("vmctl agent: write the CPU use of machine %s: %w", id, err)
		}
		a.cpu.markShown(id, v)
		view := *m
		view.Command = ""
		data, _ := json.Marshal(&view)
		ev := &cimiv1.ResourceChanged{Kind: machine.Kind, Id: machine.ID(id), Json: data}
		msgID := fmt.Sprintf("%s.%d", id, doc.Revision+1)
		if err := a.cfg.Bus.Publish(ctx, subject.Event(subject.Vmctl, subject.ResourceMachine, subject.EventUpdated), ev, msgID); err != nil {
			a.log.Warn("cannot announce a machine's change", "machine", id, "error", err)
		}
	}
	return nil
}
