// Package cimi is the CIMI service: the REST gateway every user talks to
// and the owner of the cloud's own resources (CloudEntryPoint,
// ServiceMessage, ServiceConfiguration, and soon Job and Event). New builds
// it from the shared dependencies; Run serves until the context ends.
package cimi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/daemon"
	"stratuslab.dev/platform/store"
	"stratuslab.dev/platform/telemetry"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/cimi/internal/gateway"
	"stratuslab.dev/services/cimi/internal/servicemsg"
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
}

// New returns the gateway built on deps. It listens on the gateway address
// (deps.Boot.Listen) at once, so that the address is known (and a port
// conflict reported) before Run.
func New(deps *daemon.Deps) (*Service, error) {
	l, err := net.Listen("tcp", deps.Boot.Listen)
	if err != nil {
		return nil, fmt.Errorf("cimi: listen on %s: %w", deps.Boot.Listen, err)
	}
	return &Service{deps: deps, listener: l}, nil
}

// Addr returns the address the gateway listens on, e.g. 127.0.0.1:8080.
func (s *Service) Addr() string { return s.listener.Addr().String() }

// Run consumes the gateway's commands, answers discovery on the bus and
// serves HTTP until ctx ends.
func (s *Service) Run(ctx context.Context) error {
	defer s.listener.Close()
	d := s.deps
	messages, err := d.Store.Collection(ctx, servicemsg.KindServiceMessage)
	if err != nil {
		return err
	}
	configs, err := d.Store.Collection(ctx, servicemsg.KindServiceConfiguration)
	if err != nil {
		return err
	}
	created, err := s.firstStart(ctx)
	if err != nil {
		return err
	}
	handlers := servicemsg.New(messages, configs, d.Bus)
	gw := gateway.New(d.Logger, created, nil, func(h http.Handler) http.Handler {
		return telemetry.HTTPMiddleware(d.Telemetry, "cimi", h)
	})
	return daemon.Group(ctx,
		func(ctx context.Context) error {
			return d.Bus.Serve(ctx, bus.ServiceInfo{
				Name:        Name,
				Version:     daemon.Version,
				Description: "CIMI gateway: REST API, web UI, jobs, service messages and configurations",
			})
		},
		func(ctx context.Context) error {
			return d.Bus.Consume(ctx, bus.ConsumerSpec{
				Durable:  Name,
				Subjects: []string{subject.Commands(Name, "*")},
			}, handlers.Dispatch)
		},
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
