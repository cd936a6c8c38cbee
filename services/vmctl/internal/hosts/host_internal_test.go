package hosts

import (
	"encoding/json"
	"maps"
	"reflect"
	"slices"
	"testing"
	"time"
)

// knownAttr must name exactly the attributes a document is written with,
// or a write would keep a stale copy of one (as an unknown attribute) or
// drop a known one.
func TestKnownAttributes(t *testing.T) {
	t.Parallel()
	body, err := encode(&Host{ID: "x"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(body, &all); err != nil {
		t.Fatal(err)
	}
	for k := range all {
		if !knownAttr(k) {
			t.Errorf("attribute %q is written but knownAttr does not know it", k)
		}
	}
	for _, k := range []string{"id", "state", "reservations", "hostId", "_command", "properties"} {
		if _, written := all[k]; knownAttr(k) != written {
			t.Errorf("knownAttr(%q) = %v, but written = %v", k, knownAttr(k), written)
		}
	}
}

func TestEncodeDecode(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	h := &Host{
		ID: "node-1", Name: "n", Hostname: "node-1.example.org", CPUs: 4, MemoryMiB: 8192, ACL: ACL(),
		Reservations: map[string]Reservation{"m": {CPU: 1, MemoryMiB: 512}}, AllocatedCPUs: 1, AllocatedMemoryMiB: 512,
		State: Available, LastHeartbeat: at, Created: at, Updated: at, Maintenance: true,
	}
	extra := map[string]json.RawMessage{"_command": json.RawMessage(`"c1"`), "properties": json.RawMessage(`{"rack":"4"}`)}
	body, err := encode(h, extra)
	if err != nil {
		t.Fatal(err)
	}
	got, gotExtra, err := decode(DocumentID("node-1"), body)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, h) {
		t.Errorf("decode(encode(h)) = %+v\nwant %+v", got, h)
	}
	if !slices.Equal(slices.Sorted(maps.Keys(gotExtra)), []string{"_command", "properties"}) || string(gotExtra["properties"]) != `{"rack":"4"}` {
		t.Errorf("extra attributes = %v", gotExtra)
	}
	if _, _, err := decode("Machine/x", body); err == nil {
		t.Error("decode accepted a document of another kind")
	}
}

func TestReserveRelease(t *testing.T) {
	t.Parallel()
	h := &Host{CPUs: 4, MemoryMiB: 4096}
	h.reserve("a", 2, 1024)
	h.reserve("b", 1, 512)
	h.reserve("a", 2, 1024) // again: no double count
	if h.AllocatedCPUs != 3 || h.AllocatedMemoryMiB != 1536 {
		t.Fatalf("allocated %d, %d", h.AllocatedCPUs, h.AllocatedMemoryMiB)
	}
	if !h.fits(1, 2560, 1, 1) || h.fits(2, 1, 1, 1) || h.fits(1, 2561, 1, 1) || !h.fits(5, 1, 2, 1) {
		t.Fatal("fits disagrees with the limits")
	}
	if !h.release("a") || h.release("a") || h.AllocatedCPUs != 1 {
		t.Fatalf("release: %+v", h)
	}
	// 3 × 1.1 is 3.3000000000000003 in floating point; 10 × 0.7 is
	// 7.000000000000001; 100 × 0.29 is 28.999999999999996.
	for _, tt := range []struct {
		cpus  int
		ratio float64
		want  int
	}{{3, 1.1, 3}, {10, 0.7, 7}, {100, 0.29, 29}, {4, 2, 8}, {1, 1.5, 1}} {
		if got, _ := (&Host{CPUs: tt.cpus}).limits(tt.ratio, 1); got != tt.want {
			t.Errorf("limit of %d CPUs × %v = %d, want %d", tt.cpus, tt.ratio, got, tt.want)
		}
	}
}
