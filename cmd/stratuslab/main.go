// Command stratuslab runs the whole cloud in one process: an embedded NATS
// server with JetStream, the embedded document store on it, and every
// service, each with its own connection, store and admin listener exactly
// as when it runs as its own binary.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/config"
	"stratuslab.dev/platform/daemon"
	"stratuslab.dev/platform/telemetry"
	"stratuslab.dev/services/authn"
	"stratuslab.dev/services/cimi"
	"stratuslab.dev/services/marketplace"
	"stratuslab.dev/services/pdisk"
	"stratuslab.dev/services/registration"
	"stratuslab.dev/services/vmctl"
	"stratuslab.dev/stratuslab/cmd/stratuslab/internal/seed"
)

// name is the all-in-one's name in the bootstrap settings and its logs.
const name = "stratuslab"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := daemon.Stopped(ctx, run(ctx, os.Args[1:], os.Stdout)); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return
		}
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(1)
	}
}

// component is one service of the all-in-one.
type component struct {
	name  string
	build func(*daemon.Deps) (daemon.Runner, error)
	deps  *daemon.Deps
	svc   daemon.Runner
}

func components() []*component {
	return []*component{
		{name: cimi.Name, build: func(d *daemon.Deps) (daemon.Runner, error) { return cimi.New(d) }},
		{name: authn.Name, build: func(d *daemon.Deps) (daemon.Runner, error) { return authn.New(d), nil }},
		{name: pdisk.Name, build: func(d *daemon.Deps) (daemon.Runner, error) { return pdisk.New(d), nil }},
		{name: vmctl.Name, build: func(d *daemon.Deps) (daemon.Runner, error) { return vmctl.New(d), nil }},
		{name: marketplace.Name, build: func(d *daemon.Deps) (daemon.Runner, error) { return marketplace.New(d), nil }},
		{name: registration.Name, build: func(d *daemon.Deps) (daemon.Runner, error) { return registration.New(d), nil }},
	}
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	seedOn, args, err := seedSetting(args, os.Getenv)
	if err != nil {
		return err
	}
	boot, err := config.Load(name, args, os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(os.Stderr, seedUsage())
	}
	if err != nil {
		return err
	}
	if len(boot.NATSURLs) > 0 {
		return errors.New("the all-in-one runs its own NATS server: run the service binaries to use --nats-url")
	}
	if boot.Store != config.StoreEmbedded {
		return fmt.Errorf("the all-in-one keeps its documents in the embedded store, not %q: run the service binaries for Couchbase", boot.Store)
	}
	if err := os.MkdirAll(boot.DataDir, 0o750); err != nil {
		return fmt.Errorf("create the data directory: %w", err)
	}
	tel, err := telemetry.Setup(ctx, telemetry.Options{Service: name, Version: daemon.Version, LogFormat: boot.LogFormat, LogLevel: boot.LogLevel})
	if err != nil {
		return err
	}
	defer tel.Shutdown(context.WithoutCancel(ctx))
	log := tel.Logger

	// Another cloud on this host may hold the default ports: then the
	// defaults give way to free ones, shown in the banner, so that
	// --data-dir and --listen are all a second cloud needs.
	boot.NATSListen = giveWay(boot.NATSListen, defaultNATSListen, log)
	if base, _ := adminAddr(boot.AdminListen, 0); base == defaultAdminListen() && !adminPortsFree(boot.AdminListen, len(components())) {
		log.Info("default admin ports in use; the services take free ones", "default", base)
		boot.AdminListen = "127.0.0.1:0"
	}
	srv, err := bus.StartServer(ctx, natsOptions(boot, log))
	if err != nil {
		return err
	}
	defer func() {
		srv.Shutdown()
		srv.WaitForShutdown()
		log.Info("NATS server stopped")
	}()

	comps := components()
	defer func() {
		// Reverse order, after every service stopped: connections drain
		// what they still hold, then the server goes down.
		for i := len(comps) - 1; i >= 0; i-- {
			if comps[i].deps != nil {
				comps[i].deps.Close(context.WithoutCancel(ctx))
			}
		}
	}()
	for i, c := range comps {
		b := boot
		b.AdminListen, err = adminAddr(boot.AdminListen, i+1)
		if err != nil {
			return err
		}
		if c.name == pdisk.Name {
			// The gateway comes first in components(): its New has made
			// or loaded its certificate by now, and pdisk reads the file
			// when it runs, after every component is built.
			b.ImageCAs = imageCAs(boot, comps[0].svc.(*cimi.Service).Scheme())
		}
		c.deps, err = daemon.Open(ctx, c.name, b, daemon.Options{Server: srv})
		if err != nil {
			return fmt.Errorf("start %s: %w", c.name, err)
		}
		if c.svc, err = c.build(c.deps); err != nil {
			return fmt.Errorf("start %s: %w", c.name, err)
		}
	}

	fns := make([]func(context.Context) error, len(comps))
	for i, c := range comps {
		fns[i] = func(ctx context.Context) error {
			if err := c.deps.Run(ctx, c.svc); err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			return nil
		}
	}
	gw := comps[0].svc.(*cimi.Service)
	var cat *seed.Catalogue
	if seedOn {
		cat = prepareSeed(ctx, boot, gw, log)
		fns = append(fns, func(ctx context.Context) error {
			publishSeed(ctx, boot, gw, cat, log)
			return nil
		})
	}
	printBanner(stdout, boot, srv.ClientURL(), comps, seedOn, cat)
	started := time.Now()
	err = daemon.Group(ctx, fns...)
	log.Info("services stopped", "uptime", time.Since(started).Round(time.Second).String())
	return err
}

// defaultNATSListen is the embedded server's default client address.
const defaultNATSListen = "127.0.0.1:4222"

func defaultAdminListen() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(config.AdminPort(name)))
}

// giveWay returns addr, or a free port on the same host when addr is the
// default and already taken.
func giveWay(addr, def string, log *slog.Logger) string {
	if addr != def || portFree(addr) {
		return addr
	}
	host, _, _ := net.SplitHostPort(addr)
	free := net.JoinHostPort(host, "0")
	log.Info("default address in use; taking a free port", "default", addr)
	return free
}

// adminPortsFree reports whether the n service admin ports after base are
// free.
func adminPortsFree(base string, n int) bool {
	for i := 1; i <= n; i++ {
		addr, err := adminAddr(base, i)
		if err != nil || !portFree(addr) {
			return false
		}
	}
	return true
}

func portFree(addr string) bool {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func natsOptions(boot config.Bootstrap, log *slog.Logger) bus.ServerOptions {
	o := bus.ServerOptions{DataDir: boot.DataDir, Logger: log, NoListen: boot.NATSListen == ""}
	if !o.NoListen {
		host, port, _ := net.SplitHostPort(boot.NATSListen)
		o.Host = host
		o.Port, _ = strconv.Atoi(port)
	}
	return o
}

// adminAddr gives the i-th service the admin port after the all-in-one's:
// 9600 for the all-in-one means 9601 for cimi, 9602 for authn and so on;
// port 0 gives every service a free port of its own.
func adminAddr(base string, i int) (string, error) {
	host, port, err := net.SplitHostPort(base)
	if err != nil {
		return "", fmt.Errorf("admin address %q: %w", base, err)
	}
	p, err := strconv.Atoi(port)
	if err != nil {
		return "", fmt.Errorf("admin address %q: bad port", base)
	}
	if p == 0 {
		return base, nil
	}
	return net.JoinHostPort(host, strconv.Itoa(p+i)), nil
}

func printBanner(w io.Writer, boot config.Bootstrap, natsURL string, comps []*component, seedOn bool, cat *seed.Catalogue) {
	gw := comps[0].svc.(*cimi.Service)
	base := gw.Scheme() + "://" + gw.Addr()
	endpoint := base + "/cimi/cloudEntryPoint"
	insecure := ""
	if gw.Scheme() == "https" {
		insecure = "-k " // the first start generates a self-signed certificate
	}
	password := filepath.Join(boot.DataDir, authn.PasswordFile)
	fmt.Fprintf(w, "StratusLab %s is running (Ctrl-C stops it).\n\n", daemon.Version)
	fmt.Fprintf(w, "  CIMI endpoint   %s\n", endpoint)
	fmt.Fprintf(w, "  try             curl -s %s%s\n", insecure, endpoint)
	fmt.Fprintf(w, "  web UI          %s/webui/\n", base)
	fmt.Fprintf(w, "  administrator   user admin, first password in %s\n", password)
	fmt.Fprintf(w, "  log in          curl -s %s-u admin:\"$(cat %s)\" %s/cimi/authn\n", insecure, password, base)
	fmt.Fprintf(w, "                  or: stratus --endpoint %s -u admin -p ... whoami\n", base)
	if boot.NATSListen != "" {
		fmt.Fprintf(w, "  NATS            %s   (nats --server %s micro ls)\n", natsURL, natsURL)
	}
	if seedOn {
		printCatalogue(w, boot, base, insecure, cat)
	}
	fmt.Fprintf(w, "  data directory  %s\n", boot.DataDir)
	fmt.Fprintf(w, "  health\n")
	for _, c := range comps {
		fmt.Fprintf(w, "    %-13s http://%s/healthz\n", c.name, c.deps.Admin.Addr())
	}
	fmt.Fprintln(w)
}

// printCatalogue shows what the seed catalogue holds, and how to run it.
func printCatalogue(w io.Writer, boot config.Bootstrap, base, insecure string, cat *seed.Catalogue) {
	switch {
	case cat == nil:
		fmt.Fprintf(w, "  Marketplace     no seed catalogue: see the log\n")
	case len(cat.Entries) == 0:
		fmt.Fprintf(w, "  Marketplace     no site image in %s (make run builds the test appliance there)\n", filepath.Join(boot.DataDir, imagesDir))
	}
	if cat == nil {
		return
	}
	for _, e := range cat.Entries {
		fmt.Fprintf(w, "  Marketplace     %s (tag %s), endorser %s\n", e.Identifier, e.Tag, cat.Endorser)
		fmt.Fprintf(w, "                  %s\n", e.Location)
	}
	if len(cat.Entries) > 0 {
		e := cat.Entries[0]
		flags := ""
		if insecure != "" {
			flags = "--insecure "
		}
		fmt.Fprintf(w, "  run it          stratus --endpoint %s %s-u admin -p ... run-instance %s\n", base, flags, e.Tag)
	}
}
