package machinetype_test

import (
	"strings"
	"testing"

	"stratuslab.dev/platform/errs"
	"stratuslab.dev/services/vmctl/internal/machinetype"
)

func ptr(n int) *int { return &n }

func TestDefaults(t *testing.T) {
	t.Parallel()
	// REFERENCE.md "Machines": CPU / RAM MiB / swap MiB.
	want := map[string][3]int{
		"t1.micro":  {1, 512, 512},
		"m1.small":  {1, 1536, 1536},
		"m1.medium": {1, 3072, 3072},
		"m1.large":  {2, 6144, 6144},
		"m1.xlarge": {4, 8192, 8192},
		"c1.medium": {2, 1536, 1536},
		"c1.xlarge": {4, 6144, 6144},
	}
	got := machinetype.Defaults()
	if len(got) != len(want) {
		t.Fatalf("Defaults has %d types, want %d", len(got), len(want))
	}
	for _, ty := range got {
		w, ok := want[ty.Name]
		if !ok {
			t.Errorf("unexpected type %q", ty.Name)
			continue
		}
		if g := [3]int{ty.CPU, ty.MemoryMiB, ty.SwapMiB}; g != w {
			t.Errorf("%s = %v, want %v", ty.Name, g, w)
		}
		if err := ty.Validate(); err != nil {
			t.Errorf("%s: %v", ty.Name, err)
		}
	}
	got[0].CPU = 99
	if machinetype.Defaults()[0].CPU == 99 {
		t.Error("Defaults shares its slice between calls")
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	types := machinetype.Defaults()
	tests := []struct {
		name           string
		typ            string
		cpu, ram, swap *int
		want           machinetype.Type
		code           errs.Code
		msg            string // a part of the message, when code is set
	}{
		{name: "default type", want: machinetype.Type{Name: "m1.small", CPU: 1, MemoryMiB: 1536, SwapMiB: 1536}},
		{name: "named type", typ: "c1.xlarge", want: machinetype.Type{Name: "c1.xlarge", CPU: 4, MemoryMiB: 6144, SwapMiB: 6144}},
		{name: "cpu override", typ: "m1.large", cpu: ptr(8), want: machinetype.Type{Name: "m1.large", CPU: 8, MemoryMiB: 6144, SwapMiB: 6144}},
		{name: "all overrides on the default", cpu: ptr(3), ram: ptr(2048), swap: ptr(0), want: machinetype.Type{Name: "m1.small", CPU: 3, MemoryMiB: 2048, SwapMiB: 0}},
		{name: "limits are inclusive", cpu: ptr(128), ram: ptr(1 << 20), swap: ptr(1 << 20), want: machinetype.Type{Name: "m1.small", CPU: 128, MemoryMiB: 1 << 20, SwapMiB: 1 << 20}},
		{name: "smallest machine", typ: "t1.micro", cpu: ptr(1), ram: ptr(64), want: machinetype.Type{Name: "t1.micro", CPU: 1, MemoryMiB: 64, SwapMiB: 512}},
		{name: "unknown type lists the known ones", typ: "m1.huge", code: errs.Invalid, msg: `Unknown machine type "m1.huge": choose one of t1.micro, m1.small, m1.medium, m1.large, m1.xlarge, c1.medium, c1.xlarge`},
		{name: "names are exact", typ: "M1.SMALL", code: errs.Invalid, msg: "Unknown machine type"},
		{name: "zero cpu", cpu: ptr(0), code: errs.Invalid, msg: "1 to 128 CPUs, not 0"},
		{name: "negative cpu", cpu: ptr(-2), code: errs.Invalid, msg: "not -2"},
		{name: "too many cpus", cpu: ptr(129), code: errs.Invalid, msg: "not 129"},
		{name: "too little ram", ram: ptr(63), code: errs.Invalid, msg: "64 MiB to 1048576 MiB (1 TiB) of RAM, not 63 MiB"},
		{name: "too much ram", ram: ptr(1<<20 + 1), code: errs.Invalid, msg: "RAM, not 1048577 MiB"},
		{name: "negative swap", swap: ptr(-1), code: errs.Invalid, msg: "swap is 0 to 1048576 MiB (1 TiB), not -1 MiB"},
		{name: "too much swap", swap: ptr(1<<20 + 1), code: errs.Invalid, msg: "not 1048577 MiB"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := machinetype.Resolve(types, tt.typ, tt.cpu, tt.ram, tt.swap)
			if tt.code != "" {
				if errs.CodeOf(err) != tt.code || !strings.Contains(errs.MessageOf(err), tt.msg) {
					t.Fatalf("Resolve = %+v, %v; want %s containing %q", got, err, tt.code, tt.msg)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("Resolve = %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}

func TestResolveEmptyTable(t *testing.T) {
	t.Parallel()
	_, err := machinetype.Resolve(nil, "", nil, nil, nil)
	if errs.CodeOf(err) != errs.Invalid || !strings.Contains(errs.MessageOf(err), "no machine types are defined") {
		t.Fatalf("Resolve on an empty table = %v", err)
	}
}

// An administrator's broken type is refused when used, not passed on.
func TestResolveValidatesTheTable(t *testing.T) {
	t.Parallel()
	types := []machinetype.Type{{Name: "broken", CPU: 0, MemoryMiB: 512}}
	if _, err := machinetype.Resolve(types, "broken", nil, nil, nil); errs.CodeOf(err) != errs.Invalid {
		t.Fatalf("Resolve of a type with 0 CPUs = %v, want invalid", err)
	}
	// An override can make it usable.
	got, err := machinetype.Resolve(types, "broken", ptr(1), nil, nil)
	if err != nil || got.CPU != 1 {
		t.Fatalf("Resolve with --cpu 1 = %+v, %v", got, err)
	}
}

func TestValidateName(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		ok   bool
	}{
		{"m1.small", true},
		{"custom_type-2", true},
		{"", false},
		{"with space", false},
		{"slash/type", false},
		{"é", false},
		{strings.Repeat("a", machinetype.MaxNameLength), true},
		{strings.Repeat("a", machinetype.MaxNameLength+1), false},
	} {
		err := machinetype.Type{Name: tt.name, CPU: 1, MemoryMiB: 512}.Validate()
		if (err == nil) != tt.ok {
			t.Errorf("Validate(name %q) = %v, want ok=%v", tt.name, err, tt.ok)
		}
		if err != nil && errs.CodeOf(err) != errs.Invalid {
			t.Errorf("Validate(name %q) code = %s, want invalid", tt.name, errs.CodeOf(err))
		}
	}
}

func TestList(t *testing.T) {
	t.Parallel()
	want := `TYPE       CPU  RAM MiB  SWAP MiB
t1.micro     1      512       512
m1.small     1     1536      1536  (default)
m1.medium    1     3072      3072
m1.large     2     6144      6144
m1.xlarge    4     8192      8192
c1.medium    2     1536      1536
c1.xlarge    4     6144      6144
`
	if got := machinetype.List(machinetype.Defaults()); got != want {
		t.Errorf("List(Defaults()) =\n%s\nwant\n%s", got, want)
	}
	// Columns widen for long names and numbers.
	wide := []machinetype.Type{{Name: "gpu.enormous-memory", CPU: 128, MemoryMiB: 1048576, SwapMiB: 0}}
	want = `TYPE                 CPU  RAM MiB  SWAP MiB
gpu.enormous-memory  128  1048576         0
`
	if got := machinetype.List(wide); got != want {
		t.Errorf("List(wide) =\n%s\nwant\n%s", got, want)
	}
	if got, want := machinetype.List(nil), "TYPE  CPU  RAM MiB  SWAP MiB\n"; got != want {
		t.Errorf("List(nil) = %q, want %q", got, want)
	}
}
