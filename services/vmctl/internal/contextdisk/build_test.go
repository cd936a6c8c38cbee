package contextdisk

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"stratuslab.dev/platform/errs"
)

// tricky values must come out of cloud-init's bash-based parser exactly as
// they went in.
var trickyValues = []string{
	`double "quotes" and 'single' ones`,
	`dollar $HOME ${PATH} $(id) $((1+1)) $'x'`,
	"back`tick` \\backslash\\ and \\\nnewline after a backslash",
	"multi\nline\n\ntext\n",
	"  leading and trailing spaces  ",
	"tab\tand\rcarriage return",
	"unicode: é ü 日本語 🚀 \u2028 \u0085 \ufeff",
	"",
	"a=b=c",
	"!history !! !$",
	"glob * ? [a] ~",
	"; rm -rf / # comment",
	"\\",
	"$",
	"trailing backslash\\",
	"'",
	`"`,
}

func trickyPairs() []Pair {
	var pairs []Pair
	for i, v := range trickyValues {
		pairs = append(pairs, Pair{fmt.Sprintf("K%02d", i), v})
	}
	return append(pairs, Pair{"lower_case", "x"})
}

// testSpec is a disk that uses every feature.
func testSpec(method string) Spec {
	return Spec{
		Method:    method,
		MachineID: "42: #x 'y' \"z\" é",
		Hostname:  "vm-42.example.org",
		SSHKey:    "ssh-rsa AAAAB3NzaC1yc2E first: \"@host\" #1\n# a comment line\n\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5 second@host\n",
		Pairs:     trickyPairs(),
		CloudInit: []Part{
			{MIME: "text/cloud-config", Name: "café.yaml", Content: []byte("#cloud-config\nwrite_files:\n  - path: /x\n    content: \"日本語 $HOME `id`\"\n")},
			{MIME: PartSSH, Name: "extra.pub", Content: []byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 third@host\r\n")},
			{MIME: "text/x-shellscript", Name: "run.sh", Content: []byte("#!/bin/sh\r\necho 'hi'\n--==StratusLab-context-part==\n--==StratusLab-context-part==--\n")},
		},
		Network: Network{IP: "10.1.2.3", Netmask: "255.255.254.0", MAC: "02:00:0A:01:02:03", Gateway: "10.1.2.1", DNS: []string{"10.1.0.53", "2001:db8::53"}},
	}
}

var wantKeys = []string{
	"ssh-rsa AAAAB3NzaC1yc2E first: \"@host\" #1",
	"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 second@host",
	"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5 third@host",
}

// need skips t when a program is missing, naming the package to install.
func need(t *testing.T, prog, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(prog); err != nil {
		t.Skipf("%s is not installed: install the Debian package %s (scripts/deps.sh does)", prog, pkg)
	}
}

// python is Debian's interpreter, which has cloud-init's modules (a python3
// earlier on PATH, from pyenv for instance, has not).
const python = "/usr/bin/python3"

func needCloudInit(t *testing.T) {
	t.Helper()
	if out, err := exec.Command(python, "-c", "import cloudinit.sources.DataSourceOpenNebula, cloudinit.sources.DataSourceNoCloud").CombinedOutput(); err != nil {
		t.Skipf("Debian's cloud-init is not importable by %s: install the Debian package cloud-init (scripts/deps.sh does): %v\n%s", python, err, out)
	}
}

// extract writes img to a file and extracts it with xorriso, returning the
// directory.
func extract(t *testing.T, img []byte) string {
	t.Helper()
	need(t, "xorriso", "xorriso")
	dir := t.TempDir()
	iso := filepath.Join(dir, "disk.iso")
	if err := os.WriteFile(iso, img, 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "files")
	if b, err := exec.Command("xorriso", "-osirrox", "on", "-indev", iso, "-extract", "/", out).CombinedOutput(); err != nil {
		t.Fatalf("xorriso cannot extract the image: %v\n%s", err, b)
	}
	return out
}

// readDisk runs testdata/readdisk.py in mode on dir and decodes its JSON.
func readDisk(t *testing.T, mode, dir string, into any) {
	t.Helper()
	cmd := exec.Command(python, "testdata/readdisk.py", mode, dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("readdisk.py %s: %v\n%s", mode, err, stderr.Bytes())
	}
	if err := json.Unmarshal(out, into); err != nil {
		t.Fatalf("readdisk.py %s printed %s: %v", mode, out, err)
	}
}

// ciPart is a user data part as cloud-init hands it to its handlers.
type ciPart struct {
	Type     string `json:"type"`
	Filename string `json:"filename"`
	Content  []byte `json:"content"` // base64 in the JSON
}

type ciNetwork struct {
	Interfaces []struct {
		Name    string `json:"name"`
		MAC     string `json:"mac"`
		Subnets []struct {
			Type    string   `json:"type"`
			Address string   `json:"address"`
			Prefix  int      `json:"prefix"`
			Gateway string   `json:"gateway"`
			DNS     []string `json:"dns"`
			Routes  []struct {
				Network string `json:"network"`
				Prefix  int    `json:"prefix"`
				Gateway string `json:"gateway"`
			} `json:"routes"`
		} `json:"subnets"`
	} `json:"interfaces"`
}

// checkParts compares cloud-init's user data parts with the Spec's MIME
// parts.
func checkParts(t *testing.T, got []ciPart, s Spec) {
	t.Helper()
	var want []ciPart
	for _, p := range s.CloudInit {
		if p.MIME != PartSSH {
			want = append(want, ciPart{Type: p.MIME, Filename: p.Name, Content: p.Content})
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("cloud-init's user data parts:\n%+q\nwant\n%+q", got, want)
	}
}

// checkEth0 compares cloud-init's network state with testSpec's network.
func checkEth0(t *testing.T, n *ciNetwork, viaRoute bool) {
	t.Helper()
	if n == nil || len(n.Interfaces) != 1 || len(n.Interfaces[0].Subnets) != 1 {
		t.Fatalf("cloud-init's network state has not one interface with one subnet: %+v", n)
	}
	i, s := n.Interfaces[0], n.Interfaces[0].Subnets[0]
	if i.Name != "eth0" || i.MAC != "02:00:0a:01:02:03" {
		t.Errorf("interface %s with MAC %s, want eth0 with 02:00:0a:01:02:03", i.Name, i.MAC)
	}
	if s.Type != "static" || s.Address != "10.1.2.3" || s.Prefix != 23 {
		t.Errorf("subnet %s %s/%d, want static 10.1.2.3/23", s.Type, s.Address, s.Prefix)
	}
	gw := s.Gateway
	if viaRoute {
		if len(s.Routes) != 1 || s.Routes[0].Network != "0.0.0.0" || s.Routes[0].Prefix != 0 {
			t.Fatalf("routes %+v, want one default route", s.Routes)
		}
		gw = s.Routes[0].Gateway
	}
	if gw != "10.1.2.1" {
		t.Errorf("gateway %q, want 10.1.2.1", gw)
	}
	if !reflect.DeepEqual(s.DNS, []string{"10.1.0.53", "2001:db8::53"}) {
		t.Errorf("name servers %q, want 10.1.0.53 and 2001:db8::53", s.DNS)
	}
}

// checkPairs compares pairs parsed from context.sh with the Spec's.
func checkContextPairs(t *testing.T, md map[string]string, pairs []Pair) {
	t.Helper()
	for _, p := range pairs {
		got, ok := md[p.Key]
		if !ok {
			t.Errorf("context key %s is missing", p.Key)
		} else if got != p.Value {
			t.Errorf("context key %s = %q, want %q", p.Key, got, p.Value)
		}
	}
}

func TestOpenNebulaDatasourceReadsMethodOne(t *testing.T) {
	t.Parallel()
	needCloudInit(t)
	s := testSpec(MethodOne)
	img, err := Build(s)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Metadata   map[string]string `json:"metadata"`
		PublicKeys []string          `json:"public_keys"`
		Hostname   string            `json:"hostname"`
		Userdata   []ciPart          `json:"userdata"`
		Network    *ciNetwork        `json:"network"`
	}
	readDisk(t, "opennebula", extract(t, img), &got)
	checkContextPairs(t, got.Metadata, s.Pairs)
	if !reflect.DeepEqual(got.PublicKeys, wantKeys) {
		t.Errorf("public keys %q, want %q", got.PublicKeys, wantKeys)
	}
	if got.Hostname != s.Hostname {
		t.Errorf("hostname %q, want %q", got.Hostname, s.Hostname)
	}
	checkParts(t, got.Userdata, s)
	checkEth0(t, got.Network, false)
}

func TestOpenNebulaDatasourceReadsRawUserData(t *testing.T) {
	t.Parallel()
	needCloudInit(t)
	raw := []byte("#cloud-config\nhostname: \"x'$y\"\n")
	img, err := Build(Spec{UserData: raw})
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Userdata []ciPart          `json:"userdata"`
		Metadata map[string]string `json:"metadata"`
	}
	readDisk(t, "opennebula", extract(t, img), &got)
	if len(got.Userdata) != 1 || got.Userdata[0].Type != "text/cloud-config" || !bytes.Equal(got.Userdata[0].Content, raw) {
		t.Errorf("user data parts %+q, want one text/cloud-config part %q", got.Userdata, raw)
	}
	if _, ok := got.Metadata["SSH_PUBLIC_KEY"]; ok {
		t.Errorf("a disk without key has SSH_PUBLIC_KEY: %q", got.Metadata)
	}
}

func TestNoCloudDatasourceReadsMethodCloudInit(t *testing.T) {
	t.Parallel()
	needCloudInit(t)
	s := testSpec(MethodCloudInit)
	img, err := Build(s)
	if err != nil {
		t.Fatal(err)
	}
	dir := extract(t, img)
	var got struct {
		InstanceID string     `json:"instance_id"`
		Hostname   string     `json:"hostname"`
		PublicKeys []string   `json:"public_keys"`
		Userdata   []ciPart   `json:"userdata"`
		Network    *ciNetwork `json:"network"`
	}
	readDisk(t, "nocloud", dir, &got)
	if got.InstanceID != s.MachineID || got.Hostname != s.Hostname {
		t.Errorf("instance %q host %q, want %q and %q", got.InstanceID, got.Hostname, s.MachineID, s.Hostname)
	}
	if !reflect.DeepEqual(got.PublicKeys, wantKeys) {
		t.Errorf("public keys %q, want %q", got.PublicKeys, wantKeys)
	}
	checkParts(t, got.Userdata, s)
	checkEth0(t, got.Network, true)

	// The same disk's context.sh, for images built for StratusLab.
	var sh struct {
		Metadata       map[string]string `json:"metadata"`
		AuthorizedKeys string            `json:"authorized_keys"`
		Userdata       []ciPart          `json:"userdata"`
	}
	readDisk(t, "shell", dir, &sh)
	if sh.Metadata["CONTEXT_METHOD"] != "cloud-init" {
		t.Errorf("CONTEXT_METHOD = %q, want cloud-init", sh.Metadata["CONTEXT_METHOD"])
	}
	if want := strings.Join(wantKeys, "\n") + "\n"; sh.AuthorizedKeys != want {
		t.Errorf("CLOUD_INIT_AUTHORIZED_KEYS holds %q, want %q", sh.AuthorizedKeys, want)
	}
	checkParts(t, sh.Userdata, s)
	checkContextPairs(t, sh.Metadata, s.Pairs)
}

// TestShellQuotingRandomValues sends random values, made of the characters
// shells treat specially, through cloud-init's bash-based parser.
func TestShellQuotingRandomValues(t *testing.T) {
	t.Parallel()
	needCloudInit(t)
	alphabet := []rune("aZ09 _-=#;&|<>(){}[]*?~!%^'\"$`\\\n\r\t\x01\x1f\x7féü日本🚀\u0085\u2028\ufeff")
	rng := rand.New(rand.NewPCG(1, 2))
	var pairs []Pair
	for i := range 300 {
		r := make([]rune, rng.IntN(40))
		for j := range r {
			r[j] = alphabet[rng.IntN(len(alphabet))]
		}
		pairs = append(pairs, Pair{fmt.Sprintf("R%03d", i), string(r)})
	}
	img, err := Build(Spec{Pairs: pairs})
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Metadata map[string]string `json:"metadata"`
	}
	readDisk(t, "shell", extract(t, img), &got)
	checkContextPairs(t, got.Metadata, pairs)
}

func TestNoCloudReadsLiteralUserData(t *testing.T) {
	t.Parallel()
	needCloudInit(t)
	literal := []byte("#!/bin/sh\necho \"$(hostname)\" 日本\n")
	img, err := Build(Spec{Method: MethodCloudInit, MachineID: "i-1", CloudInit: []Part{{MIME: PartNone, Name: "x", Content: literal}}})
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		Userdata   []ciPart   `json:"userdata"`
		PublicKeys []string   `json:"public_keys"`
		Network    *ciNetwork `json:"network"`
	}
	readDisk(t, "nocloud", extract(t, img), &got)
	if len(got.Userdata) != 1 || got.Userdata[0].Type != "text/x-shellscript" || !bytes.Equal(got.Userdata[0].Content, literal) {
		t.Errorf("user data parts %+q, want one text/x-shellscript part %q", got.Userdata, literal)
	}
	if len(got.PublicKeys) != 0 || got.Network != nil {
		t.Errorf("a disk without keys or network gave keys %q and network %+v", got.PublicKeys, got.Network)
	}
}

// TestContextShellForSh sources context.sh with the system's sh (dash on
// Debian, as the HEPiX scripts and init.sh do) and compares every value.
func TestContextShellForSh(t *testing.T) {
	t.Parallel()
	need(t, "sh", "dash")
	s := testSpec(MethodOne)
	_, files, err := layout(s)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	for _, f := range files {
		if err := os.WriteFile(filepath.Join(dir, f.name), f.data, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, p := range s.Pairs {
		out, err := exec.Command("sh", "-c", `. "$1/context.sh" && eval "printf %s \"\$$2\""`, "sh", dir, p.Key).Output()
		if err != nil {
			t.Fatalf("sh cannot source context.sh: %v", err)
		}
		if string(out) != p.Value {
			t.Errorf("sh reads %s as %q, want %q", p.Key, out, p.Value)
		}
	}
}

func TestInitScriptInstallsKeysOnce(t *testing.T) {
	t.Parallel()
	need(t, "sh", "dash")
	img, err := Build(testSpec(MethodOne))
	if err != nil {
		t.Fatal(err)
	}
	dir := extract(t, img)
	home := filepath.Join(t.TempDir(), "root")
	for range 2 { // a second boot adds nothing
		cmd := exec.Command(filepath.Join(dir, "init.sh"))
		cmd.Env = append(os.Environ(), "STRATUSLAB_ROOT_HOME="+home)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("init.sh: %v\n%s", err, out)
		}
	}
	got, err := os.ReadFile(filepath.Join(home, ".ssh", "authorized_keys"))
	if err != nil {
		t.Fatal(err)
	}
	if want := strings.Join(wantKeys, "\n") + "\n"; string(got) != want {
		t.Errorf("authorized_keys holds %q, want %q", got, want)
	}
	if fi, err := os.Stat(filepath.Join(home, ".ssh", "authorized_keys")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("authorized_keys mode %v (%v), want 0600", fi.Mode(), err)
	}
}

// TestISOTools checks the image with the tools of three separate ISO 9660
// implementations: libisofs (xorriso), genisoimage's isoinfo and
// util-linux's blkid.
func TestISOTools(t *testing.T) {
	t.Parallel()
	for _, method := range []string{MethodOne, MethodCloudInit} {
		s := testSpec(method)
		label, want, err := layout(s)
		if err != nil {
			t.Fatal(err)
		}
		img, err := Build(s)
		if err != nil {
			t.Fatal(err)
		}
		if len(img)%sectorSize != 0 || len(img) < minImageSize {
			t.Errorf("%s: image of %d bytes, want whole sectors and at least %d", method, len(img), minImageSize)
		}
		dir := extract(t, img)
		entries, err := os.ReadDir(dir)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) != len(want) {
			t.Errorf("%s: xorriso extracted %d files, want %d", method, len(entries), len(want))
		}
		for _, f := range want {
			got, err := os.ReadFile(filepath.Join(dir, f.name))
			if err != nil {
				t.Errorf("%s: %v", method, err)
				continue
			}
			if !bytes.Equal(got, f.data) {
				t.Errorf("%s: %s differs after extraction:\n%q\nwant\n%q", method, f.name, got, f.data)
			}
			fi, _ := os.Stat(filepath.Join(dir, f.name))
			if fi.Mode().Perm() != os.FileMode(f.mode) {
				t.Errorf("%s: %s has mode %v, want %v", method, f.name, fi.Mode().Perm(), os.FileMode(f.mode))
			}
		}
		iso := filepath.Join(t.TempDir(), "disk.iso")
		if err := os.WriteFile(iso, img, 0o644); err != nil {
			t.Fatal(err)
		}

		need(t, "isoinfo", "genisoimage")
		out, err := exec.Command("isoinfo", "-d", "-i", iso).CombinedOutput()
		if err != nil {
			t.Fatalf("isoinfo -d: %v\n%s", err, out)
		}
		for _, line := range []string{"Volume id: " + label, "Rock Ridge signatures version 1 found", "Logical block size is: 2048"} {
			if !strings.Contains(string(out), line+"\n") {
				t.Errorf("%s: isoinfo -d does not say %q:\n%s", method, line, out)
			}
		}
		out, err = exec.Command("isoinfo", "-i", iso, "-x", "/CONTEXT.SH;1").Output()
		if err != nil || !bytes.Equal(out, want[len(want)-1].data) {
			t.Errorf("%s: isoinfo -x reads context.sh as %q (%v)", method, out, err)
		}
		out, err = exec.Command("isoinfo", "-R", "-f", "-i", iso).Output()
		var names []string
		for _, f := range want {
			names = append(names, "/"+f.name)
		}
		if got := strings.Fields(string(out)); err != nil || !sameSet(got, names) {
			t.Errorf("%s: isoinfo -R -f lists %q (%v), want %q", method, got, err, names)
		}

		need(t, "blkid", "util-linux")
		out, err = exec.Command("blkid", "-p", "-o", "export", iso).Output()
		if err != nil {
			t.Fatalf("blkid -p: %v", err)
		}
		for _, line := range []string{"TYPE=iso9660", "LABEL=" + label} {
			if !strings.Contains(string(out), line+"\n") {
				t.Errorf("%s: blkid -p does not report %s:\n%s", method, line, out)
			}
		}
	}
}

func sameSet(a, b []string) bool {
	m := map[string]int{}
	for _, s := range a {
		m[s]++
	}
	for _, s := range b {
		m[s]--
	}
	for _, n := range m {
		if n != 0 {
			return false
		}
	}
	return true
}

func TestBuildIsDeterministic(t *testing.T) {
	t.Parallel()
	for _, method := range []string{MethodOne, MethodCloudInit} {
		a, err := Build(testSpec(method))
		if err != nil {
			t.Fatal(err)
		}
		b, err := Build(testSpec(method))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s: two builds of the same Spec differ", method)
		}
		if len(a) != minImageSize {
			t.Errorf("%s: a small disk takes %d bytes, want %d", method, len(a), minImageSize)
		}
	}
	one, _ := Build(testSpec(MethodOne))
	s := testSpec(MethodOne)
	s.Pairs[0].Value += "!"
	other, _ := Build(s)
	if bytes.Equal(one, other) {
		t.Error("a changed context value did not change the image")
	}
}

func TestLabels(t *testing.T) {
	t.Parallel()
	need(t, "blkid", "util-linux")
	for _, tt := range []struct {
		s     Spec
		label string
	}{
		{Spec{}, "_STRATUSLAB"},
		{Spec{Method: MethodOne, Label: "CONTEXT"}, "CONTEXT"},
		{Spec{Method: MethodCloudInit, MachineID: "i"}, "cidata"},
	} {
		img, err := Build(tt.s)
		if err != nil {
			t.Fatal(err)
		}
		iso := filepath.Join(t.TempDir(), "disk.iso")
		if err := os.WriteFile(iso, img, 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("blkid", "-p", "-s", "LABEL", "-o", "value", iso).Output()
		if got := strings.TrimSpace(string(out)); err != nil || got != tt.label {
			t.Errorf("blkid reads label %q (%v), want %q", got, err, tt.label)
		}
	}
}

func TestValidateErrors(t *testing.T) {
	t.Parallel()
	big := bytes.Repeat([]byte{0}, 0)
	for i := range 40000 { // incompressible enough: a counter's digits
		big = fmt.Appendf(big, "%d,", i*7919%100003)
	}
	net := Network{IP: "10.0.0.2", Netmask: "255.255.255.0"}
	tests := []struct {
		name    string
		s       Spec
		mention string
	}{
		{"unknown method", Spec{Method: "hepix"}, `method "hepix" is unknown`},
		{"cloud-init without id", Spec{Method: MethodCloudInit}, "needs a machine id"},
		{"bad label", Spec{Label: "MY-DISK"}, "only letters, digits and _"},
		{"long label", Spec{Label: strings.Repeat("L", 33)}, "1 to 32"},
		{"id with newline", Spec{MachineID: "a\nb"}, "control character"},
		{"bad hostname", Spec{Hostname: "-bad-.org"}, "host name"},
		{"hostname with space", Spec{Hostname: "a b"}, "host name"},
		{"key with control", Spec{SSHKey: "ssh-rsa A\x1b[2J"}, "control character"},
		{"network without IP", Spec{Network: Network{Gateway: "10.0.0.1"}}, "no IP address"},
		{"IPv6 address", Spec{Network: Network{IP: "2001:db8::1", Netmask: "255.255.255.0"}}, "not an IPv4 address"},
		{"no netmask", Spec{Network: Network{IP: "10.0.0.2"}}, "netmask"},
		{"holey netmask", Spec{Network: Network{IP: "10.0.0.2", Netmask: "255.0.255.0"}}, "contiguous"},
		{"bad MAC", Spec{Network: Network{IP: "10.0.0.2", Netmask: "255.0.0.0", MAC: "02:00:00"}}, "MAC address"},
		{"bad gateway", Spec{Network: Network{IP: "10.0.0.2", Netmask: "255.0.0.0", Gateway: "gw"}}, "gateway"},
		{"bad DNS", Spec{Network: Network{IP: "10.0.0.2", Netmask: "255.0.0.0", DNS: []string{"dns"}}}, "name server"},
		{"reserved key", Spec{Pairs: []Pair{{"IFS", "x"}}}, "reserves"},
		{"bad key", Spec{Pairs: []Pair{{"a.b", "x"}}}, "not a shell variable name"},
		{"duplicate key", Spec{Pairs: []Pair{{"A", "1"}, {"A", "2"}}}, "given twice"},
		{"system key one", Spec{Network: net, Pairs: []Pair{{"ETH0_IP", "1.2.3.4"}}}, `"ETH0_IP" is given twice or is one the machine's context sets`},
		{"system key cloud-init", Spec{Method: MethodCloudInit, MachineID: "i", Pairs: []Pair{{"CONTEXT_METHOD", "one"}}}, "sets itself"},
		{"NUL value", Spec{Pairs: []Pair{{"A", "\x00"}}}, "NUL"},
		{"bad UTF-8", Spec{Pairs: []Pair{{"A", "\xc3"}}}, "UTF-8"},
		{"huge pairs", Spec{Pairs: []Pair{{"A", strings.Repeat("x", maxPairBytes)}}}, "more than the 65536 allowed"},
		{"raw and parts", Spec{UserData: []byte("x"), CloudInit: []Part{{MIME: "text/plain", Content: []byte("y")}}}, "not both"},
		{"bad part type", Spec{CloudInit: []Part{{MIME: "plain"}}}, "is unknown"},
		{"part name with newline", Spec{CloudInit: []Part{{MIME: "text/plain", Name: "a\nb"}}}, "control character"},
		{"oversized user data", Spec{UserData: big}, "more than the 16384 allowed"},
	}
	for _, tt := range tests {
		err := Validate(tt.s)
		if errs.CodeOf(err) != errs.Invalid || !strings.Contains(err.Error(), tt.mention) {
			t.Errorf("%s: Validate = %v, want an invalid error mentioning %q", tt.name, err, tt.mention)
		}
		if _, berr := Build(tt.s); berr == nil || berr.Error() != err.Error() {
			t.Errorf("%s: Build = %v, want Validate's error", tt.name, berr)
		}
	}
	// A user may set a key the disk would set only when it does not.
	if err := Validate(Spec{Pairs: []Pair{{"ETH0_IP", "10.0.0.9"}}}); err != nil {
		t.Errorf("ETH0_IP without a network: %v", err)
	}
}
