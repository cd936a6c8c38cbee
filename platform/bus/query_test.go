package bus

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"google.golang.org/protobuf/proto"

	commonv1 "stratuslab.dev/proto/stratus/common/v1"
)

// waitServing waits until some service lists an endpoint on subject in its
// $SRV.INFO answer, so that requests no longer meet "no responders".
func waitServing(t *testing.T, b *Bus, subject string) {
	t.Helper()
	name := strings.Split(subject, ".")[1]
	eventually(t, subject+" served", func() bool {
		reply, err := b.nc.Request("$SRV.INFO."+name, nil, time.Second)
		if err != nil {
			return false
		}
		var info micro.Info
		if err := json.Unmarshal(reply.Data, &info); err != nil {
			return false
		}
		for _, ep := range info.Endpoints {
			if ep.Subject == subject {
				return true
			}
		}
		return false
	})
}

func TestQueries(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	server := e.bus("pdisk")
	client := e.busOwnConn("cimi")
	stop := run(t, func(ctx context.Context) error {
		return server.Serve(ctx, ServiceInfo{Version: "1.2.3", Description: "volumes"},
			Handle("get", func(ctx context.Context, req *commonv1.ResourceRef) (proto.Message, error) {
				switch req.GetId() {
				case "Volume/missing":
					return nil, codeErr{"not_found", "Volume/missing does not exist"}
				case "Volume/broken":
					return nil, errors.New("dial tcp 10.0.0.1:11210: refused")
				case "Volume/panic":
					panic("bug")
				}
				// Echo the id with the caller's user, to show the actor arrived.
				return &commonv1.ResourceRef{Id: req.GetId() + "@" + ActorFrom(ctx).GetUser()}, nil
			}),
			Endpoint{Op: "ping", Handler: func(context.Context, []byte) (proto.Message, error) { return nil, nil }},
		)
	})
	waitServing(t, client, "svc.pdisk.get")
	waitServing(t, client, "svc.pdisk.ping")

	alice := &commonv1.Actor{User: "alice"}
	tests := []struct {
		name     string
		subject  string
		req      proto.Message
		wantID   string // reply id when no error
		wantCode string
		wantMsg  string
	}{
		{name: "reply", subject: "svc.pdisk.get", req: &commonv1.ResourceRef{Id: "Volume/1"}, wantID: "Volume/1@alice"},
		{name: "coded error", subject: "svc.pdisk.get", req: &commonv1.ResourceRef{Id: "Volume/missing"},
			wantCode: "not_found", wantMsg: "Volume/missing does not exist"},
		{name: "uncoded error hides detail", subject: "svc.pdisk.get", req: &commonv1.ResourceRef{Id: "Volume/broken"},
			wantCode: "internal", wantMsg: errorMessage(errors.New("x"))},
		{name: "panic", subject: "svc.pdisk.get", req: &commonv1.ResourceRef{Id: "Volume/panic"}, wantCode: "internal"},
		{name: "request of another type", subject: "svc.pdisk.get", req: &commonv1.Error{Code: strings.Repeat("x", 3)},
			wantCode: "invalid"},
		{name: "empty reply", subject: "svc.pdisk.ping", req: &commonv1.ResourceRef{}},
		{name: "no responder", subject: "svc.nobody.get", req: &commonv1.ResourceRef{}, wantCode: "unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var resp commonv1.ResourceRef
			err := client.Request(context.Background(), tt.subject, alice, tt.req, &resp)
			if tt.wantCode == "" {
				if err != nil {
					t.Fatal(err)
				}
				if resp.GetId() != tt.wantID {
					t.Errorf("reply id %q, want %q", resp.GetId(), tt.wantID)
				}
				return
			}
			if err == nil {
				t.Fatalf("no error, reply %v", &resp)
			}
			if got := errorCode(err); got != tt.wantCode {
				t.Errorf("code %q (%v), want %q", got, err, tt.wantCode)
			}
			if tt.wantMsg != "" && errorMessage(err) != tt.wantMsg {
				t.Errorf("message %q, want %q", errorMessage(err), tt.wantMsg)
			}
		})
	}

	var qe *QueryError
	err := client.Request(context.Background(), "svc.pdisk.get", nil, &commonv1.ResourceRef{Id: "Volume/missing"}, nil)
	if !errors.As(err, &qe) || qe.Code() != "not_found" {
		t.Errorf("error %v is not a not_found *QueryError", err)
	}
	err = client.Request(context.Background(), "svc.nobody.get", nil, &commonv1.ResourceRef{}, nil)
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("error %v is not ErrUnavailable", err)
	}

	// Once Serve returns the service is gone.
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	err = client.Request(context.Background(), "svc.pdisk.get", nil, &commonv1.ResourceRef{}, nil)
	if !errors.Is(err, ErrUnavailable) {
		t.Errorf("after stop: %v, want ErrUnavailable", err)
	}
}

func TestRequestTimeout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// A bare subscriber that never answers.
	sub, err := e.nc.SubscribeSync("svc.slow.get")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err = e.bus("cimi").Request(ctx, "svc.slow.get", nil, &commonv1.ResourceRef{}, nil)
	if got := errorCode(err); got != "timeout" {
		t.Errorf("code %q (%v), want timeout", got, err)
	}
}

// TestRequestWhileStarting: a query sent just before its service starts
// serving is answered, not refused as unavailable: a service starting or
// restarting is asked again.
func TestRequestWhileStarting(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	server := e.bus("volumes")
	go func() {
		time.Sleep(100 * time.Millisecond)
		run(t, func(ctx context.Context) error {
			return server.Serve(ctx, ServiceInfo{}, Handle("get", func(_ context.Context, req *commonv1.ResourceRef) (proto.Message, error) {
				return req, nil
			}))
		})
	}()
	var resp commonv1.ResourceRef
	if err := e.busOwnConn("cimi").Request(context.Background(), "svc.volumes.get", nil, &commonv1.ResourceRef{Id: "Volume/1"}, &resp); err != nil {
		t.Fatal(err)
	}
	if resp.GetId() != "Volume/1" {
		t.Errorf("reply %v", &resp)
	}
}

func TestServeDiscoverable(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.bus("marketplace")
	run(t, func(ctx context.Context) error {
		return b.Serve(ctx, ServiceInfo{Version: "0.1.0", Description: "appliances"}, Endpoint{Op: "search",
			Handler: func(context.Context, []byte) (proto.Message, error) { return nil, nil }})
	})
	var ping micro.Ping
	eventually(t, "service answers $SRV.PING", func() bool {
		// The PING every service answers, as `nats micro ls` sends it.
		inbox := nats.NewInbox()
		sub, err := e.nc.SubscribeSync(inbox)
		if err != nil {
			t.Fatal(err)
		}
		defer sub.Unsubscribe()
		if err := e.nc.PublishRequest("$SRV.PING", inbox, nil); err != nil {
			t.Fatal(err)
		}
		msg, err := sub.NextMsg(time.Second)
		if err != nil {
			return false
		}
		return json.Unmarshal(msg.Data, &ping) == nil
	})
	if ping.Name != "marketplace" || ping.Version != "0.1.0" || ping.Type != micro.PingResponseType {
		t.Errorf("ping answer = %+v", ping)
	}
	reply, err := e.nc.Request("$SRV.INFO.marketplace", nil, waitLimit)
	if err != nil {
		t.Fatal(err)
	}
	var info micro.Info
	if err := json.Unmarshal(reply.Data, &info); err != nil {
		t.Fatal(err)
	}
	if len(info.Endpoints) != 1 || info.Endpoints[0].Subject != "svc.marketplace.search" ||
		info.Endpoints[0].QueueGroup != "marketplace" || info.Description != "appliances" {
		t.Errorf("info = %+v", info)
	}
}

func TestServeRejectsBadNames(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.bus("pdisk")
	h := func(context.Context, []byte) (proto.Message, error) { return nil, nil }
	tests := []struct {
		name string
		info ServiceInfo
		ep   Endpoint
	}{
		{"service name with a dot", ServiceInfo{Name: "p.disk"}, Endpoint{Op: "get", Handler: h}},
		{"version not semver", ServiceInfo{Version: "one"}, Endpoint{Op: "get", Handler: h}},
		{"op with a space", ServiceInfo{}, Endpoint{Op: "get all", Handler: h}},
	}
	for _, tt := range tests {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		if err := b.Serve(ctx, tt.info, tt.ep); err == nil {
			t.Errorf("%s: Serve accepted it", tt.name)
		}
		cancel()
	}
}
