package tgt

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// daemon is a tgtd started for one test.
type daemon struct {
	control int    // its -C control port
	portal  string // 127.0.0.1:<port> of its iSCSI portal
}

// syncBuffer collects tgtd's log while the test reads it.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// startTgtd runs a tgtd of its own in the foreground, with its iSCSI portal
// on a free loopback port and a control port no other tgtd uses, and kills
// it when the test ends. tgtd needs root. The test is skipped only when tgt
// is not installed.
func startTgtd(t *testing.T) daemon {
	t.Helper()
	bin, err := exec.LookPath("tgtd")
	if err != nil {
		t.Skip("tgtd is not installed (Debian package tgt, see scripts/deps.sh): the iSCSI exporter cannot be tested")
	}
	var logs []string
	for range 5 {
		d, log, ok := tryTgtd(t, bin)
		if ok {
			return d
		}
		logs = append(logs, log)
	}
	t.Fatalf("tgtd did not start (it needs root and a writable /var/run/tgtd):\n%s", strings.Join(logs, "\n---\n"))
	return daemon{}
}

// tryTgtd starts one tgtd. It fails when the daemon exits, or when the
// daemon answering on the control port does not have the portal asked for:
// either another tgtd holds that control port, or the portal's port was
// taken and tgtd fell back to listening on 0.0.0.0:3260, which it does
// without exiting.
func tryTgtd(t *testing.T, bin string) (daemon, string, bool) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	portal := ln.Addr().String()
	ln.Close()
	control := 10000 + rand.IntN(22000) // tgtd takes 0 to 32767
	var log syncBuffer
	cmd := exec.Command(bin, "-f", "--iscsi", "portal="+portal, "-C", strconv.Itoa(control))
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stop := func() {
		_ = cmd.Process.Kill() // tgtd ignores SIGTERM in the foreground
		<-exited
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		select {
		case <-exited:
			return daemon{}, fmt.Sprintf("%s exited: %s", cmd, log.String()), false
		default:
		}
		out, err := exec.Command("tgtadm", "-C", strconv.Itoa(control), "--lld", "iscsi", "--mode", "portal", "--op", "show").CombinedOutput()
		if err != nil {
			continue // not listening yet
		}
		if !strings.Contains(string(out), "Portal: "+portal+",") {
			stop()
			return daemon{}, fmt.Sprintf("%s: control port %d answers with portals %q\n%s", cmd, control, out, log.String()), false
		}
		t.Cleanup(func() {
			stop()
			sock := filepath.Join("/var/run/tgtd", "socket."+strconv.Itoa(control))
			_ = os.Remove(sock)
			_ = os.Remove(sock + ".lock")
			if t.Failed() {
				t.Logf("tgtd log:\n%s", log.String())
			}
		})
		return daemon{control: control, portal: portal}, "", true
	}
	stop()
	return daemon{}, fmt.Sprintf("%s did not answer on control port %d: %s", cmd, control, log.String()), false
}

// exporter returns an Exporter for d with the default configuration
// changed by opts.
func (d daemon) exporter(t *testing.T, opts ...func(*Config)) *Exporter {
	t.Helper()
	cfg := Config{ControlPort: d.control, Portal: d.portal}
	for _, o := range opts {
		o(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// adm runs tgtadm against d as an administrator would, failing the test
// when it fails.
func (d daemon) adm(t *testing.T, args ...string) string {
	t.Helper()
	args = append([]string{"-C", strconv.Itoa(d.control), "--lld", "iscsi"}, args...)
	out, err := exec.Command("tgtadm", args...).CombinedOutput()
	if err != nil {
		t.Fatalf("tgtadm %s: %v: %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// targets returns what d serves.
func (d daemon) targets(t *testing.T) []target {
	t.Helper()
	return parseShow(d.adm(t, "--mode", "target", "--op", "show"))
}
