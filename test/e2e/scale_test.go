package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"stratuslab.dev/client/sdk"
	"stratuslab.dev/platform/store/embedded"
)

// scaleMachine is what the scale test reads of a machine (as an
// administrator, who sees the host).
type scaleMachine struct {
	ID, UUID, DetailedState, StateMessage, IP, Hostname, Host string
	NetworkInterfaces                                         []struct{ IP, MAC string }
	Disks                                                     []struct{ Role, Volume string }
}

// scaleHost is what the scale test reads of a host.
type scaleHost struct {
	ID, State          string
	AllocatedCPUs      int
	AllocatedMemoryMiB int64
	Reservations       map[string]struct{ CPU int }
	RunningMachines    int
}

// TestThousandMachines starts 1,000 machines at once on 10 agents (each
// its own process on libvirt's test driver, the all-in-one running the
// scheduler), in a public pool of exactly 1,000 addresses: all reach
// Running, no address is given twice, every host takes its share and its
// reservations match the machines placed there, and the agents run 1,000
// domains. Killing them all gives back every address, volume, reservation
// and domain. With -short, 100 machines.
func TestThousandMachines(t *testing.T) {
	machines, agents := 1000, 10
	if testing.Short() {
		machines = 100
	}
	began := time.Now()
	c := newCloud(t)
	c.start(func(cmd *exec.Cmd) { cmd.Args = append(cmd.Args, "--vmctl-roles", "scheduler") })
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	base := strings.TrimSuffix(c.endpoint, "/cimi/cloudEntryPoint")
	admin := sdk.New(base, sdk.WithBasicAuth("admin", adminPassword(t, c)))
	waitAdmin(ctx, t, admin)
	create(ctx, t, admin, "User", map[string]any{
		"username": "carol", "password": "carol-secret-pw", "enabled": true,
		"first-name": "carol", "last-name": "Tester", "email": "carol@example.org",
	})
	carol := login(ctx, t, base, "carol")

	// A pool of exactly as many addresses as machines: one address leaked
	// or given twice, and a create fails or a check below does.
	first := netip.MustParseAddr("10.20.0.10")
	last := first
	for range machines - 1 {
		last = last.Next()
	}
	pool := map[string]any{
		"network": "public", "subnet": "10.20.0.0/21", "gateway": "10.20.0.1", "dns": []string{"10.20.0.1"},
		"domain": "scale.test", "range": first.String() + "-" + last.String(),
	}
	create(ctx, t, admin, "ServiceConfiguration", map[string]any{"service": "vmctl", "pools": []any{pool}})
	// The live disks of killed machines are deleted a second after their
	// end, rather than 15 minutes (the janitor takes this up within a
	// minute of the start).
	create(ctx, t, admin, "ServiceConfiguration", map[string]any{"service": "pdisk", "quarantine": "1s", "reconcile-every": "2s"})
	img := newImage(t, 4<<20)
	body := map[string]any{
		"image": map[string]any{"url": img.URL + "/image.img", "bytes": img.bytes, "sha1": img.sha1},
		"type":  "t1.micro",
	}
	// The pool is in effect once a machine gets an address from it. With
	// no host yet, the probe stays Pending, and its kill frees the address.
	pctx, pcancel := context.WithTimeout(ctx, 30*time.Second)
	defer pcancel()
	probes, inEffect := 0, false
	for !inEffect && pctx.Err() == nil {
		probes++
		id := create(ctx, t, carol, "Machine", body)
		var m scaleMachine
		if err := carol.Get(ctx, id, &m); err != nil {
			t.Fatal(err)
		}
		if _, err := carol.Delete(ctx, id); err != nil {
			t.Fatalf("kill the probe %s: %v", id, err)
		}
		eventually(ctx, t, "the probe to be Done", func() bool {
			return carol.Get(ctx, id, &m) == nil && m.DetailedState == "Done"
		})
		if inEffect = strings.HasPrefix(m.IP, "10.20."); !inEffect {
			time.Sleep(100 * time.Millisecond)
		}
	}
	if !inEffect {
		for _, l := range strings.Split(c.stderr.String(), "\n") {
			if strings.Contains(l, "WARN") && !strings.Contains(l, "No host") {
				t.Log(l)
			}
		}
		t.Fatalf("the new address pool is not in effect after %d probes", probes)
	}

	stderrs := make([]*lockedBuffer, agents)
	for i := range agents {
		stderrs[i] = &lockedBuffer{}
		agent := exec.Command(vmctlBinary, "--nats-url", c.natsURL(), "--data-dir", t.TempDir(), "--admin-listen", "127.0.0.1:0",
			"--config", os.DevNull, "--vmctl-roles", "agent", "--instance", fmt.Sprintf("node-%d", i+1))
		agent.Stderr = stderrs[i]
		if err := agent.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = agent.Process.Kill(); _ = agent.Wait() })
	}
	dump := func() {
		t.Helper()
		t.Logf("scheduler stderr (tail):\n%s", tail(c.stderr.String(), 40))
		for i, s := range stderrs {
			t.Logf("agent node-%d stderr (tail):\n%s", i+1, tail(s.String(), 10))
		}
	}
	eventually(ctx, t, "10 hosts available", func() bool {
		n, _, err := admin.Query(ctx, "Host", sdk.Query{Filter: "state='AVAILABLE'"})
		return err == nil && n == agents
	})
	volumesBefore := countVolumes(ctx, t, admin) // then the cached image and a root disk per machine
	machinesBefore := countMachines(ctx, t, admin)
	t.Logf("cloud, address pool and %d agents ready after %s", agents, time.Since(began).Round(time.Millisecond))

	// Start them all, 64 requests in flight.
	start := time.Now()
	ids := make([]string, machines)
	parallel(ctx, t, machines, 64, func(i int) error {
		res, err := carol.Create(ctx, "Machine", body)
		ids[i] = res.ID
		return err
	})
	created := time.Since(start)
	waitAll(ctx, t, admin, "Running", machines, dump)
	running := time.Since(start)
	t.Logf("%d machines on %d agents: %d creates answered in %s (%.0f/s); all Running after %s",
		machines, agents, machines, created.Round(time.Millisecond), float64(machines)/created.Seconds(), running.Round(time.Millisecond))

	// Every machine has its own address and MAC, from the pool, and holds a
	// reservation on the host it runs on.
	all := queryAll[scaleMachine](ctx, t, admin, "Machine", "detailedState='Running'")
	ips, macs := map[string]string{}, map[string]string{}
	onHost := map[string]map[string]bool{}
	for _, m := range all {
		if len(m.NetworkInterfaces) != 1 || m.NetworkInterfaces[0].IP != m.IP {
			t.Errorf("%s: interfaces %+v, ip %s", m.ID, m.NetworkInterfaces, m.IP)
			continue
		}
		mac := m.NetworkInterfaces[0].MAC
		if a, err := netip.ParseAddr(m.IP); err != nil || a.Less(first) || last.Less(a) {
			t.Errorf("%s has the address %q, outside the pool %s-%s", m.ID, m.IP, first, last)
		}
		if want := "vm-" + strings.ReplaceAll(m.IP, ".", "-") + ".scale.test"; m.Hostname != want {
			t.Errorf("%s is named %q, want %q", m.ID, m.Hostname, want)
		}
		if other, dup := ips[m.IP]; dup {
			t.Errorf("%s and %s both have the address %s", other, m.ID, m.IP)
		}
		if other, dup := macs[mac]; dup {
			t.Errorf("%s and %s both have the MAC address %s", other, m.ID, mac)
		}
		ips[m.IP], macs[mac] = m.ID, m.ID
		if onHost[m.Host] == nil {
			onHost[m.Host] = map[string]bool{}
		}
		onHost[m.Host][m.UUID] = true
	}
	if len(ips) != machines || len(macs) != machines {
		t.Errorf("%d machines running with %d addresses and %d MAC addresses, want %d of each", len(all), len(ips), len(macs), machines)
	}
	hostsList := queryAll[scaleHost](ctx, t, admin, "Host", "")
	spread := make([]string, 0, len(hostsList))
	for _, h := range hostsList {
		mine := onHost[h.ID]
		spread = append(spread, fmt.Sprintf("%s:%d", strings.TrimPrefix(h.ID, "Host/"), len(mine)))
		if len(mine) == 0 {
			t.Errorf("%s runs no machine", h.ID)
		}
		if len(h.Reservations) != len(mine) || h.AllocatedCPUs != len(mine) || h.AllocatedMemoryMiB != int64(len(mine))*512 {
			t.Errorf("%s holds %d reservations (%d CPU, %d MiB) for %d machines of 1 CPU and 512 MiB", h.ID, len(h.Reservations), h.AllocatedCPUs, h.AllocatedMemoryMiB, len(mine))
		}
		for id := range h.Reservations {
			if !mine[id] {
				t.Errorf("%s holds a reservation for machine %s, which runs elsewhere", h.ID, id)
			}
		}
	}
	t.Logf("machines per host: %s", strings.Join(spread, " "))
	if len(hostsList) != agents {
		t.Errorf("%d hosts, want %d", len(hostsList), agents)
	}
	// The agents report their domains at each heartbeat (every 10 s).
	eventually(ctx, t, fmt.Sprintf("the agents to report %d running domains", machines), func() bool {
		return runningDomains(ctx, t, admin) == machines
	})
	checkVolumes(ctx, t, admin, all, "IN_USE", machines)
	if n := leases(ctx, t, c); n != machines {
		t.Errorf("%d address leases with %d machines running", n, machines)
	}
	if t.Failed() {
		dump()
		t.FailNow()
	}

	// Kill them all, 64 at a time.
	start = time.Now()
	parallel(ctx, t, machines, 64, func(i int) error {
		_, err := carol.Delete(ctx, ids[i])
		return err
	})
	killed := time.Since(start)
	// The probes are Done already.
	waitAll(ctx, t, admin, "Done", machinesBefore+machines, dump)
	done := time.Since(start)
	t.Logf("%d kills answered in %s (%.0f/s); all Done after %s",
		machines, killed.Round(time.Millisecond), float64(machines)/killed.Seconds(), done.Round(time.Millisecond))

	if n := leases(ctx, t, c); n != 0 {
		t.Errorf("%d address leases left after every machine is Done", n)
	}
	// The root disks are held by nobody: in quarantine, then gone, and
	// the cached image is used by none.
	checkVolumes(ctx, t, admin, all, "QUARANTINED", -1)
	eventually(ctx, t, "the quarantine to end", func() bool {
		return countVolumes(ctx, t, admin) == volumesBefore+1
	})
	t.Logf("root disks deleted %s after the first kill", time.Since(start).Round(time.Millisecond))
	checkVolumes(ctx, t, admin, nil, "", 0)
	for _, h := range queryAll[scaleHost](ctx, t, admin, "Host", "") {
		if len(h.Reservations) != 0 || h.AllocatedCPUs != 0 || h.AllocatedMemoryMiB != 0 {
			t.Errorf("%s still holds %d reservations (%d CPU, %d MiB)", h.ID, len(h.Reservations), h.AllocatedCPUs, h.AllocatedMemoryMiB)
		}
	}
	eventually(ctx, t, "the agents to report no running domain", func() bool {
		return runningDomains(ctx, t, admin) == 0
	})
	if t.Failed() {
		dump()
	}
	if err := c.stop(); err != nil {
		t.Error(err)
	}
}

// parallel calls fn(0) … fn(n-1) with at most inFlight calls at once and
// fails the test with the errors.
func parallel(ctx context.Context, t *testing.T, n, inFlight int, fn func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var failed []string
	sem := make(chan struct{}, inFlight)
	for i := range n {
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			if err := fn(i); err != nil {
				mu.Lock()
				failed = append(failed, fmt.Sprintf("#%d: %v", i, err))
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(failed) > 0 {
		sort.Strings(failed)
		t.Fatalf("%d of %d calls failed, e.g.:\n%s", len(failed), n, strings.Join(failed[:min(len(failed), 10)], "\n"))
	}
	if ctx.Err() != nil {
		t.Fatal(ctx.Err())
	}
}

// waitAll waits until want machines are in state, counting them with a
// filter once a second, and fails as soon as one has failed.
func waitAll(ctx context.Context, t *testing.T, admin *sdk.Client, state string, want int, dump func()) {
	t.Helper()
	count := func(filter string) int {
		n, _, err := admin.Query(ctx, "Machine", sdk.Query{Filter: filter, First: 1, Last: 1})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	for ctx.Err() == nil {
		if count("detailedState='"+state+"'") == want {
			return
		}
		if count("detailedState='Failed'") > 0 {
			failed := queryAll[scaleMachine](ctx, t, admin, "Machine", "detailedState='Failed'")
			dump()
			t.Fatalf("%d machines failed, e.g. %s: %s", len(failed), failed[0].ID, failed[0].StateMessage)
		}
		time.Sleep(time.Second)
	}
	states := map[string]int{}
	for _, m := range queryAll[scaleMachine](context.Background(), t, admin, "Machine", "") {
		states[m.DetailedState]++
	}
	dump()
	t.Fatalf("timed out waiting for %d machines to be %s: %v", want, state, states)
}

// queryAll reads every document of kind matching filter, a page at a time.
func queryAll[T any](ctx context.Context, t *testing.T, c *sdk.Client, kind, filter string) []T {
	t.Helper()
	var out []T
	for v, err := range sdk.All[T](ctx, c, kind, sdk.Query{Filter: filter}, 250) {
		if err != nil {
			t.Fatalf("query %s: %v", kind, err)
		}
		out = append(out, v)
	}
	return out
}

// scaleVolume is what the scale test reads of a volume.
type scaleVolume struct {
	ID, Type, State, Machine string
	Count                    int
	Attachments              []struct{ Machine string }
}

// checkVolumes checks that there is one cached image with live
// snapshots (any number when live is -1), and that each machine of ms has
// one root disk, held by the machine when state is IN_USE; in any other
// state the disk may be gone already.
func checkVolumes(ctx context.Context, t *testing.T, admin *sdk.Client, ms []scaleMachine, state string, live int) {
	t.Helper()
	var origins []scaleVolume
	roots := map[string]scaleVolume{}
	for _, v := range queryAll[scaleVolume](ctx, t, admin, "Volume", "") {
		switch v.Type {
		case "MACHINE_IMAGE_ORIGIN":
			origins = append(origins, v)
		case "MACHINE_IMAGE_LIVE":
			roots[v.ID] = v
		}
	}
	if len(origins) != 1 || (live >= 0 && origins[0].Count != live) {
		t.Errorf("cached images: %+v, want one with %d snapshots", origins, live)
	}
	if state == "IN_USE" && len(roots) != len(ms) || len(roots) > len(ms) {
		t.Errorf("%d root disks for %d machines", len(roots), len(ms))
	}
	wrong := 0
	for _, m := range ms {
		v, ok := roots[rootDisk(t, m)]
		held := len(v.Attachments) == 1 && v.Attachments[0].Machine == m.ID
		if !ok && state != "IN_USE" {
			continue
		}
		if v.State != state || held != (state == "IN_USE") || len(v.Attachments) != v.Count {
			if wrong++; wrong <= 5 {
				t.Errorf("the root disk of %s: %+v, want %s", m.ID, v, state)
			}
		}
	}
	if wrong > 5 {
		t.Errorf("… and %d more root disks", wrong-5)
	}
}

// rootDisk returns the volume of a machine's root disk.
func rootDisk(t *testing.T, m scaleMachine) string {
	t.Helper()
	for _, d := range m.Disks {
		if d.Role == "root" {
			return d.Volume
		}
	}
	t.Errorf("%s has no root disk: %+v", m.ID, m.Disks)
	return ""
}

// runningDomains sums the running domains the agents last reported.
func runningDomains(ctx context.Context, t *testing.T, admin *sdk.Client) int {
	t.Helper()
	n := 0
	for _, h := range queryAll[scaleHost](ctx, t, admin, "Host", "") {
		n += h.RunningMachines
	}
	return n
}

// leases counts vmctl's address lease documents, read straight from
// their bucket: no CIMI kind shows them.
func leases(ctx context.Context, t *testing.T, c *cloud) int {
	t.Helper()
	js, err := jetstream.New(connect(t, c.natsURL()))
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, embedded.BucketName("vmctl", "AddressLease"))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for range keys.Keys() {
		n++
	}
	return n
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(len(lines)-n, 0):], "\n")
}
