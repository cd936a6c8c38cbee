package tgt

import (
	"reflect"
	"testing"
)

// showOutput is tgtadm 1.0.85's answer for two targets, the first with a
// volume and an ACL, the second freshly made.
const showOutput = `Target 1: iqn.2011-01.eu.stratuslab:0b6c7e3e-4a43-4a4b-9b5a-3f1c2d3e4f50
    System information:
        Driver: iscsi
        State: ready
    I_T nexus information:
        I_T nexus: 1
            Initiator: iqn.2008-11.org.linux-kvm alias: none
            Connection: 0
                IP Address: 127.0.0.1
    LUN information:
        LUN: 0
            Type: controller
            SCSI ID: IET     00010000
            SCSI SN: beaf10
            Size: 0 MB, Block size: 1
            Backing store type: null
            Backing store path: None
            Backing store flags: 
        LUN: 1
            Type: disk
            SCSI ID: IET     00010001
            SCSI SN: beaf11
            Size: 68 MB, Block size: 512
            Backing store type: rdwr
            Backing store path: /var/lib/pdisk/with space.qcow2
            Backing store flags: 
    Account information:
        alice
    ACL information:
        10.0.0.0/8
        iqn.1993-08.org.debian:01:abc
Target 65536: other
    System information:
        Driver: iscsi
        State: ready
    I_T nexus information:
    LUN information:
        LUN: 0
            Type: controller
            Backing store path: None
    Account information:
    ACL information:
`

func TestParseShow(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		in   string
		want []target
	}{
		{"empty", "", nil},
		{"two targets", showOutput, []target{
			{tid: 1, name: "iqn.2011-01.eu.stratuslab:0b6c7e3e-4a43-4a4b-9b5a-3f1c2d3e4f50",
				luns: map[int]string{0: "None", 1: "/var/lib/pdisk/with space.qcow2"},
				acl:  []string{"10.0.0.0/8", "iqn.1993-08.org.debian:01:abc"}},
			{tid: 65536, name: "other", luns: map[int]string{0: "None"}},
		}},
		{"garbage skipped", "tgtadm: something\nTarget x: bad\nTarget 0: zero\n    ACL information:\n        ALL\nTarget 2: ok\n", []target{
			{tid: 2, name: "ok", luns: map[int]string{}},
		}},
	} {
		if got := parseShow(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s: parseShow = %+v; want %+v", tc.name, got, tc.want)
		}
	}
}

func FuzzParseShow(f *testing.F) {
	f.Add(showOutput)
	f.Add("Target 1: a\n    LUN information:\n        LUN: 1\n            Backing store path: /x\n")
	f.Fuzz(func(t *testing.T, s string) {
		for _, tg := range parseShow(s) {
			if tg.tid <= 0 || tg.luns == nil {
				t.Fatalf("parseShow(%q) gave %+v", s, tg)
			}
		}
	})
}
