package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func mustMachine(t *testing.T, doc string) machine {
	t.Helper()
	m, err := decodeMachine(json.RawMessage(doc))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestWriteMachineTable checks the table against the StratusLab guide's
// examples, byte for byte, and how columns widen.
func TestWriteMachineTable(t *testing.T) {
	t.Parallel()
	running := `{"vmId":4710,"detailedState":"Running","state":"STARTED","cpu":1,"memory":1572864,"cpuPercent":8,
		"hostname":"vm-152.lal.stratuslab.eu","ip":"134.158.75.152","name":"one-4710","type":"m1.small",
		"id":"Machine/0f8f6b8e-0000-4000-8000-000000004710"}`
	done := strings.Replace(strings.Replace(running, `"Running"`, `"Done"`, 1), `"cpuPercent":8`, `"cpuPercent":1`, 1)
	for _, tc := range []struct {
		name string
		docs []string
		wide bool
		want string
	}{
		{"no machine", nil, false, "id  state     vcpu memory    cpu% host/ip                 name\n"},
		{"the guide's running machine", []string{running}, false,
			"id   state     vcpu memory    cpu% host/ip                  name\n" +
				"4710 Running   1    1572864   8    vm-152.lal.stratuslab.eu one-4710\n"},
		{"the guide's killed machine", []string{done}, false,
			"id   state     vcpu memory    cpu% host/ip                  name\n" +
				"4710 Done      1    1572864   1    vm-152.lal.stratuslab.eu one-4710\n"},
		{"no host name: the ip; a failure under its line; no cpu%", []string{
			`{"vmId":7,"detailedState":"Failed","cpu":2,"memory":6291456,"ip":"10.1.0.8","name":"db","stateMessage":" no host has room \n"}`,
			`{"vmId":12,"state":"CREATING","cpu":1,"memory":524288,"networkInterfaces":[{"network":"local","ip":"10.1.0.13"}],"name":"one-12"}`,
		}, false,
			"id  state     vcpu memory    cpu% host/ip                 name\n" +
				"7   Failed    2    6291456   0    10.1.0.8                db\n" +
				"    no host has room\n" +
				"12  CREATING  1    524288    0    10.1.0.13               one-12\n"},
		{"long values widen their column", []string{
			`{"vmId":123456,"detailedState":"Running","cpu":128,"memory":1073741824,"cpuPercent":12.6,"hostname":"a-rather-long-host-name.example.org","name":"x"}`,
		}, false,
			"id     state     vcpu memory     cpu% host/ip                             name\n" +
				"123456 Running   128  1073741824 13   a-rather-long-host-name.example.org x\n"},
		{"-v columns", []string{running}, true,
			"id   state     vcpu memory    cpu% host/ip                  type      ip              uuid                                 name\n" +
				"4710 Running   1    1572864   8    vm-152.lal.stratuslab.eu m1.small  134.158.75.152  0f8f6b8e-0000-4000-8000-000000004710 one-4710\n"},
	} {
		var ms []machine
		for _, d := range tc.docs {
			ms = append(ms, mustMachine(t, d))
		}
		var b bytes.Buffer
		writeMachineTable(&b, ms, tc.wide)
		if b.String() != tc.want {
			t.Errorf("%s:\n%q\nwant\n%q", tc.name, b.String(), tc.want)
		}
	}
}

func TestWriteMachineDetail(t *testing.T) {
	t.Parallel()
	m := mustMachine(t, `{"id":"Machine/0f8f6b8e-0000-4000-8000-000000000042","vmId":42,"name":"one-42","owner":"alice",
		"detailedState":"Failed","stateMessage":"the image's checksum is wrong","stateChanged":"2026-03-01T10:00:00Z",
		"type":"m1.large","cpu":2,"memory":6291456,"swapMiB":6144,
		"image":{"url":"https://example.org/i.img","bytes":1024,"sha1":"da39a3ee5e6b4b0d3255bfef95601890afd80709"},
		"networkInterfaces":[{"network":"public","ip":"192.0.2.42","mac":"0a:0a:00:00:00:2a"}],"hostname":"vm-42.example.org",
		"disks":[{"role":"root","device":"vda","sizeMiB":10240},{"role":"persistent","volume":"Volume/4ec6d6f8-7ac6-4d70-9e0a-2c4dc3a5ab51","device":"vdc","hotPlugged":true},{"role":"context","readOnly":true}],
		"context":{"method":"cloud-init","sshKey":"ssh-ed25519 AAAA","pairs":[{"key":"A","value":"1"},{"key":"B","value":"2"}],"cloudInit":"cloud-config,c.yaml"},
		"save":{"title":"web"},"savedVolume":"Volume/11111111-1111-4111-8111-111111111111","host":"Host/node-1","created":"2026-03-01T09:59:00Z"}`)
	var b bytes.Buffer
	writeMachineDetail(&b, m, time.FixedZone("CET", 3600))
	want := `:: MACHINE 42 0f8f6b8e-0000-4000-8000-000000000042
        name: one-42
        owner: alice
        state: Failed since 2026/03/01 11:00:00
        message: the image's checksum is wrong
        type: m1.large: 2 CPU, 6144 MiB RAM, 6144 MiB swap
        image: https://example.org/i.img (1024 bytes, SHA-1 da39a3ee5e6b4b0d3255bfef95601890afd80709)
        network: public 192.0.2.42 mac 0a:0a:00:00:00:2a
        hostname: vm-42.example.org
        disk vda: root 10240 MiB
        disk vdc: persistent 4ec6d6f8-7ac6-4d70-9e0a-2c4dc3a5ab51 hot-plugged
        disk ?: context read-only
        context: cloud-init, SSH key, pairs A B, cloud-init cloud-config,c.yaml
        save: "web"
        saved disk: 11111111-1111-4111-8111-111111111111
        host: Host/node-1
        created: 2026/03/01 10:59:00
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
}

func TestStartOutput(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	writeStartBanner(&b, 1)
	writeStarted(&b, 1, mustMachine(t, `{"vmId":1,"ip":"134.158.75.42"}`))
	want := "\n :::::::::::::::::::::::::\n :: Starting machine(s) ::\n :::::::::::::::::::::::::\n :: Starting 1 machine\n :: Machine 1 (vm ID: 1)\n Public ip: 134.158.75.42\n"
	if b.String() != want {
		t.Errorf("got\n%q\nwant\n%q", b.String(), want)
	}
	b.Reset()
	writeStartBanner(&b, 3)
	writeStarted(&b, 2, mustMachine(t, `{"vmId":8,"networkInterfaces":[{"network":"local","ip":"10.1.0.9"}]}`))
	if !strings.Contains(b.String(), " :: Starting 3 machines\n :: Machine 2 (vm ID: 8)\n Local ip: 10.1.0.9\n") {
		t.Errorf("3 machines, local: %q", b.String())
	}
}

func TestWriteTypes(t *testing.T) {
	t.Parallel()
	var b bytes.Buffer
	writeTypes(&b, standardTypes(), "m1.large")
	want := `  Type              CPU        RAM       SWAP
  c1.medium       2 CPU    1536 MB    1536 MB
  c1.xlarge       4 CPU    6144 MB    6144 MB
* m1.large        2 CPU    6144 MB    6144 MB
  m1.medium       1 CPU    3072 MB    3072 MB
  m1.small        1 CPU    1536 MB    1536 MB
  m1.xlarge       4 CPU    8192 MB    8192 MB
  t1.micro        1 CPU     512 MB     512 MB
`
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	b.Reset()
	writeTypes(&b, []machineType{{Name: "gpu.very-large", CPU: 32, MemoryMiB: 262144, SwapMiB: 0}}, "m1.small")
	if want := "  Type                  CPU        RAM       SWAP\n  gpu.very-large     32 CPU  262144 MB       0 MB\n"; b.String() != want {
		t.Errorf("a long name, memoryMiB:\n%q\nwant\n%q", b.String(), want)
	}
}

func TestParseMachineRef(t *testing.T) {
	t.Parallel()
	const u = "0f8f6b8e-0000-4000-8000-000000000042"
	for _, tc := range []struct {
		in     string
		vmID   int64
		uuid   string
		filter string
	}{
		{"42", 42, "", "vmId=42"},
		{" 7 ", 7, "", "vmId=7"},
		{"0", 0, "", "vmId=0"},
		{u, -1, u, "uuid='" + u + "'"},
		{"Machine/" + strings.ToUpper(u), -1, u, "uuid='" + u + "'"},
	} {
		r, err := parseMachineRef(tc.in)
		if err != nil || r.vmID != tc.vmID || r.uuid != tc.uuid || r.filter() != tc.filter {
			t.Errorf("%q: %+v %v", tc.in, r, err)
		}
	}
	for _, bad := range []string{"", "-1", "+3", "4.5", "one-42", "Volume/" + u, "99999999999999999999"} {
		var ue usageError
		if _, err := parseMachineRef(bad); !errors.As(err, &ue) || !strings.Contains(err.Error(), "is not a machine: give its vm ID") {
			t.Errorf("%q: %v", bad, err)
		}
	}
	refs, err := parseMachineRefs([]string{"4", "4", u, "Machine/" + u, "5"})
	if err != nil || len(refs) != 3 {
		t.Errorf("repeats: %+v %v", refs, err)
	}
}

func TestParseImage(t *testing.T) {
	t.Parallel()
	const sha = "DA39A3EE5E6B4B0D3255BFEF95601890AFD80709"
	for _, tc := range []struct {
		arg, sha1 string
		bytes     int64
		bytesSet  bool
		want      imageRef
		bad       string
	}{
		{"KhGzWhB9ZZv5ZkLSZqm6pkWx7ZF", "", 0, false, imageRef{marketplace: "KhGzWhB9ZZv5ZkLSZqm6pkWx7ZF"}, ""},
		{" BN1EEkPiBx87_uLj2-sdybSI-Xb ", "", 0, false, imageRef{marketplace: "BN1EEkPiBx87_uLj2-sdybSI-Xb"}, ""},
		{"4EC6D6F8-7AC6-4D70-9E0A-2C4DC3A5AB51", "", 0, false, imageRef{volume: "4ec6d6f8-7ac6-4d70-9e0a-2c4dc3a5ab51"}, ""},
		{"Volume/4ec6d6f8-7ac6-4d70-9e0a-2c4dc3a5ab51", "", 0, false, imageRef{volume: "4ec6d6f8-7ac6-4d70-9e0a-2c4dc3a5ab51"}, ""},
		{"https://example.org/ttylinux.img", sha, 1024, true, imageRef{url: "https://example.org/ttylinux.img", sha1: strings.ToLower(sha), bytes: 1024}, ""},
		{"HELLO", "", 0, false, imageRef{tag: "HELLO"}, ""},
		{"KhGzWhB9ZZv5ZkLSZqm6pkWx7Z", "", 0, false, imageRef{tag: "KhGzWhB9ZZv5ZkLSZqm6pkWx7Z"}, ""}, // 26: looked up, then explained
		{"", "", 0, false, imageRef{}, "give the image to start"},
		{"Volume/nope", "", 0, false, imageRef{}, "is not a disk uuid"},
		{"https://example.org/i.img", "", 1024, true, imageRef{}, "needs its SHA-1"},
		{"https://example.org/i.img", "abc", 1024, true, imageRef{}, "needs its SHA-1"},
		{"https://example.org/i.img", sha, 0, false, imageRef{}, "needs its exact size: --bytes"},
		{"https://example.org/i.img", sha, 0, true, imageRef{}, "needs its exact size"},
		{"http:///i.img", sha, 1, true, imageRef{}, "not a URL one can download from"},
		{"ftp://example.org/i.img", "", 0, false, imageRef{}, "only http and https URLs"},
		{"KhGzWhB9ZZv5ZkLSZqm6pkWx7ZF", sha, 0, false, imageRef{}, "--sha1 and --bytes describe an image given by URL"},
		{"my image", "", 0, false, imageRef{}, "is not a Marketplace id"},
	} {
		got, err := parseImage(tc.arg, tc.sha1, tc.bytes, tc.bytesSet)
		if tc.bad != "" {
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.bad) {
				t.Errorf("%q: %+v %v; want a usage error with %q", tc.arg, got, err, tc.bad)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q: %+v %v; want %+v", tc.arg, got, err, tc.want)
		}
	}
}

func TestContextPairs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want []pair
		bad  string
	}{
		{nil, nil, ""},
		{[]string{"A=1"}, []pair{{"A", "1"}}, ""},
		{[]string{"A=1#B=x=y", "C_2= spaced value "}, []pair{{"A", "1"}, {"B", "x=y"}, {"C_2", "spaced value"}}, ""},
		{[]string{"A=#", "#B=2##"}, []pair{{"A", ""}, {"B", "2"}}, ""},
		{[]string{"_x=1"}, []pair{{"_x", "1"}}, ""},
		{[]string{"A=1#NOPE"}, nil, `--context "NOPE": a context pair is KEY=VALUE, e.g. HOSTNAME=web1; "NOPE" has no '='`},
		{[]string{"1X=2"}, nil, `--context "1X=2": the key "1X" is not a name`},
		{[]string{"MY-KEY=2"}, nil, `the key "MY-KEY" is not a name`},
		{[]string{"=2"}, nil, `the key "" is not a name`},
		{[]string{"A=line\nbreak"}, nil, "holds a line break"},
	} {
		got, err := parseContextArgs(tc.args)
		if tc.bad != "" {
			var ue usageError
			if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.bad) {
				t.Errorf("%q: %v; want a usage error with %q", tc.args, err, tc.bad)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q: %+v %v; want %+v", tc.args, got, err, tc.want)
		}
	}

	got, err := parseContextFile("ctx.txt", []byte("# a comment\nA=1\r\n\n  B = two words \nURL=http://x/?a=b#frag\n"))
	want := []pair{{"A", "1"}, {"B", "two words"}, {"URL", "http://x/?a=b#frag"}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("file: %+v %v", got, err)
	}
	if _, err := parseContextFile("ctx.txt", []byte("A=1\nB\n")); err == nil || !strings.Contains(err.Error(), "--context-file ctx.txt line 2: a context pair is KEY=VALUE") {
		t.Errorf("bad file line: %v", err)
	}

	merged := mergePairs([]pair{{"A", "1"}, {"B", "2"}}, []pair{{"C", "3"}, {"A", "9"}})
	if want := []pair{{"A", "9"}, {"B", "2"}, {"C", "3"}}; !reflect.DeepEqual(merged, want) {
		t.Errorf("merge: %+v", merged)
	}
	// What prepare-context writes reads back as the same pairs.
	var b bytes.Buffer
	writeContext(&b, merged)
	if back, err := parseContextFile("out", b.Bytes()); err != nil || !reflect.DeepEqual(back, merged) {
		t.Errorf("round trip: %q → %+v %v", b.String(), back, err)
	}
}

func FuzzContextFile(f *testing.F) {
	f.Add("A=1\nB=2\n")
	f.Add("# c\nK=v=w\r\n")
	f.Add("1=2")
	f.Fuzz(func(t *testing.T, text string) {
		pairs, err := parseContextFile("f", []byte(text))
		if err != nil {
			return
		}
		var b bytes.Buffer
		writeContext(&b, pairs)
		back, err := parseContextFile("f", b.Bytes())
		if err != nil || !reflect.DeepEqual(back, pairs) && !(len(back) == 0 && len(pairs) == 0) {
			t.Fatalf("%q → %+v → %q → %+v %v", text, pairs, b.String(), back, err)
		}
		for _, p := range pairs {
			if !validContextKey(p.Key) || strings.ContainsAny(p.Value, "\r\n") {
				t.Fatalf("%q gave %+v", text, p)
			}
		}
	})
}

func TestParseCloudInit(t *testing.T) {
	t.Parallel()
	files := map[string]string{"c.yaml": "#cloud-config\n", "k.pub": "ssh-ed25519 AAAA me\n"}
	read := func(name string) ([]byte, error) {
		if s, ok := files[name]; ok {
			return []byte(s), nil
		}
		return nil, os.ErrNotExist
	}
	spec, got, err := parseCloudInit(" cloud-config , c.yaml # ssh,k.pub #", read)
	if err != nil || spec != "cloud-config,c.yaml#ssh,k.pub" ||
		!reflect.DeepEqual(got, map[string]string{"c.yaml": "I2Nsb3VkLWNvbmZpZwo=", "k.pub": "c3NoLWVkMjU1MTkgQUFBQSBtZQo="}) {
		t.Errorf("%q %v %v", spec, got, err)
	}
	if spec, _, err := parseCloudInit("none,c.yaml", read); err != nil || spec != "none,c.yaml" {
		t.Errorf("none: %q %v", spec, err)
	}
	for _, tc := range []struct{ spec, bad string }{
		{"", "--cloud-init is empty"},
		{"#", "--cloud-init is empty"},
		{"c.yaml", "each part is MIME,FILE"},
		{"a,b,c", "each part is MIME,FILE"},
		{",c.yaml", "each part is MIME,FILE"},
		{"text/x-shellscript,c.yaml", "give the MIME subtype only"},
		{"x shell,c.yaml", "is not a MIME subtype"},
	} {
		var ue usageError
		if _, _, err := parseCloudInit(tc.spec, read); !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.bad) {
			t.Errorf("%q: %v; want %q", tc.spec, err, tc.bad)
		}
	}
	if _, _, err := parseCloudInit("cloud-config,missing.yaml", read); err == nil || !strings.Contains(err.Error(), "cannot read missing.yaml") {
		t.Errorf("missing file: %v", err)
	}
}

func TestReadPublicKeys(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	write := func(name, text string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	keys, err := readPublicKeys(write("two.pub", "ssh-ed25519 AAAA a@x\n\nComment: \"old\"\nssh-rsa BBBB b@y\n"))
	if err != nil || !reflect.DeepEqual(keys, []string{"ssh-ed25519 AAAA a@x", "ssh-rsa BBBB b@y"}) {
		t.Errorf("%q %v", keys, err)
	}
	if _, err := readPublicKeys(write("id_rsa", "-----BEGIN OPENSSH PRIVATE KEY-----\nxx\n")); err == nil || !strings.Contains(err.Error(), "is a private key") {
		t.Errorf("private key: %v", err)
	}
	if _, err := readPublicKeys(write("empty.pub", "\n")); err == nil || !strings.Contains(err.Error(), "holds no key") {
		t.Errorf("empty: %v", err)
	}
	if got := expandHome("~/.ssh/k.pub", "/home/u"); got != "/home/u/.ssh/k.pub" {
		t.Errorf("expandHome: %q", got)
	}
}
