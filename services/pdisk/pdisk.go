// Package pdisk is the storage controller: it owns Volume documents
// (persistent, volatile and read-only volumes, image-cache origins and
// their copy-on-write snapshots) and the storage behind them, and serves
// them through CIMI and through typed commands for the other services.
// New builds it from the shared dependencies and Run serves until the
// context ends.
package pdisk

import (
	"context"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/google/uuid"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/config"
	"stratuslab.dev/platform/daemon"
	"stratuslab.dev/platform/resource"
	"stratuslab.dev/platform/x509auth"
	"stratuslab.dev/services/pdisk/internal/backend"
	"stratuslab.dev/services/pdisk/internal/backend/lvm"
	"stratuslab.dev/services/pdisk/internal/backend/qcow2"
	"stratuslab.dev/services/pdisk/internal/backend/rbd"
	"stratuslab.dev/services/pdisk/internal/controller"
	"stratuslab.dev/services/pdisk/internal/export/tgt"
	"stratuslab.dev/services/pdisk/internal/imagecache"
	"stratuslab.dev/services/pdisk/internal/settings"
	"stratuslab.dev/services/pdisk/internal/volume"
)

// Name is the service's name on the bus and in the store.
const Name = "pdisk"

// Service is the pdisk service.
type Service struct {
	deps *daemon.Deps
}

// New returns the service built on deps.
func New(deps *daemon.Deps) *Service { return &Service{deps: deps} }

// Dir is where the qcow2 backend keeps volumes under a data directory.
func Dir(dataDir string) string { return filepath.Join(dataDir, Name, "volumes") }

// Run serves until ctx ends: CIMI reads of volumes (queries), CIMI writes
// and typed volume commands (one durable consumer), and the controller's
// janitor and reconciler.
func (s *Service) Run(ctx context.Context) error {
	d := s.deps
	log := d.Logger
	// Read first: a bad image_cas stops the start before anything else.
	roots, err := imageRoots(d.Boot.ImageCAs)
	if err != nil {
		return err
	}
	vols, err := d.Store.Collection(ctx, volume.Kind)
	if err != nil {
		return err
	}
	usage, err := d.Store.Collection(ctx, controller.UsageKind)
	if err != nil {
		return err
	}
	live, err := daemon.Live(d, settings.Defaults(), func(c settings.Settings) {
		log.Info("pdisk settings in effect", "quota_volumes", c.Quota.Volumes, "quota_gib", c.Quota.GiB,
			"quarantine", c.Quarantine.D().String(), "cache_idle", c.CacheIdle.D().String())
	})
	if err != nil {
		return err
	}
	if err := live.Load(ctx); err != nil {
		return err
	}
	be, err := openBackend(d.Boot)
	if err != nil {
		return err
	}
	var exporter controller.Exporter
	if d.Boot.ISCSIPortal != "" {
		port, _ := strconv.Atoi(d.Boot.TGTControlPort)
		exporter, err = tgt.New(tgt.Config{Portal: d.Boot.ISCSIPortal, ControlPort: port})
		if err != nil {
			return err
		}
	}
	tmp := filepath.Join(d.Boot.DataDir, Name, "downloads")
	if err := os.MkdirAll(tmp, 0o750); err != nil {
		return fmt.Errorf("pdisk: download directory: %w", err)
	}
	ann := volume.Announcer{Bus: d.Bus}
	cache, err := imagecache.New(imagecache.Config{
		Volumes:    vols,
		Backend:    be,
		Announce:   ann.Changed,
		Holder:     d.Boot.Instance + "-" + uuid.NewString()[:8],
		TempDir:    tmp,
		Roots:      roots,
		FailureTTL: live.Current().FailureTTL.D(),
		Log:        log,
	})
	if err != nil {
		return err
	}
	ctl, err := controller.New(controller.Config{
		Volumes: vols, Usage: usage, Backend: be, Exporter: exporter, Cache: cache, Bus: d.Bus,
		Settings: live.Current, Log: log, Crash: d.Crash,
	})
	if err != nil {
		return err
	}
	provider, err := resource.New(d.Bus, Name, log, ctl.Kind())
	if err != nil {
		return err
	}
	commands := func(ctx context.Context, cmd *bus.Command) (bus.Result, error) {
		if provider.Owns(cmd.Subject()) {
			return provider.Handle(ctx, cmd)
		}
		return ctl.Handle(ctx, cmd)
	}
	info := bus.ServiceInfo{Name: Name, Version: daemon.Version, Description: "storage controller: volumes and the image cache"}
	return daemon.Group(ctx,
		live.Run,
		func(ctx context.Context) error { return d.Bus.Serve(ctx, info, provider.Endpoints()...) },
		func(ctx context.Context) error {
			return d.Bus.Consume(ctx, bus.ConsumerSpec{Durable: Name, Subjects: provider.Subjects(), Concurrency: 64,
				// A crashed replica's commands move on after 10 s; an image
				// download may run for half an hour.
				AckWait: 10 * time.Second, MaxRun: 30 * time.Minute}, commands)
		},
		ctl.Run,
	)
}

// openBackend opens the storage the bootstrap names.
func openBackend(boot config.Bootstrap) (backend.Backend, error) {
	switch boot.Storage {
	case config.StorageLVM:
		return lvm.New(lvm.Config{VG: boot.LVMGroup, ThinPool: boot.LVMThinPool})
	case config.StorageRBD:
		return rbd.New(rbd.Config{Pool: boot.RBDPool, User: boot.RBDUser})
	}
	return qcow2.New(Dir(boot.DataDir))
}

// imageRoots are the CAs image downloads trust: the system's plus the
// certificates of path (the bootstrap's image_cas, a PEM file or a
// directory); nil, which means the system's alone, when path is empty.
func imageRoots(path string) (*x509.CertPool, error) {
	if path == "" {
		return nil, nil
	}
	certs, err := x509auth.LoadCerts(path)
	if err != nil {
		return nil, fmt.Errorf("pdisk: image_cas: %w", err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil {
		// No system store (a minimal container): the site's CAs alone.
		pool = x509.NewCertPool()
	}
	for _, c := range certs {
		pool.AddCert(c)
	}
	return pool, nil
}
