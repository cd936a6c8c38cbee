// Package cimi is the CIMI service: the REST gateway every user talks to
// (authenticating each request and passing it to the service owning the
// resource) and the owner of the cloud's own resources (CloudEntryPoint,
// ServiceMessage, ServiceConfiguration, Job and Event). New builds it from
// the shared dependencies; Run serves until the context ends.
package cimi

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/config"
	"stratuslab.dev/platform/daemon"
	"stratuslab.dev/platform/resource"
	"stratuslab.dev/platform/store"
	"stratuslab.dev/platform/telemetry"
	"stratuslab.dev/platform/x509auth"
	"stratuslab.dev/services/cimi/internal/api"
	"stratuslab.dev/services/cimi/internal/auth"
	"stratuslab.dev/services/cimi/internal/gateway"
	"stratuslab.dev/services/cimi/internal/jobs"
	"stratuslab.dev/services/cimi/internal/servicemsg"
	"stratuslab.dev/services/cimi/internal/webui"
)

// Name is the service's name on the bus and in the store.
const Name = "cimi"

// cloudEntryPointID is the id of the document recording when the cloud
// first started.
const cloudEntryPointID = "CloudEntryPoint"

// Service is the CIMI gateway.
type Service struct {
	deps     *daemon.Deps
	listener net.Listener
	tls      *tls.Config // nil: plain HTTP
	roots    *x509.CertPool
	voms     *x509.CertPool
	vomsCert []*x509.Certificate // VOMS servers, for attribute certificates that do not embed their signer
}

// New returns the gateway built on deps. It listens on the gateway address
// (deps.Boot.Listen) at once, so that the address is known (and a port
// conflict or a TLS mistake reported) before Run.
func New(deps *daemon.Deps) (*Service, error) {
	s := &Service{deps: deps}
	b := deps.Boot
	var err error
	if b.ClientCAs != "" {
		if s.roots, err = x509auth.LoadPool(b.ClientCAs); err != nil {
			return nil, fmt.Errorf("cimi: client_cas: %w", err)
		}
	}
	if b.VOMSCAs != "" {
		if s.voms, err = x509auth.LoadPool(b.VOMSCAs); err != nil {
			return nil, fmt.Errorf("cimi: voms_cas: %w", err)
		}
		if s.vomsCert, err = x509auth.LoadCerts(b.VOMSCAs); err != nil {
			return nil, fmt.Errorf("cimi: voms_cas: %w", err)
		}
	}
	https, err := useTLS(b.TLS, b.Listen)
	if err != nil {
		return nil, err
	}
	if https {
		s.tls, err = x509auth.ServerConfig(x509auth.ServerOptions{
			CertFile:   b.TLSCert,
			KeyFile:    b.TLSKey,
			DataDir:    filepath.Join(b.DataDir, Name),
			Hosts:      certHosts(b.Listen),
			ClientAuth: s.roots != nil,
		})
		if err != nil {
			return nil, fmt.Errorf("cimi: %w", err)
		}
	}
	l, err := net.Listen("tcp", b.Listen)
	if err != nil {
		return nil, fmt.Errorf("cimi: listen on %s: %w", b.Listen, err)
	}
	if s.tls != nil {
		l = tls.NewListener(l, s.tls)
	}
	s.listener = l
	return s, nil
}

// useTLS decides whether the gateway serves HTTPS on listen: always with
// "on", never with "off" (which only a loopback address may use: passwords
// and tokens must not cross a network in clear), and with "auto" unless
// the address is loopback.
func useTLS(mode, listen string) (bool, error) {
	loopback := isLoopback(listen)
	switch mode {
	case config.TLSOn:
		return true, nil
	case config.TLSOff:
		if !loopback {
			return false, fmt.Errorf("cimi: tls=off is allowed only on a loopback address, not %s: "+
				"passwords and session tokens would cross the network in clear; use tls=auto, "+
				"or listen on 127.0.0.1 behind a TLS front proxy", listen)
		}
		return false, nil
	case config.TLSAuto, "":
		return !loopback, nil
	}
	return false, fmt.Errorf("cimi: tls=%q: use auto, on or off", mode)
}

// isLoopback reports whether listen (HOST:PORT) only accepts local
// connections; an empty host listens everywhere.
func isLoopback(listen string) bool {
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

// certHosts are the names a self-signed certificate names: the listen
// host when it is one, this machine's name and localhost.
func certHosts(listen string) []string {
	hosts := []string{"localhost", "127.0.0.1", "::1"}
	if host, _, err := net.SplitHostPort(listen); err == nil && host != "" {
		if ip, err := netip.ParseAddr(host); err != nil || !ip.IsUnspecified() {
			hosts = append(hosts, host)
		}
	}
	if name, err := os.Hostname(); err == nil && name != "" {
		hosts = append(hosts, name)
	}
	return hosts
}

// Addr returns the address the gateway listens on, e.g. 127.0.0.1:8080.
func (s *Service) Addr() string { return s.listener.Addr().String() }

// Scheme returns "https" when the gateway serves TLS, "http" otherwise,
// so that banners can print its URL.
func (s *Service) Scheme() string {
	if s.tls != nil {
		return "https"
	}
	return "http"
}

// settings are the gateway's live settings in ServiceConfiguration/cimi.
type settings struct {
	// TrustedProxies are the networks (CIDR) of front proxies allowed to
	// assert a client's certificate DN in ClientDNHeader.
	TrustedProxies []string `json:"trusted-proxies"`
	ClientDNHeader string   `json:"client-dn-header"`
	// WriteWait is how long a write waits for its owner before answering
	// 202 Accepted, e.g. "5s".
	WriteWait string `json:"write-wait"`
}

// Validate refuses settings that cannot be applied.
func (c settings) Validate() error {
	if _, err := c.trust(); err != nil {
		return err
	}
	_, err := c.writeWait()
	return err
}

func (c settings) trust() (auth.Trust, error) {
	t := auth.Trust{DNHeader: c.ClientDNHeader}
	for _, p := range c.TrustedProxies {
		prefix, err := netip.ParsePrefix(p)
		if err != nil {
			addr, aerr := netip.ParseAddr(p)
			if aerr != nil {
				return auth.Trust{}, fmt.Errorf("trusted-proxies: %q is neither a network (CIDR, e.g. 10.0.0.0/24) nor an address", p)
			}
			prefix = netip.PrefixFrom(addr, addr.BitLen())
		}
		t.Proxies = append(t.Proxies, prefix)
	}
	return t, nil
}

func (c settings) writeWait() (time.Duration, error) {
	if c.WriteWait == "" {
		return api.DefaultWriteWait, nil
	}
	d, err := time.ParseDuration(c.WriteWait)
	if err != nil || d <= 0 || d > 5*time.Minute {
		return 0, fmt.Errorf("write-wait: %q must be a duration between 1ms and 5m, e.g. \"5s\"", c.WriteWait)
	}
	return d, nil
}

// jobRecorder adapts the jobs package to the gateway core.
type jobRecorder struct{ j *jobs.Jobs }

func (r jobRecorder) Start(ctx context.Context, who cimi.Identity, s api.JobSpec) (string, error) {
	return r.j.Start(ctx, who, jobs.Spec{Action: s.Action, Target: s.Target, CommandID: s.CommandID, CommandSubject: s.CommandSubject})
}

func (r jobRecorder) Fail(ctx context.Context, id string, err error) error {
	return r.j.Fail(ctx, id, err)
}

// Run serves the cimi resources on the bus, follows jobs and sessions and
// serves HTTP until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	defer s.listener.Close()
	d := s.deps
	colls := map[string]store.Collection{}
	for _, kind := range []string{servicemsg.KindServiceMessage, servicemsg.KindServiceConfiguration, jobs.KindJob, jobs.KindEvent} {
		c, err := d.Store.Collection(ctx, kind)
		if err != nil {
			return err
		}
		colls[kind] = c
	}
	created, err := s.firstStart(ctx)
	if err != nil {
		return err
	}
	jb := jobs.New(colls[jobs.KindJob], colls[jobs.KindEvent], d.Bus, d.Logger)
	kinds := append(servicemsg.Kinds(colls[servicemsg.KindServiceMessage], colls[servicemsg.KindServiceConfiguration]), jb.Kinds()...)
	provider, err := resource.New(d.Bus, Name, d.Logger, kinds...)
	if err != nil {
		return err
	}

	res, err := api.New(api.Options{Bus: d.Bus, Conn: d.Conn, Jobs: jobRecorder{jb}, Log: d.Logger})
	if err != nil {
		return err
	}
	defer res.Close()
	au := auth.New(d.Bus, d.Logger, auth.Options{ClientRoots: s.roots, VOMSRoots: s.voms, VOMSCerts: s.vomsCert, SecureCookies: s.tls != nil})
	live, err := daemon.Live(d, settings{}, func(c settings) {
		t, _ := c.trust()        // validated
		wait, _ := c.writeWait() // validated
		au.SetTrust(t)
		res.SetWriteWait(wait)
	})
	if err != nil {
		return err
	}
	if err := live.Load(ctx); err != nil {
		return err
	}
	d.Admin.AddReadiness("session-keys", func(context.Context) error { return au.Ready() })
	gw := gateway.New(gateway.Options{
		Log:       d.Logger,
		Created:   created,
		Resources: res,
		Sessions:  au,
		WebUI:     webui.New(res, au, d.Logger).Handler(),
		Bus:       d.Bus,
		ImagesDir: filepath.Join(d.Boot.DataDir, gateway.ImagesDirName),
		Wrap: func(h http.Handler) http.Handler {
			return telemetry.HTTPMiddleware(d.Telemetry, Name, h)
		},
	})
	return daemon.Group(ctx,
		func(ctx context.Context) error {
			return d.Bus.Serve(ctx, bus.ServiceInfo{
				Name:        Name,
				Version:     daemon.Version,
				Description: "CIMI gateway: REST API, web UI, jobs, service messages and configurations",
			}, provider.Endpoints()...)
		},
		func(ctx context.Context) error {
			return d.Bus.Consume(ctx, bus.ConsumerSpec{Durable: Name, Subjects: provider.Subjects()}, provider.Handle)
		},
		jb.Run,
		au.Run,
		live.Run,
		func(ctx context.Context) error { return gw.Serve(ctx, s.listener) },
	)
}

// firstStart returns when the cloud first started, recording it on the
// very first start so the CloudEntryPoint keeps its creation time.
func (s *Service) firstStart(ctx context.Context) (time.Time, error) {
	coll, err := s.deps.Store.Collection(ctx, cloudEntryPointID)
	if err != nil {
		return time.Time{}, err
	}
	var rec struct {
		Created time.Time `json:"created"`
	}
	doc, err := coll.Get(ctx, cloudEntryPointID)
	if errors.Is(err, store.ErrNotFound) {
		rec.Created = time.Now().UTC().Truncate(time.Millisecond)
		body, _ := json.Marshal(map[string]any{"id": cloudEntryPointID, "created": rec.Created})
		if _, err := coll.Create(ctx, cloudEntryPointID, body); err == nil || !errors.Is(err, store.ErrExists) {
			return rec.Created, err
		}
		doc, err = coll.Get(ctx, cloudEntryPointID)
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("cimi: read %s: %w", cloudEntryPointID, err)
	}
	if err := json.Unmarshal(doc.Body, &rec); err != nil {
		return time.Time{}, fmt.Errorf("cimi: decode %s: %w", cloudEntryPointID, err)
	}
	return rec.Created, nil
}
