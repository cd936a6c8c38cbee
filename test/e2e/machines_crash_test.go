package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"stratuslab.dev/client/sdk"
	"stratuslab.dev/platform/daemon"
)

// convHost is the node the crash test's agent serves.
const convHost = "node-1"

// converge bounds the time a machine takes to reach Running after a
// restart: a redelivery after the consumer's ack wait, then the steps
// left. It is shorter than a step's wait for another service's answer
// (2 minutes), so that a step waiting for an answer that will never come
// fails the test.
const converge = time.Minute

// convMachine is what the crash test reads of a machine.
type convMachine struct {
	ID, UUID, Name, DetailedState, StateMessage, IP, Host string
	VMID                                                  int64 `json:"vmId"`
}

// convAgent is the agent of the crash test: its own process, on its own
// data directory, restarted at will.
type convAgent struct {
	natsURL string
	dir     string
	cmd     *exec.Cmd
	stderr  *lockedBuffer
	exited  chan error
	done    chan struct{} // closed once the process has exited
	// point is the crash point of the current run.
	point string
	// prev is the log of the agent's previous run.
	prev *lockedBuffer
}

// start runs the agent, crashing at point when not empty.
func (a *convAgent) start(t *testing.T, point string) {
	t.Helper()
	args := []string{"--nats-url", a.natsURL, "--data-dir", a.dir, "--admin-listen", "127.0.0.1:0",
		"--config", os.DevNull, "--vmctl-roles", "agent", "--instance", convHost}
	a.point = point
	if point != "" {
		args = append(args, "--crash-at", point)
	}
	if os.Getenv("CONV_DEBUG") != "" {
		args = append(args, "--log-level", "debug")
	}
	a.cmd = exec.Command(vmctlBinary, args...)
	if a.stderr != nil {
		a.prev = a.stderr
	}
	a.stderr = &lockedBuffer{}
	a.cmd.Stderr = a.stderr
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	a.exited, a.done = make(chan error, 1), make(chan struct{})
	go func(cmd *exec.Cmd, exited chan error, done chan struct{}) {
		exited <- cmd.Wait()
		close(done)
	}(a.cmd, a.exited, a.done)
}

// running reports whether the agent's process runs.
func (a *convAgent) running() bool {
	select {
	case <-a.done:
		return false
	default:
		return a.cmd != nil
	}
}

// kill ends the agent with SIGKILL, if it runs.
func (a *convAgent) kill() {
	if !a.running() {
		return
	}
	_ = a.cmd.Process.Signal(syscall.SIGKILL)
	<-a.done
}

// domainDir is where the agent keeps a machine's context disk and log.
func (a *convAgent) domainDir(uuid string) string {
	return filepath.Join(a.dir, "vmctl", "domains", uuid)
}

// crashed waits for a process to exit at its crash point.
func crashed(ctx context.Context, t *testing.T, what string, exited <-chan error, stderr *lockedBuffer) {
	t.Helper()
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != daemon.CrashStatus {
			t.Fatalf("%s exited with %v, want status %d\nstderr:\n%s", what, err, daemon.CrashStatus, stderr)
		}
		if !strings.Contains(stderr.String(), "crash point reached") {
			t.Fatalf("%s exited %d without reaching its crash point\nstderr:\n%s", what, daemon.CrashStatus, stderr)
		}
	case <-ctx.Done():
		t.Fatalf("%s did not reach its crash point\nstderr:\n%s", what, stderr)
	}
}

// convergence is the crash test's cloud: the all-in-one running the
// scheduler, one agent on its own, an image to start machines from.
type convergence struct {
	c     *cloud
	agent *convAgent
	img   *imageServer
	base  string
	pass  string
	admin *sdk.Client
	// pool is the number of addresses in the public pool.
	pool int
	// prev is the log of the all-in-one's previous run; runs are the logs
	// of its runs in the current subtest.
	prev *lockedBuffer
	runs []*lockedBuffer
	// down says the all-in-one's exit has been seen.
	down bool
	// finished is the last subtest finish ran for; root is the test.
	finished, root *testing.T
	// kept are volumes that outlive their machine by design (saved
	// images): nothingLeaked does not count them.
	kept map[string]bool
}

// running reports whether the all-in-one runs.
func (cv *convergence) running() bool {
	if cv.down {
		return false
	}
	select {
	case <-cv.c.exited:
		cv.down = true
		return false
	default:
		return true
	}
}

// start runs the all-in-one (the scheduler role, vmctl's agent being the
// one of the test), crashing at point when not empty.
func (cv *convergence) start(t *testing.T, point string) {
	t.Helper()
	cv.c.t = t
	if cv.c.stderr != nil {
		cv.prev = cv.c.stderr
	}
	cv.c.start(func(cmd *exec.Cmd) {
		cmd.Args = append(cmd.Args, "--vmctl-roles", "scheduler")
		if os.Getenv("CONV_DEBUG") != "" {
			cmd.Args = append(cmd.Args, "--log-level", "debug")
		}
		if point != "" {
			cmd.Args = append(cmd.Args, "--crash-at", point)
		}
	})
	t.Cleanup(func() { cv.finish(t) })
	cv.down = false
	cv.runs = append(cv.runs, cv.c.stderr)
	cv.admin = sdk.New(cv.base, sdk.WithBasicAuth("admin", cv.pass))
}

// begin starts a subtest: the all-in-one, crashing at point when not
// empty.
func (cv *convergence) begin(ctx context.Context, t *testing.T, point string) {
	t.Helper()
	cv.runs = nil
	cv.start(t, point)
	cv.up(ctx, t)
}

// restarted waits for the all-in-one to stop at its crash point and
// starts it again on the same data, without one.
func (cv *convergence) restarted(ctx context.Context, t *testing.T) {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	cv.down = true
	crashed(cctx, t, "the all-in-one", cv.c.exited, cv.c.stderr)
	cv.start(t, "")
	cv.up(ctx, t)
}

// finish ends a subtest, once: it keeps the logs and, if the subtest
// failed, kills what it left running, so that the next one starts clean.
// Every start registers it, so that it runs before the cleanup that kills
// the process of that start.
func (cv *convergence) finish(t *testing.T) {
	if cv.finished == t {
		return
	}
	cv.finished = t
	cv.dump(t)
	if t.Failed() && t != cv.root {
		start := time.Now()
		cv.tidy(t)
		t.Logf("cleaned up after the failure in %s", time.Since(start).Round(time.Second))
		cv.dump(t)
	}
}

// tidy kills every machine still alive, ends the host's maintenance and
// restarts the agent if it crashed or would, on a best-effort basis; it
// starts the all-in-one for that if needed, and kills it.
func (cv *convergence) tidy(t *testing.T) {
	if !cv.agent.running() || cv.agent.point != "" {
		cv.agent.kill()
		cv.agent.start(t, "")
	}
	if !cv.running() {
		cv.start(t, "")
	}
	defer func() {
		// SIGKILL: a graceful stop waits for the steps in flight.
		cv.down = true
		cv.c.kill()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), converge)
	defer cancel()
	for ctx.Err() == nil {
		if a, err := cv.admin.Authn(ctx); err == nil && a.Identity == "admin" {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	_, _ = cv.admin.Action(ctx, "Host/"+convHost, "enable", nil)
	for ctx.Err() == nil {
		alive := 0
		for raw, err := range cv.admin.QueryAll(ctx, "Machine", sdk.Query{}, 500) {
			var m convMachine
			if err != nil || json.Unmarshal(raw, &m) != nil {
				alive++
				break
			}
			switch m.DetailedState {
			case "Done", "Failed":
			case "Epilog":
				alive++
			default:
				alive++
				_, _ = cv.admin.Delete(ctx, m.ID)
			}
		}
		if alive == 0 {
			return
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("machines still alive %s after the failure", converge)
}

// up waits until the all-in-one authenticates the administrator; it
// fails at once if the process ends meanwhile.
func (cv *convergence) up(ctx context.Context, t *testing.T) {
	t.Helper()
	for ctx.Err() == nil {
		select {
		case err := <-cv.c.exited:
			cv.down = true
			t.Fatalf("the all-in-one exited while starting: %v\nstderr:\n%s", err, cv.c.stderr)
		default:
		}
		if a, err := cv.admin.Authn(ctx); err == nil && a.Identity == "admin" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatal("the administrator is never authenticated")
}

// stop stops the all-in-one with SIGTERM.
func (cv *convergence) stop(t *testing.T) {
	t.Helper()
	cv.down = true
	if err := cv.c.stop(); err != nil {
		t.Fatalf("SIGTERM: %v\nstderr:\n%s", err, cv.c.stderr)
	}
}

// body is the create body of a machine named name: an image from the
// test's server (pdisk get_image, disk 0) and a volatile disk (pdisk
// create, disk 1).
func (cv *convergence) body(name string) map[string]any {
	return map[string]any{
		"name":          name,
		"image":         map[string]any{"url": cv.img.URL + "/image.img", "bytes": cv.img.bytes, "sha1": cv.img.sha1},
		"type":          "t1.micro",
		"volatileDisks": []int{1},
	}
}

// machines reads every machine.
func (cv *convergence) machines(ctx context.Context, t *testing.T) []convMachine {
	t.Helper()
	var out []convMachine
	for raw, err := range cv.admin.QueryAll(ctx, "Machine", sdk.Query{}, 500) {
		if err != nil {
			t.Fatalf("list the machines: %v", err)
		}
		var m convMachine
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
	return out
}

// named returns the machines named name.
func (cv *convergence) named(ctx context.Context, t *testing.T, name string) []convMachine {
	t.Helper()
	var out []convMachine
	for _, m := range cv.machines(ctx, t) {
		if m.Name == name {
			out = append(out, m)
		}
	}
	return out
}

// distinct fails if two machines share a vmId, or an address among
// those not ended.
func (cv *convergence) distinct(ctx context.Context, t *testing.T) {
	t.Helper()
	ids := map[int64]string{}
	ips := map[string]string{}
	for _, m := range cv.machines(ctx, t) {
		if o, dup := ids[m.VMID]; dup {
			t.Errorf("vmId %d is both %s and %s", m.VMID, o, m.ID)
		}
		ids[m.VMID] = m.ID
		if m.DetailedState == "Done" || m.DetailedState == "Failed" {
			continue
		}
		if o, dup := ips[m.IP]; dup {
			t.Errorf("address %s is both %s's and %s's", m.IP, o, m.ID)
		}
		ips[m.IP] = m.ID
	}
}

// wait waits until machine id is in state want, for at most limit;
// it fails at once if the machine ends in another state.
func (cv *convergence) wait(ctx context.Context, t *testing.T, id, want string, limit time.Duration) convMachine {
	t.Helper()
	deadline := time.Now().Add(limit)
	var m convMachine
	for {
		err := cv.admin.Get(ctx, id, &m)
		switch {
		case err == nil && m.DetailedState == want:
			return m
		case err == nil && want != "Done" && (m.DetailedState == "Done" || m.DetailedState == "Failed"):
			t.Fatalf("%s is %s (%s), want %s\nstderr:\n%s", id, m.DetailedState, m.StateMessage, want, cv.logs(m.UUID))
		case time.Now().After(deadline) || ctx.Err() != nil:
			t.Fatalf("%s is %s (%s, %v) after %s, want %s\nstderr:\n%s", id, m.DetailedState, m.StateMessage, err, limit, want, cv.logs(m.UUID))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// logs returns the lines of the all-in-one's and the agent's logs that
// name uuid (all of them when uuid is empty).
func (cv *convergence) logs(uuid string) string {
	var b strings.Builder
	for _, src := range []struct {
		name string
		buf  *lockedBuffer
	}{{"all-in-one before", cv.prev}, {"all-in-one", cv.c.stderr}, {"agent before", cv.agent.prev}, {"agent", cv.agent.stderr}} {
		if src.buf == nil {
			continue
		}
		fmt.Fprintf(&b, "--- %s\n", src.name)
		for line := range strings.SplitSeq(src.buf.String(), "\n") {
			if uuid == "" || strings.Contains(line, uuid) || strings.Contains(line, "crash point") || strings.Contains(line, "level=ERROR") || strings.Contains(line, "leaked") {
				b.WriteString(line + "\n")
			}
		}
	}
	return b.String()
}

// dump writes the logs to $CONV_LOGS, for whoever studies a run.
func (cv *convergence) dump(t *testing.T) {
	dir := os.Getenv("CONV_LOGS")
	if dir == "" {
		return
	}
	name := strings.ReplaceAll(t.Name(), "/", "_") + "." + time.Now().Format("150405")
	for suffix, buf := range map[string]*lockedBuffer{"before": cv.prev, "after": cv.c.stderr, "agent-before": cv.agent.prev, "agent": cv.agent.stderr} {
		if buf != nil {
			_ = os.WriteFile(filepath.Join(dir, name+"."+suffix+".log"), []byte(buf.String()), 0o644)
		}
	}
}

// kill kills the machines ids and waits until they are Done.
func (cv *convergence) kill(ctx context.Context, t *testing.T, ids ...string) {
	t.Helper()
	for _, id := range ids {
		if _, err := cv.admin.Delete(ctx, id); err != nil {
			t.Fatalf("kill %s: %v", id, err)
		}
	}
	for _, id := range ids {
		cv.wait(ctx, t, id, "Done", time.Minute)
	}
}

// nothingLeaked checks that the machines uuids hold nothing any more and
// that nothing else is held: no volume but image-cache origins nobody
// uses, no reservation on the host, no domain directory on the agent, and
// every address of the pool free (it leases them all, then no more).
func (cv *convergence) nothingLeaked(ctx context.Context, t *testing.T, uuids ...string) {
	t.Helper()
	for _, u := range uuids {
		if _, err := os.Stat(cv.agent.domainDir(u)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the agent still keeps the domain directory of %s (%v)", u, err)
		}
	}
	var held []string
	free := func() bool {
		held = nil
		for raw, err := range cv.admin.QueryAll(ctx, "Volume", sdk.Query{}, 500) {
			if err != nil {
				return false
			}
			var v struct {
				UUID, Type, State, Machine string
				Count                      int
			}
			if json.Unmarshal(raw, &v) != nil {
				return false
			}
			if cv.kept[v.UUID] {
				continue
			}
			if !strings.HasSuffix(v.Type, "_ORIGIN") || v.Count != 0 {
				held = append(held, fmt.Sprintf("%s %s %s machine=%q users=%d", v.UUID, v.Type, v.State, v.Machine, v.Count))
			}
		}
		return len(held) == 0
	}
	for deadline := time.Now().Add(30 * time.Second); !free(); time.Sleep(200 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Errorf("volumes still there 30s after the machines ended:\n%s", strings.Join(held, "\n"))
			break
		}
	}
	var h struct {
		AllocatedCPUs      int
		AllocatedMemoryMiB int64
		Reservations       map[string]any
	}
	if err := cv.admin.Get(ctx, "Host/"+convHost, &h); err != nil {
		t.Fatal(err)
	}
	if h.AllocatedCPUs != 0 || h.AllocatedMemoryMiB != 0 || len(h.Reservations) != 0 {
		t.Errorf("the host still holds %d CPU and %d MiB for %v", h.AllocatedCPUs, h.AllocatedMemoryMiB, h.Reservations)
	}
	cv.poolFree(ctx, t)
	// The janitor's sweep gives back what a crash left held: it must have
	// found nothing, or the checks above passed thanks to it.
	for _, buf := range cv.runs {
		for line := range strings.SplitSeq(buf.String(), "\n") {
			if strings.Contains(line, "released a leaked") {
				t.Errorf("the janitor found a leak: %s", line)
			}
		}
	}
}

// poolFree checks that every address of the pool is free: with the host
// in maintenance (the machines stay Pending), it creates as many machines
// as the pool has addresses, which must all get one, then one more, which
// must be refused for want of an address; then it kills them.
func (cv *convergence) poolFree(ctx context.Context, t *testing.T) {
	t.Helper()
	if _, err := cv.admin.Action(ctx, "Host/"+convHost, "maintenance", nil); err != nil {
		t.Fatalf("maintenance: %v", err)
	}
	probes := make([]string, cv.pool)
	errs := make([]error, cv.pool)
	var wg sync.WaitGroup
	for i := range probes {
		wg.Go(func() {
			var res sdk.Result
			res, errs[i] = cv.admin.Create(ctx, "Machine", cv.body(fmt.Sprintf("probe-%d", i)))
			probes[i] = res.ID
		})
	}
	wg.Wait()
	var made []string
	for i, err := range errs {
		if err != nil {
			t.Errorf("probe %d of a pool of %d addresses: %v", i, cv.pool, err)
		} else {
			made = append(made, probes[i])
		}
	}
	_, err := cv.admin.Create(ctx, "Machine", cv.body("probe-extra"))
	var e *sdk.Error
	if !errors.As(err, &e) || e.Status != http.StatusConflict || !strings.Contains(e.Message, "No free address") {
		t.Errorf("a machine beyond the %d addresses of the pool: %v, want a 409 for want of an address", cv.pool, err)
	}
	cv.kill(ctx, t, made...)
	if _, err := cv.admin.Action(ctx, "Host/"+convHost, "enable", nil); err != nil {
		t.Fatalf("enable: %v", err)
	}
}

// setPool makes the public pool exactly n addresses; the all-in-one reads
// it at its next start.
func (cv *convergence) setPool(ctx context.Context, t *testing.T, n int) {
	t.Helper()
	pool := map[string]any{"network": "public", "subnet": "10.30.0.0/24", "gateway": "10.30.0.1",
		"range": fmt.Sprintf("10.30.0.10-10.30.0.%d", 10+n-1)}
	doc := map[string]any{"service": "vmctl", "pools": []any{pool}}
	if _, err := cv.admin.Edit(ctx, "ServiceConfiguration/vmctl", doc); err != nil {
		create(ctx, t, cv.admin, "ServiceConfiguration", doc)
	}
	cv.pool = n
}

// TestMachinesConverge kills the scheduler (the all-in-one) or the agent
// at each step of a machine's start, restarts it on the same data, and
// checks that the machine reaches Running, that its kill then gives back
// everything (volumes, host reservation, domain, address), and that no
// vmId or address was given twice; then at each step of a kill, after
// which the machine must end Done with everything given back. A last
// round kills the all-in-one with SIGKILL while 50 machines start, at no
// chosen step.
//
// To study a run, CONV_LOGS=dir keeps the logs of every subtest there,
// and CONV_DEBUG=1 runs the processes at the debug level.
func TestMachinesConverge(t *testing.T) {
	c := newCloud(t)
	cv := &convergence{c: c, img: newImage(t, 4<<20), root: t, kept: map[string]bool{}}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	cv.start(t, "")
	cv.base = strings.TrimSuffix(c.endpoint, "/cimi/cloudEntryPoint")
	cv.pass = adminPassword(t, c)
	cv.admin = sdk.New(cv.base, sdk.WithBasicAuth("admin", cv.pass))
	waitAdmin(ctx, t, cv.admin)
	// Released live disks go at once, so that a leaked one shows.
	create(ctx, t, cv.admin, "ServiceConfiguration", map[string]any{"service": "pdisk", "quarantine": "0s", "reconcile-every": "1s", "orphan-grace": "1s"})
	cv.setPool(ctx, t, 1)
	cv.agent = &convAgent{natsURL: c.natsURL(), dir: t.TempDir()}
	cv.agent.start(t, "")
	t.Cleanup(cv.agent.kill)
	eventually(ctx, t, "the agent's host", func() bool {
		n, _, err := cv.admin.Query(ctx, "Host", sdk.Query{Filter: "state='AVAILABLE'"})
		return err == nil && n == 1
	})
	cv.stop(t)

	// pdisk runs in the all-in-one: its crash points stop the scheduler
	// too. For the machine's volatile disk: made but not stored, stored
	// but not announced; for its root disk: copied but not attached.
	for _, point := range []string{"leased", "saved-Prolog", "disk-0", "saved-Boot", "defined", "started", "saved-Running",
		"pdisk.provisioned", "pdisk.stored", "pdisk.snapped"} {
		full := point
		if !strings.HasPrefix(point, "pdisk.") {
			full = "vmctl.scheduler." + point
		}
		t.Run(point, func(t *testing.T) {
			cv.begin(ctx, t, full)
			cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
			res, err := cv.admin.Create(cctx, "Machine", cv.body(point))
			ccancel()
			var e *sdk.Error
			switch {
			case point == "leased" && err == nil:
				t.Fatalf("the create answered %+v although the all-in-one crashes before storing the machine", res)
			case errors.As(err, &e):
				t.Fatalf("create: %v", err)
			}
			// Otherwise the answer was lost in the crash, or came first.
			cv.restarted(ctx, t)
			id := res.ID
			if id == "" {
				// The create was stored before the crash: its command is
				// delivered again, and the machine made.
				eventually(ctx, t, "the machine of the interrupted create", func() bool {
					return len(cv.named(ctx, t, point)) > 0
				})
				id = cv.named(ctx, t, point)[0].ID
			}
			m := cv.wait(ctx, t, id, "Running", converge)
			if got := cv.named(ctx, t, point); len(got) != 1 {
				t.Errorf("%d machines named %s, want 1: %+v", len(got), point, got)
			}
			cv.distinct(ctx, t)
			cv.kill(ctx, t, id)
			cv.nothingLeaked(ctx, t, m.UUID)
			cv.stop(t)
		})
	}

	// The agent: the test driver keeps its domains in the process, so a
	// restarted agent has none. A define interrupted before its answer is
	// delivered again and done again. A start interrupted so finds no
	// domain, and the scheduler defines it again and starts it. (With a
	// hypervisor that keeps its domains, the start finds it running.)
	for _, verb := range []string{"define_domain", "start_domain"} {
		t.Run(verb, func(t *testing.T) {
			cv.begin(ctx, t, "")
			cv.agent.kill()
			cv.agent.start(t, "vmctl.agent."+verb)
			res, err := cv.admin.Create(ctx, "Machine", cv.body(verb))
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			cctx, ccancel := context.WithTimeout(ctx, time.Minute)
			crashed(cctx, t, "the agent", cv.agent.exited, cv.agent.stderr)
			ccancel()
			cv.agent.start(t, "")
			m := cv.wait(ctx, t, res.ID, "Running", converge)
			cv.distinct(ctx, t)
			cv.kill(ctx, t, res.ID)
			cv.nothingLeaked(ctx, t, m.UUID)
			cv.stop(t)
		})
	}

	// The kill of a running machine, the scheduler killed at each step of
	// the teardown, the agent after its destroy, pdisk after destroying the
	// volatile disk's storage, before its document: the machine ends Done
	// and gives everything back.
	for _, point := range []string{"vmctl.scheduler.destroyed", "vmctl.scheduler.released", "vmctl.scheduler.unleased",
		"vmctl.agent.destroy_domain", "pdisk.destroyed"} {
		short := strings.TrimPrefix(point, "vmctl.")
		t.Run("kill-"+short, func(t *testing.T) {
			name := "kill-" + strings.ReplaceAll(short, ".", "-")
			agent := strings.HasPrefix(point, "vmctl.agent.")
			if agent {
				cv.begin(ctx, t, "")
				cv.agent.kill()
				cv.agent.start(t, point)
			} else {
				cv.begin(ctx, t, point)
			}
			res, err := cv.admin.Create(ctx, "Machine", cv.body(name))
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			m := cv.wait(ctx, t, res.ID, "Running", converge)
			cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
			_, err = cv.admin.Delete(cctx, res.ID)
			ccancel()
			var e *sdk.Error
			if errors.As(err, &e) {
				t.Fatalf("kill: %v", err)
			}
			// Otherwise the answer was lost in the crash, or came first.
			if agent {
				cctx, ccancel := context.WithTimeout(ctx, time.Minute)
				crashed(cctx, t, "the agent", cv.agent.exited, cv.agent.stderr)
				ccancel()
				cv.agent.start(t, "")
			} else {
				cv.restarted(ctx, t)
			}
			cv.wait(ctx, t, res.ID, "Done", converge)
			cv.distinct(ctx, t)
			cv.nothingLeaked(ctx, t, m.UUID)
			cv.stop(t)
		})
	}

	// The shutdown of a machine that saves its root disk, the scheduler
	// killed after the capture and after the draft, pdisk after copying
	// the disk but before recording the copy: the machine ends Done with
	// one saved volume and one draft, and everything else given back.
	for _, point := range []string{"vmctl.scheduler.captured", "vmctl.scheduler.drafted", "pdisk.captured"} {
		short := strings.TrimPrefix(point, "vmctl.")
		t.Run("save-"+short, func(t *testing.T) {
			name := "save-" + strings.ReplaceAll(short, ".", "-")
			cv.begin(ctx, t, point)
			body := cv.body(name)
			body["save"] = map[string]any{"title": name, "author": "Admin", "authorEmail": "admin@example.org"}
			res, err := cv.admin.Create(ctx, "Machine", body)
			if err != nil {
				t.Fatalf("create: %v", err)
			}
			cm := cv.wait(ctx, t, res.ID, "Running", converge)
			cctx, ccancel := context.WithTimeout(ctx, 30*time.Second)
			_, err = cv.admin.Action(cctx, res.ID, "shutdown", nil)
			ccancel()
			var e *sdk.Error
			if errors.As(err, &e) {
				t.Fatalf("shutdown: %v", err)
			}
			cv.restarted(ctx, t)
			cv.wait(ctx, t, res.ID, "Done", converge)
			var m struct {
				SavedVolume, SavedIdentifier, StateMessage string
			}
			if err := cv.admin.Get(ctx, res.ID, &m); err != nil {
				t.Fatal(err)
			}
			if m.SavedVolume == "" || len(m.SavedIdentifier) != 27 {
				t.Fatalf("the saved machine: %+v", m)
			}
			if n, _, err := cv.admin.Query(ctx, "Volume", sdk.Query{Filter: "tag='" + name + "'"}); err != nil || n != 1 {
				t.Errorf("%d volumes saved, want 1 (%v)", n, err)
			}
			// Every machine here saves the same bytes, so their drafts
			// share the identifier: this machine's is the one of its volume.
			drafts := sdk.Query{Filter: "identifier='" + m.SavedIdentifier + "' and volume='" + m.SavedVolume + "'"}
			if n, _, err := cv.admin.Query(ctx, "MachineImage", drafts); err != nil || n != 1 {
				t.Errorf("%d drafts of the saved volume, want 1 (%v)", n, err)
			}
			cv.kept[strings.TrimPrefix(m.SavedVolume, "Volume/")] = true
			cv.distinct(ctx, t)
			cv.nothingLeaked(ctx, t, cm.UUID)
			cv.stop(t)
		})
	}

	// A running machine whose agent dies and comes back without its
	// domain is Unknown; its kill still gives everything back.
	t.Run("agent_restart", func(t *testing.T) {
		cv.begin(ctx, t, "")
		res, err := cv.admin.Create(ctx, "Machine", cv.body("agent-restart"))
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		m := cv.wait(ctx, t, res.ID, "Running", converge)
		cv.agent.kill()
		cv.agent.start(t, "")
		cv.wait(ctx, t, res.ID, "Unknown", converge)
		cv.kill(ctx, t, res.ID)
		cv.nothingLeaked(ctx, t, m.UUID)
		cv.stop(t)
	})

	// No chosen step: 50 machines starting, the all-in-one killed with
	// SIGKILL once some run.
	t.Run("random", func(t *testing.T) {
		const n, before = 50, 15
		cv.begin(ctx, t, "")
		cv.setPool(ctx, t, n)
		cv.stop(t)
		cv.start(t, "") // with the new pool
		cv.up(ctx, t)
		ids := make([]string, n)
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range ids {
			wg.Go(func() {
				var res sdk.Result
				res, errs[i] = cv.admin.Create(ctx, "Machine", cv.body(fmt.Sprintf("random-%d", i)))
				ids[i] = res.ID
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("create machine %d of %d: %v", i, n, err)
			}
		}
		running := 0
		eventually(ctx, t, fmt.Sprintf("%d machines to run", before), func() bool {
			var err error
			running, _, err = cv.admin.Query(ctx, "Machine", sdk.Query{Filter: "detailedState='Running'"})
			return err == nil && running >= before
		})
		cv.down = true
		cv.c.kill()
		t.Logf("killed with %d of %d machines running", running, n)

		cv.start(t, "")
		cv.up(ctx, t)
		deadline := time.Now().Add(converge)
		uuids := make([]string, n)
		for i, id := range ids {
			uuids[i] = cv.wait(ctx, t, id, "Running", max(time.Until(deadline), time.Second)).UUID
		}
		cv.distinct(ctx, t)
		cv.kill(ctx, t, ids...)
		cv.nothingLeaked(ctx, t, uuids...)
		var h struct{ RunningMachines int }
		eventually(ctx, t, "the agent to run no domain", func() bool {
			return cv.admin.Get(ctx, "Host/"+convHost, &h) == nil && h.RunningMachines == 0
		})
		cv.stop(t)
	})
}
