// Package settings is the live configuration of pdisk, the document
// ServiceConfiguration/pdisk: per-user quotas, how long live disks of
// finished machines stay in quarantine, how long unused image-cache
// origins are kept, and how often the reconciler runs.
package settings

import (
	"fmt"
	"time"

	"stratuslab.dev/platform/config"
)

// Service is the value the "service" attribute must hold.
const Service = "pdisk"

// Quota bounds what one user may hold; 0 means no limit.
type Quota struct {
	// Volumes is the number of volumes (persistent and volatile).
	Volumes int `json:"volumes"`
	// GiB is their total size.
	GiB int64 `json:"gib"`
}

// Settings is ServiceConfiguration/pdisk.
type Settings struct {
	// Service must be "pdisk".
	Service string `json:"service"`
	// Quota applies to every user without an entry in Quotas.
	Quota Quota `json:"quota"`
	// Quotas by user name override Quota.
	Quotas map[string]Quota `json:"quotas,omitempty"`
	// Quarantine is how long the live disk of a finished machine is kept
	// before it is deleted.
	Quarantine config.Duration `json:"quarantine"`
	// CacheIdle is how long an image-cache origin without snapshots is
	// kept after its last use.
	CacheIdle config.Duration `json:"cache-idle"`
	// FailureTTL is how long a failed download is remembered, so that
	// requests for the same image fail at once with its reason.
	FailureTTL config.Duration `json:"failure-ttl"`
	// ReconcileEvery is the period of the reconciler (it also runs at start).
	ReconcileEvery config.Duration `json:"reconcile-every"`
	// OrphanGrace is the age below which storage without a document is
	// left alone by the reconciler: it may belong to a create in flight.
	OrphanGrace config.Duration `json:"orphan-grace"`
}

// Defaults are the settings of a new cloud: no quota, a 15-minute
// quarantine, origins kept a day after their last use.
func Defaults() Settings {
	return Settings{
		Service:        Service,
		Quarantine:     config.Duration(15 * time.Minute),
		CacheIdle:      config.Duration(24 * time.Hour),
		FailureTTL:     config.Duration(time.Minute),
		ReconcileEvery: config.Duration(10 * time.Minute),
		OrphanGrace:    config.Duration(10 * time.Minute),
	}
}

// QuotaOf returns the quota of user.
func (s Settings) QuotaOf(user string) Quota {
	if q, ok := s.Quotas[user]; ok {
		return q
	}
	return s.Quota
}

// Validate refuses settings that cannot work, saying what to fix.
func (s Settings) Validate() error {
	if s.Service != Service {
		return fmt.Errorf("service must be %q, not %q", Service, s.Service)
	}
	check := func(name string, q Quota) error {
		if q.Volumes < 0 || q.GiB < 0 {
			return fmt.Errorf("%s: quotas are counts, 0 for no limit; %d volumes / %d GiB cannot be", name, q.Volumes, q.GiB)
		}
		return nil
	}
	if err := check("quota", s.Quota); err != nil {
		return err
	}
	for user, q := range s.Quotas {
		if err := check("quotas."+user, q); err != nil {
			return err
		}
	}
	for _, d := range []struct {
		name string
		v    config.Duration
		min  time.Duration
	}{
		{"quarantine", s.Quarantine, 0},
		{"cache-idle", s.CacheIdle, 0},
		{"failure-ttl", s.FailureTTL, 0},
		{"reconcile-every", s.ReconcileEvery, time.Second},
		{"orphan-grace", s.OrphanGrace, time.Second},
	} {
		if d.v.D() < d.min || d.v.D() > 365*24*time.Hour {
			return fmt.Errorf("%s must be between %s and a year, not %s", d.name, d.min, d.v.D())
		}
	}
	return nil
}
