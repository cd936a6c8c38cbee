package hosts

import (
	"fmt"
	"strings"
)

// LoadTxt formats hosts, in the order given, as the load.txt summary of
// the original StratusLab:
//
//	ID NAME               RVM   TCPU   FCPU   ACPU   TMEM   FMEM   AMEM  STAT
//	 0 134.158.48.52        0      0      0    100     0K     0K     0K  err
//
// RVM is the number of running machines; TCPU, FCPU and ACPU are the
// total, idle and unallocated CPU (100 per core); TMEM, FMEM and AMEM the
// total, free and unallocated memory in KiB; STAT is "on" for a host
// taking machines, "off" for one in maintenance and "err" for one whose
// agent is silent. Unallocated amounts go negative on an over-committed
// host, which is what an administrator reading the table needs to know.
// Columns widen for long names and numbers.
func LoadTxt(hosts []Host) string {
	header := []string{"ID", "NAME", "RVM", "TCPU", "FCPU", "ACPU", "TMEM", "FMEM", "AMEM", "STAT"}
	// The original widths; NAME is left-aligned, STAT follows two spaces.
	width := []int{2, 18, 3, 6, 6, 6, 6, 6, 6, 0}
	rows := [][]string{header}
	for _, h := range hosts {
		rows = append(rows, []string{
			h.ID, h.Hostname,
			fmt.Sprint(h.RunningMachines),
			fmt.Sprint(h.CPUs * 100),
			fmt.Sprint(h.FreeCPUPercent),
			fmt.Sprint((h.CPUs - h.AllocatedCPUs) * 100),
			kib(h.MemoryMiB),
			kib(h.FreeMemoryMiB),
			kib(h.MemoryMiB - h.AllocatedMemoryMiB),
			status(h),
		})
	}
	for _, row := range rows {
		for i, cell := range row {
			width[i] = max(width[i], len(cell))
		}
	}
	var b strings.Builder
	for _, row := range rows {
		fmt.Fprintf(&b, "%*s %-*s", width[0], row[0], width[1], row[1])
		for i := 2; i < 9; i++ {
			fmt.Fprintf(&b, " %*s", width[i], row[i])
		}
		fmt.Fprintf(&b, "  %s\n", row[9])
	}
	return b.String()
}

// kib writes MiB as load.txt's KiB.
func kib(mib int64) string { return fmt.Sprintf("%dK", mib*1024) }

// status is load.txt's STAT of h.
func status(h Host) string {
	switch {
	case h.State != Available:
		return "err"
	case h.Maintenance:
		return "off"
	}
	return "on"
}
