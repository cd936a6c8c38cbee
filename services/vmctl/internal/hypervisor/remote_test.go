package hypervisor

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"

	"stratuslab.dev/platform/errs"
)

// TestRemoteReconnect runs a real libvirtd (its test driver, over its unix
// socket, as qemu:///system is reached), kills it under an open
// connection, and checks that calls fail cleanly while it is gone and work
// again, on a new connection, once it is back.
func TestRemoteReconnect(t *testing.T) {
	ctx := context.Background()
	d := newLibvirtd(t)
	d.start(t)
	h := open(t, "test+unix:///default?socket="+d.socket())
	if !h.remote {
		t.Fatal("a test+unix URI is not treated as a connection to a libvirtd")
	}
	dom := smallDomain(t)
	if err := h.Define(ctx, dom); err != nil {
		t.Fatal(err)
	}
	if err := h.Start(ctx, dom.UUID); err != nil {
		t.Fatal(err)
	}

	d.stop(t)
	_, err := h.List(ctx)
	wantCode(t, "list while libvirtd is down", err, errs.Unavailable)

	d.start(t)
	doms, err := h.List(ctx)
	if err != nil {
		t.Fatalf("list once libvirtd is back: %v", err)
	}
	// The new daemon's test driver starts afresh: seeing its own default
	// domain and not ours proves the call went to the new daemon.
	names := map[string]bool{}
	for _, x := range doms {
		names[x.Name] = true
	}
	if !names["test"] || names[dom.Name] {
		t.Fatalf("after the reconnect List = %+v, want the new daemon's fresh domains", doms)
	}
	if err := h.Define(ctx, dom); err != nil {
		t.Fatalf("define on the new connection: %v", err)
	}
}

// libvirtd is a libvirt daemon of this test, run as an unprivileged user in
// session mode so that all its state stays in its own directory.
type libvirtd struct {
	dir  string
	cred *syscall.Credential
	cmd  *exec.Cmd
}

func newLibvirtd(t *testing.T) *libvirtd {
	t.Helper()
	if _, err := exec.LookPath("libvirtd"); err != nil {
		t.Fatalf("libvirtd is not installed (scripts/deps.sh installs libvirt-daemon): %v", err)
	}
	// Not t.TempDir: the daemon's user must reach the directory, and a
	// test's temporary directories sit in one only root may enter.
	dir, err := os.MkdirTemp("", "hypervisor-libvirtd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dir) })
	d := &libvirtd{dir: dir}
	if os.Getuid() == 0 {
		// As root, libvirtd would be the system daemon with state under
		// /run and /var/lib: run it as nobody instead.
		u, err := user.Lookup("nobody")
		if err != nil {
			t.Fatal(err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		d.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	conf := fmt.Sprintf("unix_sock_dir = %q\nauth_unix_rw = \"none\"\nauth_unix_ro = \"none\"\nunix_sock_rw_perms = \"0777\"\n", dir)
	if err := os.WriteFile(filepath.Join(dir, "libvirtd.conf"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.stop(t) })
	return d
}

func (d *libvirtd) socket() string { return filepath.Join(d.dir, "libvirt-sock") }

// start runs the daemon and waits for its socket.
func (d *libvirtd) start(t *testing.T) {
	t.Helper()
	_ = os.Remove(d.socket())
	cmd := exec.Command("libvirtd", "--config", filepath.Join(d.dir, "libvirtd.conf"), "--pid-file", filepath.Join(d.dir, "libvirtd.pid"))
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + d.dir, "XDG_RUNTIME_DIR=" + filepath.Join(d.dir, "run"),
		"XDG_CONFIG_HOME=" + filepath.Join(d.dir, "config"), "XDG_CACHE_HOME=" + filepath.Join(d.dir, "cache")}
	cmd.Dir = d.dir
	log, err := os.OpenFile(filepath.Join(d.dir, "libvirtd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer log.Close()
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: d.cred}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start libvirtd: %v", err)
	}
	d.cmd = cmd
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(d.socket()); err == nil {
			return
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(filepath.Join(d.dir, "libvirtd.log"))
			t.Fatalf("libvirtd made no socket at %s in 30 s; its log:\n%s", d.socket(), b)
		}
	}
}

// stop ends the daemon, killing it if it does not stop in 10 s.
func (d *libvirtd) stop(t *testing.T) {
	t.Helper()
	if d.cmd == nil {
		return
	}
	cmd := d.cmd
	d.cmd = nil
	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		var exit *exec.ExitError
		if err != nil && !errors.As(err, &exit) {
			t.Errorf("wait for libvirtd: %v", err)
		}
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}
