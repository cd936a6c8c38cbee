package e2e

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// binary is the all-in-one built once for the whole package by TestMain;
// pdiskBinary and vmctlBinary are services on their own; stratusBinary the
// client.
var binary, pdiskBinary, vmctlBinary, stratusBinary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "stratuslab-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "stratuslab")
	pdiskBinary = filepath.Join(dir, "pdisk")
	vmctlBinary = filepath.Join(dir, "vmctl")
	stratusBinary = filepath.Join(dir, "stratus")
	out, err := exec.Command("go", "build", "-o", dir+"/",
		"stratuslab.dev/stratuslab/cmd/stratuslab", "stratuslab.dev/services/pdisk/cmd/pdisk", "stratuslab.dev/services/vmctl/cmd/vmctl",
		"stratuslab.dev/client/cmd/stratus").CombinedOutput()
	if err != nil {
		fmt.Fprintf(os.Stderr, "build the binaries: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// cloud is one running all-in-one process.
type cloud struct {
	t        testing.TB
	dataDir  string
	natsAddr string
	listen   string
	cmd      *exec.Cmd
	stderr   *lockedBuffer
	exited   chan error

	endpoint string            // CIMI entry point URL from the banner
	health   map[string]string // service → /healthz URL from the banner
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// freeAddr returns a loopback address with a port free at the time of
// the call.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// newCloud prepares a cloud on a new data directory with free ports.
func newCloud(t testing.TB) *cloud {
	return &cloud{t: t, dataDir: t.TempDir(), natsAddr: freeAddr(t), listen: freeAddr(t)}
}

func (c *cloud) natsURL() string { return "nats://" + c.natsAddr }

// start runs the process and waits for its banner; edit, when given,
// changes the command first.
func (c *cloud) start(edit ...func(*exec.Cmd)) {
	c.t.Helper()
	c.cmd = exec.Command(binary,
		"--data-dir", c.dataDir, "--listen", c.listen,
		"--nats-listen", c.natsAddr, "--admin-listen", "127.0.0.1:0",
		"--config", os.DevNull)
	for _, e := range edit {
		e(c.cmd)
	}
	c.stderr = &lockedBuffer{}
	c.cmd.Stderr = c.stderr
	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		c.t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.exited = make(chan error, 1)
	banner := make(chan error, 1)
	go func() {
		banner <- c.readBanner(stdout)
		_, _ = io.Copy(io.Discard, stdout)
		c.exited <- c.cmd.Wait()
	}()
	select {
	case err := <-banner:
		if err != nil {
			c.kill()
			c.t.Fatalf("all-in-one did not start: %v\nstderr:\n%s", err, c.stderr)
		}
	case <-time.After(60 * time.Second):
		c.kill()
		c.t.Fatalf("all-in-one printed no banner within 60s\nstderr:\n%s", c.stderr)
	}
	c.t.Cleanup(func() {
		if c.cmd.ProcessState == nil {
			c.kill()
		}
	})
}

// readBanner reads the start-up banner: the CIMI endpoint and one health
// URL per service, ending with an empty line.
func (c *cloud) readBanner(r io.Reader) error {
	c.health = map[string]string{}
	sc := bufio.NewScanner(r)
	inHealth := false
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		switch {
		case len(f) == 0 && c.endpoint != "":
			return nil
		case len(f) == 3 && f[0] == "CIMI" && f[1] == "endpoint":
			c.endpoint = f[2]
		case len(f) >= 2 && f[0] == "NATS":
			c.natsAddr = strings.TrimPrefix(f[1], "nats://")
		case len(f) == 1 && f[0] == "health":
			inHealth = true
		case inHealth && len(f) == 2:
			c.health[f[0]] = f[1]
		}
	}
	return fmt.Errorf("output ended before the banner was complete: %v", sc.Err())
}

// kill ends the process with SIGKILL, as a power cut would.
func (c *cloud) kill() {
	_ = c.cmd.Process.Kill()
	<-c.exited
}

// stop asks the process to stop with SIGTERM and returns its exit error.
func (c *cloud) stop() error {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-c.exited:
		return err
	case <-time.After(60 * time.Second):
		return fmt.Errorf("still running 60s after SIGTERM; its goroutines:\n%s", c.dump())
	}
}

// dump ends a process that would not stop with SIGQUIT, on which the Go
// runtime prints every goroutine's stack, and returns that part of its
// standard error: what it was waiting for.
func (c *cloud) dump() string {
	_ = c.cmd.Process.Signal(syscall.SIGQUIT)
	select {
	case <-c.exited:
	case <-time.After(10 * time.Second):
		c.kill()
	}
	s := c.stderr.String()
	if i := strings.Index(s, "SIGQUIT"); i >= 0 {
		return s[i:]
	}
	return "(none printed)"
}

// get fetches url and returns the status and body.
func get(ctx context.Context, t testing.TB, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
