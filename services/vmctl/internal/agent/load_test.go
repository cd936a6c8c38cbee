package agent

import (
	"testing"

	"stratuslab.dev/services/vmctl/internal/hypervisor"
)

func TestLoad(t *testing.T) {
	t.Parallel()
	info := hypervisor.Info{CPUs: 4, MemoryMiB: 8192}
	run := func(cpu int, mem int64) hypervisor.DomainStatus {
		return hypervisor.DomainStatus{State: hypervisor.Running, CPU: cpu, MemoryMiB: mem}
	}
	tests := []struct {
		name    string
		doms    []hypervisor.DomainStatus
		running int
		cpu     int
		mem     int64
	}{
		{"idle host", nil, 0, 400, 8192},
		{"one machine", []hypervisor.DomainStatus{run(1, 512)}, 1, 300, 7680},
		{"stopped domains take nothing", []hypervisor.DomainStatus{run(2, 1024), {State: hypervisor.Shutoff, CPU: 2, MemoryMiB: 4096}}, 1, 200, 7168},
		{"over-committed host shows none free", []hypervisor.DomainStatus{run(4, 6144), run(4, 6144)}, 2, 0, 0},
	}
	for _, tt := range tests {
		running, cpu, mem := load(info, tt.doms)
		if running != tt.running || cpu != tt.cpu || mem != tt.mem {
			t.Errorf("%s: load = %d machines, %d%% CPU, %d MiB free; want %d, %d, %d", tt.name, running, cpu, mem, tt.running, tt.cpu, tt.mem)
		}
	}
}
