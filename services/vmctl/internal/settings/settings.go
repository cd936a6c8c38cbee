// Package settings is the live configuration of vmctl, the document
// ServiceConfiguration/vmctl: the address pools machines get their IP and
// MAC from, how far hosts may be over-committed, when a silent host is
// declared lost, how long a guest has to power off, how long finished
// machines stay visible, and whether expired or deprecated Marketplace
// images may still be run.
package settings

import (
	"fmt"
	"time"

	"stratuslab.dev/platform/config"
	"stratuslab.dev/services/vmctl/internal/addresses"
)

// Service is the value the "service" attribute must hold.
const Service = "vmctl"

// Settings is ServiceConfiguration/vmctl.
type Settings struct {
	// Service must be "vmctl".
	Service string `json:"service"`
	// Pools are the address pools, one or more per network.
	Pools []addresses.Pool `json:"pools"`
	// CPURatio and MemoryRatio bound what may be allocated on a host, as
	// multiples of what it has (1: no over-commitment).
	CPURatio    float64 `json:"cpu-ratio"`
	MemoryRatio float64 `json:"memory-ratio"`
	// HostLostAfter is the silence after which a host is unavailable and
	// its machines Unknown.
	HostLostAfter config.Duration `json:"host-lost-after"`
	// ShutdownTimeout is how long a stop or a shutdown waits for the guest
	// to power off after its power button is pressed; a guest still
	// running then is powered off at once.
	ShutdownTimeout config.Duration `json:"shutdown-timeout"`
	// KeepDone is how long a finished machine stays visible (Done).
	KeepDone config.Duration `json:"keep-done"`
	// DestroyStrays says whether an agent destroys domains no machine
	// owns (after reporting them); otherwise it only reports them.
	DestroyStrays bool `json:"destroy-strays"`
	// AllowExpiredImages and AllowDeprecatedImages let machines start
	// from Marketplace images whose validity has ended or which their
	// endorser deprecated (when no valid one answers); by default such
	// images are refused with the date or the reason.
	AllowExpiredImages    bool `json:"allow-expired-images"`
	AllowDeprecatedImages bool `json:"allow-deprecated-images"`
}

// MaxShutdownTimeout is the longest shutdown-timeout: a stop waits for
// the guest within its command's ten minutes, and an agent waits no longer
// whatever it is asked.
const MaxShutdownTimeout = 5 * time.Minute

// Defaults are the settings of a new cloud: one public pool on libvirt's
// default network, no over-commitment of memory, CPUs shared four times.
func Defaults() Settings {
	return Settings{
		Service: Service,
		Pools: []addresses.Pool{{
			Network: addresses.Public, Subnet: "192.168.122.0/24", Gateway: "192.168.122.1",
			DNS: []string{"192.168.122.1"}, Domain: "stratuslab.local", Hostname: "vm-{last}",
			Range: "192.168.122.10-192.168.122.250",
		}},
		CPURatio:        4,
		MemoryRatio:     1,
		HostLostAfter:   config.Duration(30 * time.Second),
		ShutdownTimeout: config.Duration(time.Minute),
		KeepDone:        config.Duration(24 * time.Hour),
		DestroyStrays:   true,
	}
}

// Validate refuses settings that cannot work, saying what to fix.
func (s Settings) Validate() error {
	if s.Service != Service {
		return fmt.Errorf("service must be %q, not %q", Service, s.Service)
	}
	if err := addresses.ValidatePools(s.Pools); err != nil {
		return err
	}
	if s.CPURatio < 1 || s.CPURatio > 64 || s.MemoryRatio < 1 || s.MemoryRatio > 4 {
		return fmt.Errorf("cpu-ratio must be between 1 and 64 and memory-ratio between 1 and 4, not %g and %g", s.CPURatio, s.MemoryRatio)
	}
	if s.HostLostAfter.D() < 5*time.Second || s.HostLostAfter.D() > time.Hour {
		return fmt.Errorf("host-lost-after must be between 5s and 1h, not %s", s.HostLostAfter.D())
	}
	if s.ShutdownTimeout.D() < time.Second || s.ShutdownTimeout.D() > MaxShutdownTimeout {
		return fmt.Errorf("shutdown-timeout must be between 1s and %s, not %s", MaxShutdownTimeout, s.ShutdownTimeout.D())
	}
	if s.KeepDone.D() < 0 || s.KeepDone.D() > 365*24*time.Hour {
		return fmt.Errorf("keep-done must be between 0 and a year, not %s", s.KeepDone.D())
	}
	return nil
}
