package hosts_test

import (
	"testing"

	"stratuslab.dev/services/vmctl/internal/hosts"
)

func TestLoadTxt(t *testing.T) {
	t.Parallel()
	// The first row is the original's example: a silent host of which
	// nothing is known.
	in := []hosts.Host{
		{ID: "0", Hostname: "134.158.48.52", State: hosts.Unavailable},
		{ID: "1", Hostname: "node-1.example.org", State: hosts.Available, CPUs: 8, MemoryMiB: 16384,
			AllocatedCPUs: 3, AllocatedMemoryMiB: 4608, FreeCPUPercent: 612, FreeMemoryMiB: 10240, RunningMachines: 3},
		{ID: "2", Hostname: "n2", State: hosts.Available, Maintenance: true, CPUs: 2, MemoryMiB: 2048,
			AllocatedCPUs: 4, AllocatedMemoryMiB: 1024, FreeCPUPercent: 0, FreeMemoryMiB: 512, RunningMachines: 4},
	}
	// Columns widen to their widest cell, so that numbers stay aligned.
	want := `ID NAME               RVM   TCPU   FCPU   ACPU      TMEM      FMEM      AMEM  STAT
 0 134.158.48.52        0      0      0      0        0K        0K        0K  err
 1 node-1.example.org   3    800    612    500 16777216K 10485760K 12058624K  on
 2 n2                   4    200      0   -200  2097152K   524288K  1048576K  off
`
	if got := hosts.LoadTxt(in); got != want {
		t.Errorf("LoadTxt =\n%s\nwant\n%s", got, want)
	}
	// The original's own example, byte for byte.
	orig := "ID NAME               RVM   TCPU   FCPU   ACPU   TMEM   FMEM   AMEM  STAT\n" +
		" 0 134.158.48.52        0      0      0      0     0K     0K     0K  err\n"
	if got := hosts.LoadTxt(in[:1]); got != orig {
		t.Errorf("LoadTxt of one silent host =\n%q\nwant\n%q", got, orig)
	}
	long := []hosts.Host{{ID: "node-with-a-long-id", Hostname: "a-very-long-host-name.example.org", State: hosts.Available, CPUs: 1, MemoryMiB: 1}}
	want = `                 ID NAME                              RVM   TCPU   FCPU   ACPU   TMEM   FMEM   AMEM  STAT
node-with-a-long-id a-very-long-host-name.example.org   0    100      0    100  1024K     0K  1024K  on
`
	if got := hosts.LoadTxt(long); got != want {
		t.Errorf("LoadTxt(long) =\n%s\nwant\n%s", got, want)
	}
}
