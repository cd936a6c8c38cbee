package daemon

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/config"
	"stratuslab.dev/platform/store"
	"stratuslab.dev/platform/store/couchbase"
	"stratuslab.dev/platform/store/embedded"
	"stratuslab.dev/platform/telemetry"
)

// Version is the version every service reports on the bus and in telemetry.
const Version = "0.1.0"

// Deps are the dependencies a service is built from. Services read them
// and never close them: Close belongs to whoever called Open.
type Deps struct {
	Name      string
	Boot      config.Bootstrap
	Telemetry *telemetry.Telemetry
	Logger    *slog.Logger
	Conn      *nats.Conn
	JetStream jetstream.JetStream
	Bus       *bus.Bus
	Store     store.Store
	Admin     *telemetry.Admin
	// Settings holds the ServiceConfiguration documents, which the CIMI
	// service owns and every service reads (see Live).
	Settings store.Collection

	settingsStore store.Store // opened for Settings when not the service's own
}

// Options say how Open reaches NATS beyond the bootstrap settings.
type Options struct {
	// Server, when set, is an embedded NATS server in this process: the
	// service connects to it without the network and NATS URLs are ignored.
	Server *server.Server
	// Telemetry, when set, is used instead of a new one (tests).
	Telemetry *telemetry.Telemetry
}

// Open connects the service name as boot says: telemetry, NATS and the
// command and event streams, the store, and an admin listener on
// boot.AdminListen (not yet serving: Run serves it). On error everything
// opened so far is closed again.
func Open(ctx context.Context, name string, boot config.Bootstrap, opts Options) (d *Deps, err error) {
	d = &Deps{Name: name, Boot: boot, Telemetry: opts.Telemetry}
	defer func() {
		if err != nil {
			d.Close(context.WithoutCancel(ctx))
			d = nil
		}
	}()
	if d.Telemetry == nil {
		d.Telemetry, err = telemetry.Setup(ctx, telemetry.Options{
			Service:   name,
			Version:   Version,
			Instance:  boot.Instance,
			LogFormat: boot.LogFormat,
			LogLevel:  boot.LogLevel,
		})
		if err != nil {
			return nil, err
		}
	}
	d.Logger = d.Telemetry.Logger
	d.Conn, err = bus.Connect(ctx, bus.ConnOptions{
		URLs:      boot.NATSURLs,
		InProcess: opts.Server,
		Name:      name,
		CredsFile: boot.NATSCreds,
		Logger:    d.Logger,
	})
	if err != nil {
		return nil, err
	}
	d.JetStream, err = jetstream.New(d.Conn)
	if err != nil {
		return nil, fmt.Errorf("daemon: %s: jetstream: %w", name, err)
	}
	if err := bus.EnsureStreams(ctx, d.JetStream, bus.StreamOptions{}); err != nil {
		return nil, err
	}
	d.Bus = bus.New(d.Conn, d.JetStream, bus.Options{
		Service:        name,
		Logger:         d.Logger,
		TracerProvider: d.Telemetry.TracerProvider,
		Propagator:     d.Telemetry.Propagator,
	})
	d.Store, err = openStore(ctx, d, name)
	if err != nil {
		return nil, err
	}
	if err := d.openSettings(ctx); err != nil {
		return nil, err
	}
	d.Admin = telemetry.NewAdmin(boot.AdminListen, d.Telemetry)
	d.Admin.AddReadiness("nats", func(context.Context) error {
		if s := d.Conn.Status(); s != nats.CONNECTED {
			return fmt.Errorf("NATS connection is %s", s)
		}
		return nil
	})
	if err := d.Admin.Listen(); err != nil {
		return nil, err
	}
	return d, nil
}

// settingsOwner is the service owning the ServiceConfiguration documents.
const settingsOwner = "cimi"

// openSettings opens the collection of ServiceConfiguration documents: in
// the service's own store for their owner, read-only in the owner's slice
// for everyone else.
func (d *Deps) openSettings(ctx context.Context) error {
	st := d.Store
	if d.Name != settingsOwner {
		var err error
		if d.settingsStore, err = openStore(ctx, d, settingsOwner); err != nil {
			return err
		}
		st = d.settingsStore
	}
	var err error
	d.Settings, err = st.Collection(ctx, config.ServiceConfigurationKind)
	return err
}

func openStore(ctx context.Context, d *Deps, service string) (store.Store, error) {
	switch d.Boot.Store {
	case "", config.StoreEmbedded:
		return embedded.Open(ctx, d.JetStream, service,
			embedded.WithLogger(d.Logger))
	case config.StoreCouchbase:
		return couchbase.Open(ctx, couchbase.Config{
			ConnStr:  d.Boot.CouchbaseURL,
			Username: d.Boot.CouchbaseUser,
			Password: string(d.Boot.CouchbasePassword),
			Bucket:   d.Boot.CouchbaseBucket,
		}, d.Conn, service, couchbase.WithLogger(d.Logger))
	}
	return nil, fmt.Errorf("daemon: %s: unknown store %q", d.Name, d.Boot.Store)
}

// Close drains the NATS connection (delivering what is in flight), closes
// the store and flushes telemetry.
func (d *Deps) Close(ctx context.Context) {
	for _, st := range []store.Store{d.settingsStore, d.Store} {
		if st != nil {
			if err := st.Close(); err != nil {
				d.Logger.Warn("closing the store", "error", err)
			}
		}
	}
	if d.Conn != nil {
		drained := make(chan struct{})
		d.Conn.SetClosedHandler(func(*nats.Conn) { close(drained) })
		if err := d.Conn.Drain(); err != nil {
			d.Conn.Close()
		} else {
			select {
			case <-drained:
			case <-time.After(10 * time.Second):
				d.Conn.Close()
			}
		}
	}
	if d.Telemetry != nil {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		defer cancel()
		_ = d.Telemetry.Shutdown(sctx)
	}
}

// Runner is a service: it runs until ctx ends, then stops its consumers
// after the work in progress is acknowledged, and returns.
type Runner interface {
	Run(ctx context.Context) error
}

// Common are the settings every service takes from its
// ServiceConfiguration/<service> document, beside its own.
type Common struct {
	// LogLevel overrides the bootstrap log level while set: "debug",
	// "info", "warn" or "error".
	LogLevel string `json:"logLevel,omitempty"`
}

// Validate refuses a log level nobody can read.
func (c Common) Validate() error {
	_, err := telemetry.ParseLevel(c.LogLevel)
	return err
}

// Live returns the service's live ServiceConfiguration settings of type T,
// starting at defaults; apply (may be nil) runs each time they take effect.
// Run the result (Live.Run) beside the service.
func Live[T any](d *Deps, defaults T, apply func(T)) (*config.Live[T], error) {
	return config.NewLive(d.Settings, config.ServiceConfigurationID(d.Name, ""), defaults, apply, d.Logger)
}

// Run runs the service, its admin listener and its common live settings
// until ctx ends or one of them fails; either way it waits for all to stop.
func (d *Deps) Run(ctx context.Context, svc Runner) error {
	bootLevel := d.Telemetry.Level.Level()
	common, err := Live(d, Common{}, func(c Common) {
		level := bootLevel
		if c.LogLevel != "" {
			level, _ = telemetry.ParseLevel(c.LogLevel) // validated
		}
		if level != d.Telemetry.Level.Level() {
			d.Logger.Info("log level changed by the service configuration", "level", level.String())
			d.Telemetry.Level.Set(level)
		}
	})
	if err != nil {
		return err
	}
	if err := common.Load(ctx); err != nil {
		return Stopped(ctx, err)
	}
	return Stopped(ctx, Group(ctx, svc.Run, d.Admin.Run, common.Run))
}

// Stopped returns nil for an error caused by ctx ending, and err otherwise:
// a stop requested while a service is still starting cancels whatever it
// was waiting for, and that is a clean stop, not a failure.
func Stopped(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil && errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// Group runs every fn at once. When one returns an error, or ctx ends, the
// context of the others is cancelled; Group waits for all of them and
// returns the first error.
func Group(ctx context.Context, fns ...func(context.Context) error) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, len(fns))
	for _, fn := range fns {
		go func() { errc <- fn(ctx) }()
	}
	var first error
	for range fns {
		if err := <-errc; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	return first
}

// Main is the whole main function of a standalone service binary: it loads
// the bootstrap settings from the command line, environment and file,
// opens the dependencies, builds the service and runs it until SIGINT or
// SIGTERM, then exits 0 after a clean stop or 1 with the error.
func Main(name string, build func(*Deps) (Runner, error)) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := Stopped(ctx, mainErr(ctx, name, build)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

func mainErr(ctx context.Context, name string, build func(*Deps) (Runner, error)) error {
	boot, err := config.Load(name, os.Args[1:], os.Getenv)
	if err != nil {
		return err
	}
	d, err := Open(ctx, name, boot, Options{})
	if err != nil {
		return err
	}
	defer d.Close(context.WithoutCancel(ctx))
	svc, err := build(d)
	if err != nil {
		return err
	}
	d.Logger.Info("service started", "admin", "http://"+d.Admin.Addr())
	return d.Run(ctx, svc)
}

// Announcement keeps a service discoverable on the bus (nats micro ls,
// $SRV.PING) and answering health checks, with no endpoints of its own:
// what a service runs until it has behaviour.
type Announcement struct {
	deps *Deps
	desc string
}

// Announce returns the announcement of the service of deps, described for
// people by description.
func Announce(deps *Deps, description string) *Announcement {
	return &Announcement{deps: deps, desc: description}
}

// Run serves the announcement until ctx ends.
func (a *Announcement) Run(ctx context.Context) error {
	return a.deps.Bus.Serve(ctx, bus.ServiceInfo{Name: a.deps.Name, Version: Version, Description: a.desc})
}

// CrashStatus is the exit status of a process that reached one of its
// bootstrap crash points.
const CrashStatus = 86

// Crash ends the process at once, as a SIGKILL would (no deferred call,
// no acknowledgement), when point is one of the bootstrap's crash points;
// otherwise it does nothing. Crash tests use it to stop a service at a
// chosen step and check that a restart converges.
func (d *Deps) Crash(point string) {
	if d == nil || !slices.Contains(d.Boot.CrashAt, point) {
		return
	}
	d.Logger.Error("crash point reached: exiting", "point", point)
	os.Exit(CrashStatus)
}
