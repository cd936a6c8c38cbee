package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"stratuslab.dev/client/sdk"
)

var vmLine = regexp.MustCompile(`(?m)^ :: Machine 1 \(vm ID: (\d+)\)$`)

// TestMachines runs the installation tutorial's "Virtual Machine Check"
// and the guide's "Manage a VM" with the CLI against the all-in-one (test
// driver): run, watch it reach Running, describe, kill, Done — and checks
// the disk and address come back.
func TestMachines(t *testing.T) {
	c := newCloud(t)
	c.start()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	base := strings.TrimSuffix(c.endpoint, "/cimi/cloudEntryPoint")
	admin := sdk.New(base, sdk.WithBasicAuth("admin", adminPassword(t, c)))
	waitAdmin(ctx, t, admin)
	create(ctx, t, admin, "User", map[string]any{
		"username": "alice", "password": "alice-secret-pw", "enabled": true,
		"first-name": "alice", "last-name": "Tester", "email": "alice@example.org",
	})
	alice := newCLI(t, base, "alice", "alice-secret-pw")

	if out := alice.run(0, "stratus-describe-instance"); strings.TrimSpace(out) != "id  state     vcpu memory    cpu% host/ip                 name" {
		t.Errorf("describe-instance on a new cloud:\n%q", out)
	}
	disk := diskLine.FindStringSubmatch(alice.run(0, "stratus-create-volume", "--size", "1", "--tag", "root"))[1]
	out := alice.run(0, "stratus-run-instance", disk)
	m := vmLine.FindStringSubmatch(out)
	if m == nil || !strings.Contains(out, " Public ip: ") || !strings.Contains(out, ":: Done!") {
		t.Fatalf("stratus-run-instance printed:\n%s", out)
	}
	vm := m[1]
	eventually(ctx, t, "the machine to be Running", func() bool {
		return strings.Contains(alice.run(0, "stratus-describe-instance", vm), "Running")
	})
	out = alice.run(0, "stratus-describe-instance")
	// cpu%: 0 until the agent's second heartbeat, then about one CPU's
	// worth (the test driver counts a domain's CPU time as the clock's).
	if !regexp.MustCompile(`(?m)^` + vm + ` +Running +1 +1572864 +\d+ +vm-\d+\.\S+ +one-` + vm + `$`).MatchString(out) {
		t.Errorf("describe-instance of a running m1.small:\n%s", out)
	}
	if out := alice.run(0, "stratus-describe-volumes", disk); !strings.Contains(out, "users: 1") {
		t.Errorf("the root disk is not held by the machine:\n%s", out)
	}
	alice.run(0, "stratus-kill-instance", vm)
	eventually(ctx, t, "the machine to be Done", func() bool {
		return strings.Contains(alice.run(0, "stratus-describe-instance", vm), "Done")
	})
	if out := alice.run(0, "stratus-describe-volumes", disk); !strings.Contains(out, "users: 0") {
		t.Errorf("the root disk is still held after the kill:\n%s", out)
	}

	// Bad input: a 400 with a clear message, nothing allocated.
	asAlice := sdk.New(base, sdk.WithBasicAuth("alice", "alice-secret-pw"))
	before := countMachines(ctx, t, asAlice)
	for _, body := range []map[string]any{
		{"image": disk, "type": "m9.huge"},
		{"image": disk, "cpu": 0},
		{"image": disk, "ram": 1 << 30},
		{"image": "not-an-image"},
		{},
		{"image": disk, "context": []map[string]any{{"key": "BAD KEY", "value": "x"}}},
		{"image": disk, "userData": strings.Repeat("x", 20<<10) + randomText(40<<10)},
		{"image": disk, "network": "moon"},
		{"image": disk, "volatileDisks": []int{0}},
		{"image": disk, "colour": "blue"},
	} {
		_, err := asAlice.Create(ctx, "Machine", body)
		var e *sdk.Error
		if !errors.As(err, &e) || e.Status != http.StatusBadRequest || e.Message == "" {
			t.Errorf("create %.100v: %v, want a 400 with a message", body, err)
		}
	}
	// A body just under the gateway's bound (1 MiB), which cannot travel
	// to vmctl in one message of the bus once the command wraps it.
	body := map[string]any{"image": disk, "userData": ""}
	enc, _ := json.Marshal(body)
	body["userData"] = strings.Repeat("x", 1<<20-64-len(enc))
	_, err := asAlice.Create(ctx, "Machine", body)
	var e *sdk.Error
	if !errors.As(err, &e) || e.Status != http.StatusRequestEntityTooLarge || !strings.Contains(e.Message, "too large") {
		t.Errorf("create with a body of 1 MiB less 64 bytes: %v, want a 413 saying it is too large", err)
	}
	if got := countMachines(ctx, t, asAlice); got != before {
		t.Errorf("bad input made machines: %d, then %d", before, got)
	}
	if err := c.stop(); err != nil {
		t.Error(err)
	}
}

func countMachines(ctx context.Context, t *testing.T, c *sdk.Client) int {
	t.Helper()
	n, _, err := c.Query(ctx, "Machine", sdk.Query{})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// randomText is incompressible text, so that user data passes the limit
// after gzip too.
func randomText(n int) string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	b := make([]byte, n)
	x := uint32(2463534242)
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = alphabet[x%uint32(len(alphabet))]
	}
	return string(b)
}

// TestHostLost runs the scheduler in the all-in-one and the only agent as
// its own process: a machine placed on that host is Running; when the
// agent stops answering, its host is declared lost after host-lost-after
// and the machine shows Unknown, its resources still held; an agent that
// answers again brings its machines back to Running, one that died
// (SIGKILL) leaves them Unknown until killed.
func TestHostLost(t *testing.T) {
	c := newCloud(t)
	c.start(func(cmd *exec.Cmd) { cmd.Args = append(cmd.Args, "--vmctl-roles", "scheduler") })
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	base := strings.TrimSuffix(c.endpoint, "/cimi/cloudEntryPoint")
	admin := sdk.New(base, sdk.WithBasicAuth("admin", adminPassword(t, c)))
	waitAdmin(ctx, t, admin)
	create(ctx, t, admin, "ServiceConfiguration", map[string]any{"service": "vmctl", "host-lost-after": "5s"})

	agent := exec.Command(vmctlBinary, "--nats-url", c.natsURL(), "--data-dir", t.TempDir(), "--admin-listen", "127.0.0.1:0",
		"--config", os.DevNull, "--vmctl-roles", "agent", "--instance", "node-7")
	agent.Stderr = &lockedBuffer{}
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = agent.Process.Kill(); _ = agent.Wait() }()
	eventually(ctx, t, "the agent's host", func() bool {
		n, _, err := admin.Query(ctx, "Host", sdk.Query{Filter: "state='AVAILABLE'"})
		return err == nil && n == 1
	})
	disk := create(ctx, t, admin, "Volume", map[string]any{"size": 1})
	id := create(ctx, t, admin, "Machine", map[string]any{"image": strings.TrimPrefix(disk, "Volume/")})
	var m struct {
		DetailedState, StateMessage, Host string
	}
	eventually(ctx, t, "the machine to be Running on node-7", func() bool {
		return admin.Get(ctx, id, &m) == nil && m.DetailedState == "Running"
	})
	if m.Host != "Host/node-7" {
		t.Errorf("the machine runs on %q, want Host/node-7", m.Host)
	}
	// Maintenance: no new machine comes to the host, the running one stays.
	if _, err := admin.Action(ctx, "Host/node-7", "maintenance", nil); err != nil {
		t.Fatalf("maintenance: %v", err)
	}
	waiting := create(ctx, t, admin, "Machine", map[string]any{"image": strings.TrimPrefix(create(ctx, t, admin, "Volume", map[string]any{"size": 1}), "Volume/")})
	time.Sleep(2 * time.Second)
	var w struct{ DetailedState, Host string }
	if err := admin.Get(ctx, waiting, &w); err != nil || w.DetailedState != "Pending" {
		t.Errorf("a machine created during maintenance: %+v %v, want Pending", w, err)
	}
	if err := admin.Get(ctx, id, &m); err != nil || m.DetailedState != "Running" {
		t.Errorf("the machine already there during maintenance: %+v %v", m, err)
	}
	if _, err := admin.Action(ctx, "Host/node-7", "enable", nil); err != nil {
		t.Fatalf("enable: %v", err)
	}
	eventually(ctx, t, "the waiting machine to run once the host is back", func() bool {
		return admin.Get(ctx, waiting, &w) == nil && w.DetailedState == "Running"
	})

	// The agent stops answering (SIGSTOP) and comes back (SIGCONT): the
	// host is lost, its machines Unknown, then all are back as they were.
	if err := agent.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	eventually(ctx, t, "the machine of a silent host to be Unknown", func() bool {
		return admin.Get(ctx, id, &m) == nil && m.DetailedState == "Unknown"
	})
	if err := agent.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	for _, mid := range []string{id, waiting} {
		eventually(ctx, t, "the machines to run again once their host is back", func() bool {
			return admin.Get(ctx, mid, &m) == nil && m.DetailedState == "Running"
		})
	}
	var back struct{ State string }
	if err := admin.Get(ctx, "Host/node-7", &back); err != nil || back.State != "AVAILABLE" {
		t.Errorf("the host that came back: %+v %v", back, err)
	}

	_ = agent.Process.Kill()
	eventually(ctx, t, "the machine to be Unknown", func() bool {
		return admin.Get(ctx, id, &m) == nil && m.DetailedState == "Unknown"
	})
	if !strings.Contains(m.StateMessage, "node-7") {
		t.Errorf("an Unknown machine says %q, want the lost host named", m.StateMessage)
	}
	var h struct{ State string }
	if err := admin.Get(ctx, "Host/node-7", &h); err != nil || h.State != "UNAVAILABLE" {
		t.Errorf("the lost host: %+v %v", h, err)
	}
	if err := c.stop(); err != nil {
		t.Error(err)
	}
}
