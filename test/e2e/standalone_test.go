package e2e

import (
	"os"
	"os/exec"
	"testing"
	"time"
)

// TestStandaloneReplica runs a second pdisk as its own binary against the
// all-in-one's NATS server: it joins the bus as another replica of the same
// service, and stops cleanly on SIGTERM.
func TestStandaloneReplica(t *testing.T) {
	c := newCloud(t)
	c.start()
	cmd := exec.Command(pdiskBinary, "--nats-url", c.natsURL(), "--data-dir", t.TempDir(),
		"--admin-listen", "127.0.0.1:0", "--config", os.DevNull)
	stderr := &lockedBuffer{}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
		}
	}()

	waitServices(t, c.natsURL(), []string{"authn", "cimi", "marketplace", "pdisk", "pdisk", "registration", "vmctl"})
	if t.Failed() {
		t.Fatalf("pdisk stderr:\n%s", stderr)
	}
	_ = cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-exited:
		if err != nil {
			t.Errorf("pdisk exited with %v\n%s", err, stderr)
		}
	case <-time.After(30 * time.Second):
		t.Error("pdisk still running 30s after SIGINT")
	}
	if err := c.stop(); err != nil {
		t.Error(err)
	}
}
