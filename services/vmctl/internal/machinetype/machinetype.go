package machinetype

import (
	"fmt"
	"strings"

	"stratuslab.dev/platform/errs"
)

// DefaultName is the type of a machine whose user names none.
const DefaultName = "m1.small"

// Bounds of a machine's resources, whether they come from a type or from
// overrides. They keep a typo (--ram 4 meaning GiB, --cpu 1000) from
// reaching the scheduler as a machine no host will ever take.
const (
	MinCPU       = 1
	MaxCPU       = 128
	MinMemoryMiB = 64
	MaxMemoryMiB = 1 << 20 // 1 TiB
	MaxSwapMiB   = 1 << 20 // 1 TiB
	// MaxNameLength bounds type names, in bytes.
	MaxNameLength = 64
)

// Type is one machine type: the resources a machine of this type gets.
type Type struct {
	Name      string `json:"name"`
	CPU       int    `json:"cpu"`
	MemoryMiB int    `json:"memoryMiB"`
	SwapMiB   int    `json:"swapMiB"`
}

// Defaults returns the standard StratusLab types (REFERENCE.md
// "Machines"), smallest first: the table an installation starts with. The
// slice is new on every call, so callers may change it.
func Defaults() []Type {
	return []Type{
		{Name: "t1.micro", CPU: 1, MemoryMiB: 512, SwapMiB: 512},
		{Name: "m1.small", CPU: 1, MemoryMiB: 1536, SwapMiB: 1536},
		{Name: "m1.medium", CPU: 1, MemoryMiB: 3072, SwapMiB: 3072},
		{Name: "m1.large", CPU: 2, MemoryMiB: 6144, SwapMiB: 6144},
		{Name: "m1.xlarge", CPU: 4, MemoryMiB: 8192, SwapMiB: 8192},
		{Name: "c1.medium", CPU: 2, MemoryMiB: 1536, SwapMiB: 1536},
		{Name: "c1.xlarge", CPU: 4, MemoryMiB: 6144, SwapMiB: 6144},
	}
}

// Validate reports, as an errs.Invalid error, why t cannot describe a
// machine: a malformed name or a resource out of bounds. Administrators'
// edits of the table go through it as well as every resolved type.
func (t Type) Validate() error {
	if err := validName(t.Name); err != nil {
		return err
	}
	switch {
	case t.CPU < MinCPU || t.CPU > MaxCPU:
		return errs.Errorf(errs.Invalid, "Machine type %s: a machine has %d to %d CPUs, not %d.", t.Name, MinCPU, MaxCPU, t.CPU)
	case t.MemoryMiB < MinMemoryMiB || t.MemoryMiB > MaxMemoryMiB:
		return errs.Errorf(errs.Invalid, "Machine type %s: a machine has %d MiB to %d MiB (1 TiB) of RAM, not %d MiB.", t.Name, MinMemoryMiB, MaxMemoryMiB, t.MemoryMiB)
	case t.SwapMiB < 0 || t.SwapMiB > MaxSwapMiB:
		return errs.Errorf(errs.Invalid, "Machine type %s: swap is 0 to %d MiB (1 TiB), not %d MiB.", t.Name, MaxSwapMiB, t.SwapMiB)
	}
	return nil
}

// validName accepts names such as "m1.small": 1 to MaxNameLength ASCII
// letters, digits, '.', '-' and '_', which print in tables and travel in
// command lines without quoting.
func validName(name string) error {
	if name == "" || len(name) > MaxNameLength {
		return errs.Errorf(errs.Invalid, "A machine type name has 1 to %d characters; %q has %d.", MaxNameLength, short(name), len(name))
	}
	for _, c := range []byte(name) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_'
		if !ok {
			return errs.Errorf(errs.Invalid, "The machine type name %q may hold only letters, digits, '.', '-' and '_'.", short(name))
		}
	}
	return nil
}

// Resolve returns the resources of a machine of type name (DefaultName when
// empty) from types, with each non-nil override (--cpu, --ram in MiB,
// --swap in MiB) replacing the type's value. The result keeps the type's
// name and is checked by Validate. An unknown name is an errs.Invalid error
// listing the known ones.
func Resolve(types []Type, name string, cpu, ram, swap *int) (Type, error) {
	if name == "" {
		name = DefaultName
	}
	t, ok := find(types, name)
	if !ok {
		if len(types) == 0 {
			return Type{}, errs.Errorf(errs.Invalid, "Unknown machine type %q: no machine types are defined; ask an administrator to add some.", short(name))
		}
		return Type{}, errs.Errorf(errs.Invalid, "Unknown machine type %q: choose one of %s (run-instance --list-types shows their sizes).", short(name), strings.Join(names(types), ", "))
	}
	if cpu != nil {
		t.CPU = *cpu
	}
	if ram != nil {
		t.MemoryMiB = *ram
	}
	if swap != nil {
		t.SwapMiB = *swap
	}
	if err := t.Validate(); err != nil {
		return Type{}, err
	}
	return t, nil
}

// find returns the type called name. Names are matched exactly: the table
// is what the user sees with --list-types.
func find(types []Type, name string) (Type, bool) {
	for _, t := range types {
		if t.Name == name {
			return t, true
		}
	}
	return Type{}, false
}

func names(types []Type) []string {
	out := make([]string, len(types))
	for i, t := range types {
		out[i] = t.Name
	}
	return out
}

// List formats types as the table `run-instance --list-types` prints, in
// the order given, one type a line under a header, the default type
// marked:
//
//	TYPE       CPU  RAM MiB  SWAP MiB
//	t1.micro     1      512       512
//	m1.small     1     1536      1536  (default)
func List(types []Type) string {
	header := [4]string{"TYPE", "CPU", "RAM MiB", "SWAP MiB"}
	rows := make([][4]string, len(types))
	width := [4]int{}
	for i, h := range header {
		width[i] = len(h)
	}
	for i, t := range types {
		rows[i] = [4]string{t.Name, fmt.Sprint(t.CPU), fmt.Sprint(t.MemoryMiB), fmt.Sprint(t.SwapMiB)}
		for j, cell := range rows[i] {
			width[j] = max(width[j], len(cell))
		}
	}
	var b strings.Builder
	line := func(cells [4]string, suffix string) {
		fmt.Fprintf(&b, "%-*s  %*s  %*s  %*s%s\n", width[0], cells[0], width[1], cells[1], width[2], cells[2], width[3], cells[3], suffix)
	}
	line(header, "")
	for i, r := range rows {
		suffix := ""
		if types[i].Name == DefaultName {
			suffix = "  (default)"
		}
		line(r, suffix)
	}
	return b.String()
}

// short keeps error messages readable when input is garbage.
func short(s string) string {
	if len(s) > MaxNameLength {
		return s[:MaxNameLength] + "…"
	}
	return s
}
