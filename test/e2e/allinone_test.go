package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"

	"stratuslab.dev/client/sdk"
)

var services = []string{"authn", "cimi", "marketplace", "pdisk", "registration", "vmctl"}

// TestAllInOne starts the cloud, finds every service on the bus and its
// health green, restarts it on the same data directory and finds the same
// cloud again.
func TestAllInOne(t *testing.T) {
	c := newCloud(t)
	c.start()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	cep, err := sdk.New(strings.TrimSuffix(c.endpoint, "/cimi/cloudEntryPoint")).CloudEntryPoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if cep["id"] != "CloudEntryPoint" || cep["resourceURI"] != "http://schemas.dmtf.org/cimi/1/CloudEntryPoint" {
		t.Fatalf("entry point %v", cep)
	}

	waitServices(t, c.natsURL(), services)
	for _, s := range services {
		url, ok := c.health[s]
		if !ok {
			t.Errorf("no health URL for %s in the banner", s)
			continue
		}
		for _, path := range []string{"/healthz", "/readyz"} {
			u := strings.TrimSuffix(url, "/healthz") + path
			if status, body := get(ctx, t, u); status != 200 {
				t.Errorf("%s %s: %d %s", s, path, status, body)
			}
		}
		if status, body := get(ctx, t, strings.TrimSuffix(url, "/healthz")+"/metrics"); status != 200 || !strings.Contains(body, "go_goroutines") {
			t.Errorf("%s /metrics: %d", s, status)
		}
	}

	password := adminPassword(t, c)
	if !strings.Contains(c.stderr.String(), "User/admin entry created; initial password is "+password) {
		t.Errorf("the log does not give the administrator's first password")
	}

	if err := c.stop(); err != nil {
		t.Fatalf("SIGTERM: %v\nstderr:\n%s", err, c.stderr)
	}
	c.start()
	if again := adminPassword(t, c); again != password {
		t.Errorf("the administrator password changed across a restart")
	}
	if strings.Contains(c.stderr.String(), "initial password") {
		t.Errorf("a restart created the administrator again")
	}
	again, err := sdk.New(strings.TrimSuffix(c.endpoint, "/cimi/cloudEntryPoint")).CloudEntryPoint(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if again["created"] != cep["created"] {
		t.Errorf("the cloud was created at %v, after a restart at %v", cep["created"], again["created"])
	}
	if err := c.stop(); err != nil {
		t.Fatalf("SIGTERM: %v\nstderr:\n%s", err, c.stderr)
	}
}

// adminPassword waits for the first start's password file and checks that
// only its owner may read it.
func adminPassword(t *testing.T, c *cloud) string {
	t.Helper()
	path := filepath.Join(c.dataDir, "admin-password")
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		fi, err := os.Stat(path)
		if err != nil || fi.Size() == 0 {
			continue
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", path, fi.Mode().Perm())
		}
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	t.Fatalf("no %s after 30s\n%s", path, c.stderr)
	return ""
}

// waitServices waits until exactly the services want answer a ping.
func waitServices(t *testing.T, url string, want []string) {
	t.Helper()
	var got []string
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		if got = discover(t, url); slices.Equal(got, want) {
			return
		}
	}
	t.Errorf("services answering $SRV.PING: %v, want %v", got, want)
}

// discover asks the bus which micro services answer a ping, as
// `nats micro ls` does.
func discover(t *testing.T, url string) []string {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	inbox := nats.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.PublishRequest("$SRV.PING", inbox, nil); err != nil {
		t.Fatal(err)
	}
	var names []string
	for {
		msg, err := sub.NextMsg(time.Second)
		if err != nil {
			break
		}
		var ping micro.Ping
		if err := json.Unmarshal(msg.Data, &ping); err != nil {
			t.Fatalf("ping reply %q: %v", msg.Data, err)
		}
		names = append(names, ping.Name)
	}
	slices.Sort(names)
	return names
}

// TestStopWhileStarting stops the cloud as soon as its banner appears,
// while the services may still be loading their settings: a requested
// stop is a clean exit whatever the services were doing.
func TestStopWhileStarting(t *testing.T) {
	c := newCloud(t)
	for range 4 {
		c.start()
		if err := c.stop(); err != nil {
			t.Fatalf("SIGTERM right after start: %v\nstderr:\n%s", err, c.stderr)
		}
	}
}
