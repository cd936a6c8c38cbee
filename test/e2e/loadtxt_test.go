package e2e

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"stratuslab.dev/client/sdk"
)

// loadHeader is the first line of load.txt, as the installation tutorial
// shows it, its columns widened to their widest cell (the test driver's
// host has 16 TiB).
var loadHeader = regexp.MustCompile(`^ *ID NAME +RVM +TCPU +FCPU +ACPU +TMEM +FMEM +AMEM  STAT$`)

// dnsmasqHost is dnsmasq's dhcp-host=<hwaddr>,set:<tag>,<ipaddr>,<hostname>
// (dnsmasq(8)), as vmctl writes it.
var dnsmasqHost = regexp.MustCompile(`^dhcp-host=([0-9a-f]{2}:){5}[0-9a-f]{2},set:[a-z0-9-]+,(\d{1,3}\.){3}\d{1,3},[a-z0-9][a-z0-9-]*$`)

// TestLoadTxt runs the installation tutorial's
// `curl https://${FRONTEND_HOST}/load.txt` against the all-in-one: the
// one host is listed, anyone may read it, and a machine shows in it once
// placed (what it reserves) and running (the next heartbeat). The DHCP
// host entries of the address pools are the administrators', and give the
// machine's MAC address its IP address.
func TestLoadTxt(t *testing.T) {
	c := newCloud(t)
	c.start()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	base := strings.TrimSuffix(c.endpoint, "/cimi/cloudEntryPoint")
	password := adminPassword(t, c)
	admin := sdk.New(base, sdk.WithBasicAuth("admin", password))
	waitAdmin(ctx, t, admin)

	// The host, as anyone reads it.
	var before loadLine
	eventually(ctx, t, "load.txt listing the host", func() bool {
		lines, ok := loadTxt(ctx, t, base)
		if ok && len(lines) == 1 {
			before = lines[0]
		}
		return ok && len(lines) == 1 && before.stat == "on"
	})
	if before.rvm != 0 || before.acpu != before.tcpu || before.amem != before.tmem || before.fcpu != before.tcpu || before.fmem != before.tmem ||
		before.tcpu <= 0 || before.tmem <= 0 {
		t.Errorf("the host of a new cloud: %+v, want nothing running nor allocated", before)
	}

	disk := create(ctx, t, admin, "Volume", map[string]any{"size": 1})
	id := create(ctx, t, admin, "Machine", map[string]any{"image": strings.TrimPrefix(disk, "Volume/")})
	var m struct {
		DetailedState string
		CPU           int
		Memory        int64 // KiB
		Host          string
		Interfaces    []struct{ IP, MAC string } `json:"networkInterfaces"`
	}
	eventually(ctx, t, "the machine to be Running", func() bool {
		return admin.Get(ctx, id, &m) == nil && m.DetailedState == "Running"
	})
	if m.Host != "Host/"+before.id || m.CPU <= 0 || m.Memory <= 0 || len(m.Interfaces) != 1 {
		t.Fatalf("the running machine: %+v, want one interface, on Host/%s", m, before.id)
	}
	// What the machine holds is allocated at once; the agent counts it
	// running at its next heartbeat (every 10 s).
	var after loadLine
	eventually(ctx, t, "load.txt counting the machine", func() bool {
		lines, ok := loadTxt(ctx, t, base)
		if ok && len(lines) == 1 {
			after = lines[0]
		}
		return ok && len(lines) == 1 && after.rvm == 1
	})
	// Free CPU and memory: what running domains were given is not free.
	if after.acpu != before.acpu-100*m.CPU || after.amem != before.amem-m.Memory ||
		after.fcpu != before.fcpu-100*m.CPU || after.fmem != before.fmem-m.Memory ||
		after.tcpu != before.tcpu || after.tmem != before.tmem || after.stat != "on" {
		t.Errorf("load.txt with a machine of %d CPU and %d KiB: %+v, was %+v", m.CPU, m.Memory, after, before)
	}

	// The DHCP host entries: the machine's MAC address gets its IP.
	create(ctx, t, admin, "User", map[string]any{
		"username": "alice", "password": "alice-secret-pw", "enabled": true,
		"first-name": "alice", "last-name": "Tester", "email": "alice@example.org",
	})
	nic := m.Interfaces[0]
	status, body := fetch(ctx, t, base+"/dhcp/hosts?format=dnsmasq", "admin", password)
	if status != http.StatusOK {
		t.Fatalf("dnsmasq host entries as admin: %d %s", status, body)
	}
	entries := 0
	for _, line := range strings.Split(body, "\n") {
		if !strings.HasPrefix(line, "dhcp-host=") {
			continue
		}
		entries++
		if !dnsmasqHost.MatchString(line) {
			t.Errorf("not a dnsmasq dhcp-host line: %q", line)
		}
	}
	// The default pool is 192.168.122.10-192.168.122.250.
	if entries != 241 || !regexp.MustCompile(`(?m)^dhcp-host=`+regexp.QuoteMeta(nic.MAC)+`,set:public,`+regexp.QuoteMeta(nic.IP)+`,`).MatchString(body) {
		t.Errorf("%d dnsmasq entries, want 241 with %s for %s:\n%.2000s", entries, nic.IP, nic.MAC, body)
	}
	status, body = fetch(ctx, t, base+"/dhcp/hosts?format=dhcpd", "admin", password)
	if status != http.StatusOK || !strings.Contains(body, "hardware ethernet "+nic.MAC+"; fixed-address "+nic.IP+";") {
		t.Errorf("dhcpd host entries as admin: %d, want %s for %s:\n%.2000s", status, nic.IP, nic.MAC, body)
	}
	for _, tc := range []struct {
		user, password, format string
		status                 int
	}{
		{"admin", password, "bind", http.StatusBadRequest},
		{"alice", "alice-secret-pw", "dnsmasq", http.StatusForbidden},
		{"", "", "dnsmasq", http.StatusUnauthorized},
	} {
		status, body := fetch(ctx, t, base+"/dhcp/hosts?format="+tc.format, tc.user, tc.password)
		var e struct {
			Status  int
			Code    string
			Message string
		}
		if status != tc.status || json.Unmarshal([]byte(body), &e) != nil || e.Status != tc.status || e.Message == "" {
			t.Errorf("%s host entries as %q: %d %s, want a %d CIMI error", tc.format, tc.user, status, body, tc.status)
		}
	}

	// Killed, the machine leaves the table.
	if _, err := admin.Delete(ctx, id); err != nil {
		t.Fatal(err)
	}
	eventually(ctx, t, "load.txt without the machine", func() bool {
		lines, ok := loadTxt(ctx, t, base)
		if !ok || len(lines) != 1 {
			return false
		}
		l := lines[0]
		return l.rvm == 0 && l.acpu == before.acpu && l.amem == before.amem && l.fcpu == before.fcpu && l.fmem == before.fmem && l.stat == "on"
	})
	if err := c.stop(); err != nil {
		t.Error(err)
	}
}

// loadLine is one host of load.txt; memory in KiB.
type loadLine struct {
	id, name              string
	rvm, tcpu, fcpu, acpu int
	tmem, fmem, amem      int64
	stat                  string
}

// loadTxt reads load.txt without credentials, as the tutorial's curl
// does, and returns its hosts; false when it is not served (yet).
func loadTxt(ctx context.Context, t *testing.T, base string) ([]loadLine, bool) {
	t.Helper()
	status, body := fetch(ctx, t, base+"/load.txt", "", "")
	if status != http.StatusOK {
		return nil, false
	}
	lines := strings.Split(strings.TrimSuffix(body, "\n"), "\n")
	if !loadHeader.MatchString(lines[0]) {
		t.Fatalf("load.txt does not start with the header:\n%s", body)
	}
	var out []loadLine
	for _, line := range lines[1:] {
		f := strings.Fields(line)
		if len(f) != 10 {
			t.Fatalf("load.txt line %q has %d columns, want 10", line, len(f))
		}
		var l loadLine
		var err error
		num := func(s string) int64 {
			n, e := strconv.ParseInt(strings.TrimSuffix(s, "K"), 10, 64)
			if e != nil {
				err = e
			}
			return n
		}
		l.id, l.name, l.stat = f[0], f[1], f[9]
		l.rvm, l.tcpu, l.fcpu, l.acpu = int(num(f[2])), int(num(f[3])), int(num(f[4])), int(num(f[5]))
		l.tmem, l.fmem, l.amem = num(f[6]), num(f[7]), num(f[8])
		if err != nil || !strings.HasSuffix(f[6], "K") || !strings.HasSuffix(f[7], "K") || !strings.HasSuffix(f[8], "K") {
			t.Fatalf("load.txt line %q does not read: %v", line, err)
		}
		out = append(out, l)
	}
	return out, true
}

// fetch GETs url, with HTTP Basic credentials when user is not empty, and
// returns the status and body; a 200 must be plain text.
func fetch(ctx context.Context, t *testing.T, url, user, password string) (int, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	if ct := resp.Header.Get("Content-Type"); resp.StatusCode == http.StatusOK && ct != "text/plain; charset=utf-8" {
		t.Fatalf("GET %s: Content-Type %q, want plain text", url, ct)
	}
	return resp.StatusCode, string(b)
}
