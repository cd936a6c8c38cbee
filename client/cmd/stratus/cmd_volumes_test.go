package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode"

	"stratuslab.dev/client/internal/fakecloud"
)

func TestWriteVolume(t *testing.T) {
	t.Parallel()
	cest := time.FixedZone("CEST", 2*3600)
	for _, tc := range []struct {
		name string
		doc  string
		want string
	}{
		{"a new disk", `{"id":"Volume/4ec6d6f8-7ac6-4d70-9e0a-2c4dc3a5ab51","uuid":"4ec6d6f8-7ac6-4d70-9e0a-2c4dc3a5ab51",
			"created":"2011-07-20T14:37:10.123Z","visibility":"PRIVATE","tag":"HELLO","owner":"alice","size":1,"count":0,
			"type":"DATA_IMAGE_RAW_READ_WRITE","state":"AVAILABLE"}`, `:: DISK 4ec6d6f8-7ac6-4d70-9e0a-2c4dc3a5ab51
        created: 2011/07/20 16:37:10
        visibility: private
        tag: HELLO
        owner: alice
        size: 1
        users: 0
        type: DATA_IMAGE_RAW_READ_WRITE
        state: AVAILABLE
`},
		{"attached, every attribute", `{"id":"Volume/0f8f6b8e-0000-4000-8000-000000000001","uuid":"0f8f6b8e-0000-4000-8000-000000000001",
			"created":"2026-01-31T23:00:00Z","visibility":"PUBLIC","tag":"","owner":"bob","size":20,"count":1,
			"type":"MACHINE_IMAGE_LIVE","state":"QUARANTINED","machine":"Machine/77aa","device":"vdb",
			"identifier":"snapshot:abc","quarantine":"2026-02-02T10:00:00+00:00","path":"/ignored"}`, `:: DISK 0f8f6b8e-0000-4000-8000-000000000001
        created: 2026/02/01 01:00:00
        visibility: public
        tag: 
        owner: bob
        size: 20
        users: 1
        type: MACHINE_IMAGE_LIVE
        state: QUARANTINED
        machine: 77aa
        device: vdb
        identifier: snapshot:abc
        quarantine: 2026/02/02 12:00:00
`},
		{"sparse: uuid from id, zeros, odd date kept", `{"id":"Volume/abc","created":"yesterday"}`, `:: DISK abc
        created: yesterday
        visibility: 
        tag: 
        owner: 
        size: 0
        users: 0
`},
	} {
		var v volume
		if err := json.Unmarshal([]byte(tc.doc), &v); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		var b bytes.Buffer
		writeVolume(&b, v, cest)
		if b.String() != tc.want {
			t.Errorf("%s:\n%s\nwant\n%s", tc.name, b.String(), tc.want)
		}
	}

	var b bytes.Buffer
	writeVolumes(&b, nil, cest)
	if b.String() != "No disk to show\n" {
		t.Errorf("no disk: %q", b.String())
	}
	b.Reset()
	writeVolumes(&b, []volume{{UUID: "a"}, {UUID: "b"}}, cest)
	if got := strings.Count(b.String(), ":: DISK "); got != 2 || strings.Contains(b.String(), noDisk) {
		t.Errorf("two disks: %q", b.String())
	}
}

func TestVolumeFilter(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args []string
		want string
		bad  string // part of the error, when one is expected
	}{
		{nil, "", ""},
		{[]string{"tag=HELLO"}, "tag='HELLO'", ""},
		{[]string{"tag=HELLO", "size=2"}, "tag='HELLO' and size=2", ""},
		{[]string{"visibility=public"}, "visibility='PUBLIC'", ""},
		{[]string{"state=in_use", "type=data_image_raw_read_write"}, "state='IN_USE' and type='DATA_IMAGE_RAW_READ_WRITE'", ""},
		{[]string{"users=0"}, "count=0", ""},
		{[]string{"count=-1"}, "count=-1", ""},
		{[]string{"tag=2"}, "tag='2'", ""},
		{[]string{"owner="}, "owner=''", ""},
		{[]string{"tag=a=b"}, "tag='a=b'", ""},
		{[]string{"tag=it's"}, "tag='it''s'", ""},
		{[]string{`tag=x'or'1'='1`}, `tag='x''or''1''=''1'`, ""},
		{[]string{`tag=C:\dir\`}, `tag='C:\\dir\\'`, ""},
		{[]string{`description=say"hi"`}, `description='say"hi"'`, ""},
		{[]string{"machine=0F8F6B8E-0000-4000-8000-000000000001"}, "machine='Machine/0f8f6b8e-0000-4000-8000-000000000001'", ""},
		{[]string{"machine=Machine/7"}, "machine='Machine/7'", ""},
		{[]string{"volatile=true"}, "volatile=true", ""},
		{[]string{" tag=HELLO "}, "tag='HELLO'", ""},
		// CIMI expressions pass as written, in parentheses among others.
		{[]string{"size>=10"}, "size>=10", ""},
		{[]string{"tag!='x'"}, "tag!='x'", ""},
		{[]string{"tag='HELLO'"}, "tag='HELLO'", ""},
		{[]string{"tag='a' or tag='b'", "size=1"}, "(tag='a' or tag='b') and size=1", ""},
		{[]string{"size>1", "size<9"}, "(size>1) and (size<9)", ""},
		{[]string{"created>2026-01-01"}, "created>2026-01-01", ""},
		// Mistakes the client can name.
		{[]string{""}, "", "--filter is empty"},
		{[]string{"   "}, "", "--filter is empty"},
		{[]string{"size=big"}, "", "size is a whole number"},
		{[]string{"users=1.5"}, "", "count is a whole number"},
		{[]string{"volatile=yes"}, "", "volatile is true or false"},
	} {
		got, err := volumeFilter(tc.args)
		if tc.bad != "" {
			var u usageError
			if err == nil || !strings.Contains(err.Error(), tc.bad) || !asUsage(err, &u) {
				t.Errorf("%q: %q, %v; want a usage error with %q", tc.args, got, err, tc.bad)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%q = %q, %v; want %q", tc.args, got, err, tc.want)
			continue
		}
		if got != "" {
			if _, err := fakecloud.Comparisons(got); err != nil {
				t.Errorf("%q: %q does not read as a filter: %v", tc.args, got, err)
			}
		}
	}
}

func asUsage(err error, u *usageError) bool {
	v, ok := err.(usageError)
	*u = v
	return ok
}

// TestFilterValuesStayInTheirString checks that a pair's value, whatever it
// holds, reads back as that exact value and nothing more.
func TestFilterValuesStayInTheirString(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"it's", "'", "''", `\`, `\'`, `'\`, `x' or tag!='`, `a\\'b`, `)(`, "é'ü"} {
		checkPair(t, v)
	}
}

func FuzzFilterValue(f *testing.F) {
	for _, v := range []string{"HELLO", "it's", `\'`, `x' or '1'='1`, `"`, ""} {
		f.Add(v)
	}
	f.Fuzz(checkPair)
}

func checkPair(t *testing.T, v string) {
	term, raw, err := filterTerm("tag=" + v)
	v = strings.TrimRightFunc(v, unicode.IsSpace) // the argument is trimmed
	if err != nil {
		t.Fatalf("%q: %v", v, err)
	}
	if raw {
		// Spaces or a leading quote: the user wrote CIMI, not a value.
		if !strings.ContainsAny(v, " \t\r\n") && !strings.HasPrefix(v, "'") && !strings.HasPrefix(v, `"`) {
			t.Fatalf("%q taken as an expression", v)
		}
		return
	}
	got, err := fakecloud.Comparisons(term)
	want := []fakecloud.Comparison{{Attr: "tag", Op: "=", Value: v}}
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("%q → %q reads as %+v, %v", v, term, got, err)
	}
	if ok, err := fakecloud.Match(term, map[string]any{"tag": v}); !ok || err != nil {
		t.Fatalf("%q → %q does not match its own value: %v", v, term, err)
	}
}

func TestDiskUUID(t *testing.T) {
	t.Parallel()
	const u = "4ec6d6f8-7ac6-4d70-9e0a-2c4dc3a5ab51"
	for _, tc := range []struct {
		in, want string
	}{
		{u, u},
		{"Volume/" + u, u},
		{strings.ToUpper(u), u},
		{" " + u + " ", u},
		{"4ec6d6f8", ""},
		{"4ec6d6f8x7ac6-4d70-9e0a-2c4dc3a5ab51", ""},
		{"4ec6d6f8-7ac6-4d70-9e0a-2c4dc3a5ab5g", ""},
		{"Machine/" + u, ""},
		{"", ""},
	} {
		got, err := diskUUID(tc.in)
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("diskUUID(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	if got, err := diskUUIDs([]string{u, "Volume/" + u}); err != nil || !slices.Equal(got, []string{u}) {
		t.Errorf("repeats: %q %v", got, err)
	}
}

// volumeCloud serves a fake cloud and writes a configuration for user in a
// new home; stratus runs a command there.
func volumeCloud(t *testing.T, user, password string) (*fakecloud.Cloud, func(args ...string) (int, string, string)) {
	t.Helper()
	fc := fakecloud.New()
	srv := httptest.NewServer(fc)
	t.Cleanup(srv.Close)
	home := t.TempDir()
	writeConfig(t, home, "[default]\nendpoint = "+srv.URL+"\nusername = "+user+"\npassword = "+password+"\n")
	return fc, func(args ...string) (int, string, string) {
		t.Helper()
		return stratus(t, home, nil, tty{}, args...)
	}
}

// putVolume stores a volume of owner directly.
func putVolume(fc *fakecloud.Cloud, uuid, owner, created string, extra map[string]any) {
	doc := map[string]any{"uuid": uuid, "owner": owner, "created": created, "visibility": "PRIVATE",
		"tag": "", "size": 1, "count": 0, "type": "DATA_IMAGE_RAW_READ_WRITE", "state": "AVAILABLE"}
	for k, v := range extra {
		doc[k] = v
	}
	fc.Put("Volume/"+uuid, doc)
}

func localStamp(rfc3339 string) string {
	t, _ := time.Parse(time.RFC3339, rfc3339)
	return t.In(time.Local).Format(createdLayout)
}

func TestVolumeCommands(t *testing.T) {
	t.Parallel()
	fc, run := volumeCloud(t, "user", fakecloud.UserPassword)
	must := func(args ...string) string {
		t.Helper()
		code, out, errOut := run(args...)
		if code != 0 {
			t.Fatalf("%q: exit %d %q %q", args, code, out, errOut)
		}
		return out
	}

	if out := must("describe-volumes"); out != "No disk to show\n" {
		t.Errorf("empty cloud: %q", out)
	}

	// create-volume
	out := must("create-volume", "--size", "2", "--tag", "HELLO", "--description", "kept")
	hello, ok := strings.CutPrefix(strings.TrimSuffix(out, "\n"), "DISK ")
	if !ok || !validUUID(hello) {
		t.Fatalf("create-volume printed %q", out)
	}
	pub := strings.TrimSpace(must("stratus-create-volume", "-s", "1", "--public", "-t", "it's", "-q"))
	if !validUUID(pub) {
		t.Fatalf("create-volume -q printed %q", pub)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(must("get", "Volume/"+hello, "--json")), &doc); err != nil ||
		doc["size"] != 2.0 || doc["tag"] != "HELLO" || doc["visibility"] != "PRIVATE" || doc["description"] != "kept" || doc["owner"] != "user" {
		t.Errorf("created disk: %v %v", doc, err)
	}
	if err := json.Unmarshal([]byte(must("get", "Volume/"+pub, "--json")), &doc); err != nil || doc["visibility"] != "PUBLIC" {
		t.Errorf("public disk: %v %v", doc, err)
	}
	if err := json.Unmarshal([]byte(must("create-volume", "--size", "3", "--json")), &doc); err != nil || doc["size"] != 3.0 {
		t.Errorf("create-volume --json: %v %v", doc, err)
	}
	third := doc["uuid"].(string)

	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"create-volume"}, 2, "give the size of the disk in GiB with --size"},
		{[]string{"create-volume", "--size", "0"}, 2, `--size "0": the size is a whole number of GiB, 1 or more`},
		{[]string{"create-volume", "--size", "1.5"}, 2, "whole number of GiB"},
		{[]string{"create-volume", "--size", "ten"}, 2, "whole number of GiB"},
		{[]string{"create-volume", "--size", "1", "--public", "--private"}, 2, "--public and --private exclude each other"},
		{[]string{"create-volume", "--size", "1", "extra"}, 2, "unknown command"},
		{[]string{"create-volume", "--size", "5000"}, 1, "The size must be a whole number of GiB from 1 to 1024. (400 invalid)"},
	} {
		before := len(fc.Requests())
		code, _, errOut := run(tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("%q: exit %d %q; want %d %q", tc.args, code, errOut, tc.code, tc.want)
		}
		if n := len(fc.Requests()) - before; tc.code == 2 && n != 0 {
			t.Errorf("%q: %d requests for a usage error", tc.args, n)
		}
	}

	// describe-volumes: oldest first, filters, uuids.
	out = must("describe-volumes")
	if strings.Count(out, ":: DISK ") != 3 || strings.Index(out, hello) > strings.Index(out, pub) || strings.Index(out, pub) > strings.Index(out, third) {
		t.Errorf("describe-volumes:\n%s", out)
	}
	created := doc["created"].(string)
	want := fmt.Sprintf(":: DISK %s\n        created: %s\n        visibility: private\n        tag: \n        owner: user\n        size: 3\n        users: 0\n        type: DATA_IMAGE_RAW_READ_WRITE\n        state: AVAILABLE\n",
		third, localTime(created, time.Local))
	if out := must("describe-volumes", "Volume/"+third); out != want {
		t.Errorf("describe-volumes UUID:\n%s\nwant\n%s", out, want)
	}
	for _, tc := range []struct {
		filters []string
		want    []string
	}{
		{[]string{"tag=HELLO"}, []string{hello}},
		{[]string{"tag=it's"}, []string{pub}},
		{[]string{"visibility=public"}, []string{pub}},
		{[]string{"size=2"}, []string{hello}},
		{[]string{"size>=2"}, []string{hello, third}},
		{[]string{"size>=2", "tag=HELLO"}, []string{hello}},
		{[]string{"tag='HELLO' or size=1"}, []string{hello, pub}},
		{[]string{"users=0", "owner=user"}, []string{hello, pub, third}},
		{[]string{"tag=nothing"}, nil},
	} {
		args := []string{"describe-volumes", "-q"}
		for _, f := range tc.filters {
			args = append(args, "--filter", f)
		}
		got := strings.Fields(must(args...))
		if !slices.Equal(got, tc.want) {
			t.Errorf("--filter %q: %q, want %q", tc.filters, got, tc.want)
		}
	}
	if out := must("describe-volumes", "--filter", "tag=nothing"); out != "No disk to show\n" {
		t.Errorf("nothing matches: %q", out)
	}
	if got := strings.Fields(must("describe-volumes", "-q", third, hello, third)); !slices.Equal(got, []string{hello, third}) {
		t.Errorf("describe-volumes UUID UUID: %q", got)
	}
	if got := strings.Fields(must("describe-volumes", "-q", third, hello, "-f", "size=3")); !slices.Equal(got, []string{third}) {
		t.Errorf("uuids and a filter: %q", got)
	}
	var docs []map[string]any
	if err := json.Unmarshal([]byte(must("describe-volumes", "--json")), &docs); err != nil || len(docs) != 3 || docs[0]["uuid"] != hello {
		t.Errorf("describe-volumes --json: %v %v", docs, err)
	}
	if out := must("describe-volumes", "--json", "-f", "tag=nothing"); strings.TrimSpace(out) != "[]" {
		t.Errorf("describe-volumes --json, nothing: %q", out)
	}

	const ghost = "00000000-0000-4000-8000-00000000dead"
	code, out, errOut := run("describe-volumes", hello, ghost)
	if code != 1 || !strings.Contains(out, ":: DISK "+hello) || errOut != "stratus: no disk "+ghost+": it does not exist, or it is another user's private disk\n" {
		t.Errorf("a missing uuid: %d %q %q", code, out, errOut)
	}
	code, out, errOut = run("describe-volumes", ghost, "-f", "size=1")
	if code != 1 || out != "" || !strings.Contains(errOut, "no disk "+ghost) {
		t.Errorf("a missing uuid with a filter: %d %q %q", code, out, errOut)
	}
	before := len(fc.Requests())
	code, _, errOut = run("describe-volumes", hello, "not-a-uuid")
	if code != 2 || !strings.Contains(errOut, `"not-a-uuid" is not a disk uuid`) || len(fc.Requests()) != before {
		t.Errorf("a bad uuid: %d %q", code, errOut)
	}
	if code, _, errOut := run("describe-volumes", "-f", "size=big"); code != 2 || !strings.Contains(errOut, "size is a whole number") {
		t.Errorf("a bad filter: %d %q", code, errOut)
	}
	if code, _, errOut := run("describe-volumes", "-f", "size>>2"); code != 1 || !strings.Contains(errOut, "bad_filter") {
		t.Errorf("a filter the cloud refuses: %d %q", code, errOut)
	}

	// update-volume replaces only what it is given.
	if out := must("update-volume", "--tag", "WORLD", hello); out != "UPDATED "+hello+"\n" {
		t.Errorf("update-volume: %q", out)
	}
	if err := json.Unmarshal([]byte(must("get", "Volume/"+hello, "--json")), &doc); err != nil || doc["tag"] != "WORLD" || doc["description"] != "kept" || doc["visibility"] != "PRIVATE" {
		t.Errorf("after update-volume --tag: %v %v", doc, err)
	}
	if out := must("stratus-update-volume", "--public", "--description", "", "-q", strings.ToUpper(hello)); out != hello+"\n" {
		t.Errorf("update-volume -q: %q", out)
	}
	if err := json.Unmarshal([]byte(must("update-volume", "--private", hello, "--json")), &doc); err != nil || doc["tag"] != "WORLD" || doc["description"] != "" || doc["visibility"] != "PRIVATE" {
		t.Errorf("update-volume --json: %v %v", doc, err)
	}
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"update-volume", hello}, 2, "nothing to change: give --tag, --description, --public or --private"},
		{[]string{"update-volume", "--tag", "x"}, 2, "accepts 1 arg(s), received 0"},
		{[]string{"update-volume", "--public", "--private", hello}, 2, "exclude each other"},
		{[]string{"update-volume", "--tag", "x", "nope"}, 2, `"nope" is not a disk uuid`},
		{[]string{"update-volume", "--tag", "x", ghost}, 1, "(404 not_found)"},
	} {
		if code, _, errOut := run(tc.args...); code != tc.code || !strings.Contains(errOut, tc.want) {
			t.Errorf("%q: exit %d %q; want %d %q", tc.args, code, errOut, tc.code, tc.want)
		}
	}

	// delete-volume: refused for another user's disk and an attached one.
	const theirs, attached = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
	const hidden = "33333333-3333-4333-8333-333333333333"
	putVolume(fc, theirs, "admin", "2026-01-01T00:00:00Z", map[string]any{"visibility": "PUBLIC"})
	putVolume(fc, hidden, "admin", "2026-01-01T00:00:00Z", nil)
	putVolume(fc, attached, "user", "2026-01-01T00:00:00Z", map[string]any{"count": 1, "state": "IN_USE", "machine": "Machine/42", "device": "vdb"})

	if out := must("delete-volume", hello); out != "DELETED "+hello+"\n" {
		t.Errorf("delete-volume: %q", out)
	}
	if code, _, errOut := run("get", "Volume/"+hello); code != 1 || !strings.Contains(errOut, "404") {
		t.Errorf("deleted disk still there: %d %q", code, errOut)
	}
	code, out, errOut = run("delete-volume", theirs)
	if code != 1 || out != "" || errOut != "stratus: disk "+theirs+": the cloud does not let you do this (403): Not enough rights to delete disk.\n" {
		t.Errorf("another user's disk: %d %q %q", code, out, errOut)
	}
	code, _, errOut = run("delete-volume", hidden)
	if code != 1 || !strings.HasSuffix(errOut, "(403): Not enough rights to delete disk.\n") {
		t.Errorf("another user's private disk: %d %q", code, errOut)
	}
	code, _, errOut = run("update-volume", "--tag", "mine", theirs)
	if code != 1 || !strings.Contains(errOut, "Not enough rights to update disk.") {
		t.Errorf("updating another user's disk: %d %q", code, errOut)
	}
	code, out, errOut = run("delete-volume", attached)
	if code != 1 || out != "" || !strings.Contains(errOut, "is attached to machine 42; detach it") || !strings.Contains(errOut, "(409 conflict)") {
		t.Errorf("an attached disk: %d %q %q", code, out, errOut)
	}
	code, out, errOut = run("stratus-delete-volume", theirs, pub, attached, ghost, third)
	lines := strings.Split(strings.TrimSpace(errOut), "\n")
	if code != 1 || out != "DELETED "+pub+"\nDELETED "+third+"\n" || len(lines) != 3 ||
		!strings.Contains(lines[0], theirs) || !strings.Contains(lines[1], attached) || !strings.Contains(lines[2], ghost) {
		t.Errorf("several disks: %d %q %q", code, out, errOut)
	}
	if code, _, errOut := run("delete-volume"); code != 2 || !strings.Contains(errOut, "requires at least 1 arg") {
		t.Errorf("delete-volume alone: %d %q", code, errOut)
	}
	if out := must("describe-volumes", "-q"); out != attached+"\n"+theirs+"\n" && out != theirs+"\n"+attached+"\n" {
		t.Errorf("left: %q", out)
	}
}

func TestCreateVolumeWaitsForItsJob(t *testing.T) {
	t.Parallel()
	fc, run := volumeCloud(t, "user", fakecloud.UserPassword)
	code, out, errOut := run("create-volume", "--size", "1", "--tag", "slow")
	uuid, ok := strings.CutPrefix(strings.TrimSpace(out), "DISK ")
	if code != 0 || !ok || !validUUID(uuid) || !strings.Contains(errOut, "SUCCESS 100%") {
		t.Fatalf("create-volume with a job: %d %q %q", code, out, errOut)
	}
	// The disk exists once the job succeeds: it exists now.
	if code, _, errOut := run("get", "Volume/"+uuid); code != 0 {
		t.Errorf("the disk is not there: %q", errOut)
	}
	var polls int
	for _, r := range fc.Requests() {
		if strings.HasPrefix(r, "GET /cimi/Job/") {
			polls++
		}
	}
	if polls != 3 {
		t.Errorf("%d reads of the job, want 3: %q", polls, fc.Requests())
	}
	if code, out, errOut := run("create-volume", "--size", "1", "--tag", "slow", "-q"); code != 0 || !validUUID(strings.TrimSpace(out)) || errOut != "" {
		t.Errorf("-q with a job: %d %q %q", code, out, errOut)
	}
}

func TestDescribeVolumesVisibilityAndPages(t *testing.T) {
	t.Parallel()
	fc, run := volumeCloud(t, "user", fakecloud.UserPassword)
	// Ids in the opposite order of creation: the listing follows created.
	base := time.Date(2011, 7, 20, 14, 37, 10, 0, time.UTC)
	var want []string
	for i := range 130 {
		uuid := fmt.Sprintf("%08x-0000-4000-8000-000000000000", 1000-i)
		putVolume(fc, uuid, "user", base.Add(time.Duration(i)*time.Minute).Format(time.RFC3339), nil)
		want = append(want, uuid)
	}
	putVolume(fc, "aaaaaaaa-0000-4000-8000-000000000000", "admin", "2011-01-01T00:00:00Z", nil)
	putVolume(fc, "bbbbbbbb-0000-4000-8000-000000000000", "admin", "2011-01-01T00:00:00Z", map[string]any{"visibility": "PUBLIC"})
	want = append([]string{"bbbbbbbb-0000-4000-8000-000000000000"}, want...)

	code, out, errOut := run("describe-volumes", "-q")
	if got := strings.Fields(out); code != 0 || !slices.Equal(got, want) {
		t.Fatalf("describe-volumes -q: %d %q\n%q\nwant\n%q", code, errOut, got, want)
	}
	code, out, _ = run("describe-volumes")
	first := ":: DISK bbbbbbbb-0000-4000-8000-000000000000\n        created: " + localStamp("2011-01-01T00:00:00Z") + "\n        visibility: public\n        tag: \n        owner: admin\n"
	if code != 0 || !strings.HasPrefix(out, first) || strings.Count(out, ":: DISK ") != 131 {
		t.Errorf("describe-volumes starts with\n%.300s", out)
	}
	// Another user's private disk is not shown, even by uuid.
	code, out, errOut = run("describe-volumes", "aaaaaaaa-0000-4000-8000-000000000000")
	if code != 1 || out != "" || !strings.Contains(errOut, "no disk aaaaaaaa-0000-4000-8000-000000000000") {
		t.Errorf("another user's private disk: %d %q %q", code, out, errOut)
	}
	// More uuids than one query names, given newest first: shown oldest first.
	reversed := slices.Clone(want[1:])
	slices.Reverse(reversed)
	code, out, _ = run(append([]string{"describe-volumes", "-q"}, reversed...)...)
	if got := strings.Fields(out); code != 0 || !slices.Equal(got, want[1:]) {
		t.Errorf("130 uuids: %d, %d shown", code, len(got))
	}
}

func TestVolumeLinks(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	if code, _, errOut := stratus(t, t.TempDir(), nil, tty{}, "links", dir, "-q"); code != 0 {
		t.Fatalf("links: %d %q", code, errOut)
	}
	for _, name := range []string{"stratus-create-volume", "stratus-describe-volumes", "stratus-update-volume", "stratus-delete-volume"} {
		if _, err := os.Readlink(filepath.Join(dir, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	_, run := volumeCloud(t, "user", fakecloud.UserPassword)
	if code, out, errOut := run(filepath.Join(dir, "stratus-describe-volumes")); code != 0 || out != "No disk to show\n" {
		t.Errorf("stratus-describe-volumes: %d %q %q", code, out, errOut)
	}
}

// TestVolumesHonourPdiskEndpoint: the volume commands talk to
// pdisk_endpoint when it is set (the guide's configuration), the other
// commands to endpoint.
func TestVolumesHonourPdiskEndpoint(t *testing.T) {
	t.Parallel()
	disks := httptest.NewServer(fakecloud.New())
	t.Cleanup(disks.Close)
	home := t.TempDir()
	writeConfig(t, home, "[default]\nendpoint = http://127.0.0.1:1\npdisk_endpoint = "+disks.URL+"\nusername = user\npassword = "+fakecloud.UserPassword+"\n")
	code, out, errOut := stratus(t, home, nil, tty{}, "create-volume", "--size", "1")
	if code != 0 || !strings.HasPrefix(out, "DISK ") {
		t.Fatalf("create-volume with pdisk_endpoint: exit %d %q %q", code, out, errOut)
	}
	if code, _, _ := stratus(t, home, nil, tty{}, "list", "ServiceMessage"); code == 0 {
		t.Errorf("list went to pdisk_endpoint, not to the unreachable endpoint")
	}
}
