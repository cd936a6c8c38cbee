package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/session"
	"stratuslab.dev/platform/testkit"
	authnv1 "stratuslab.dev/proto/stratus/authn/v1"
	"stratuslab.dev/proto/subject"
)

// waitLimit bounds every wait in these tests; reaching it is a failure.
const waitLimit = 15 * time.Second

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// authn answers svc.authn.* exactly as the contract in authn.proto says,
// with real session tokens, and publishes authn's revocation events. It
// stands in for services/authn, which another part of the project builds.
type authn struct {
	t   testing.TB
	bus *bus.Bus
	ttl time.Duration

	mu    sync.Mutex
	kid   string
	priv  ed25519.PrivateKey
	keys  []*authnv1.PublicKey
	revs  *authnv1.RevocationsResponse
	last  *authnv1.LoginRequest
	users map[string]string // username → password
	dns   map[string]string // DN → username
	// silentLogout makes logout skip its event, to show that the gateway
	// asking forgets the token without waiting for it.
	silentLogout bool

	logins, keyFetches, logouts atomic.Int64
}

// Users known to the fake authn.
const (
	alicePassword = "correct horse"
	bobDN         = "CN=Bob,O=Grid,C=FR"
	// throttled is refused with too_many_requests, as authn does while
	// slowing down repeated failures.
	throttled = "mallory"
)

func newAuthn(t testing.TB, b *bus.Bus) *authn {
	f := &authn{t: t, bus: b, ttl: time.Hour, revs: &authnv1.RevocationsResponse{},
		users: map[string]string{"alice": alicePassword},
		dns:   map[string]string{bobDN: "bob"},
	}
	f.rotate(context.Background(), false, false)
	return f
}

// rotate makes a new signing key; with keep the old keys stay in the set,
// with publish a keys.rotated event announces the new set.
func (f *authn) rotate(ctx context.Context, keep, publish bool) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		f.t.Fatal(err)
	}
	f.mu.Lock()
	f.kid = "k" + uuid.NewString()[:8]
	f.priv = priv
	if !keep {
		f.keys = nil
	}
	f.keys = append(f.keys, &authnv1.PublicKey{Kid: f.kid, Ed25519: pub, Created: timestamppb.Now()})
	set := &authnv1.KeysResponse{Keys: f.keys}
	f.mu.Unlock()
	if publish {
		if err := f.bus.Publish(ctx, subject.EvtAuthnKeysRotated, set, ""); err != nil {
			f.t.Fatal(err)
		}
	}
}

// token issues a token for user as a login would, issued at iat.
func (f *authn) token(user string, roles []string, method string, iat time.Time, ttl time.Duration) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.tokenLocked(user, roles, method, iat, ttl)
}

func (f *authn) tokenLocked(user string, roles []string, method string, iat time.Time, ttl time.Duration) string {
	tok, err := session.Sign(f.priv, f.kid, session.Claims{ID: uuid.NewString(), User: user, Roles: roles,
		Method: method, IssuedAt: iat.UnixMilli(), Expires: iat.Add(ttl).UnixMilli()})
	if err != nil {
		f.t.Fatal(err)
	}
	return tok
}

// setDN makes the certificate subject dn log in as user.
func (f *authn) setDN(dn, user string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dns[dn] = user
}

func (f *authn) lastLogin() *authnv1.LoginRequest {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.last
}

func (f *authn) serve(ctx context.Context) error {
	refused := errs.New(errs.Unauthorized, "The username or the password is wrong.")
	return f.bus.Serve(ctx, bus.ServiceInfo{Name: subject.Authn},
		bus.Handle("login", func(ctx context.Context, req *authnv1.LoginRequest) (proto.Message, error) {
			f.logins.Add(1)
			var user, method string
			var roles []string
			f.mu.Lock()
			defer f.mu.Unlock()
			f.last = proto.Clone(req).(*authnv1.LoginRequest)
			switch req.GetMethod() {
			case authnv1.Method_METHOD_PASSWORD:
				if req.GetUsername() == throttled {
					return nil, errs.New(errs.TooManyRequests, "Too many failed logins: wait a minute.")
				}
				if pw, ok := f.users[req.GetUsername()]; !ok || pw != req.GetPassword() {
					return nil, refused
				}
				user, method = req.GetUsername(), "password"
			case authnv1.Method_METHOD_CERTIFICATE:
				u, ok := f.dns[req.GetDn()]
				if !ok {
					return nil, errs.New(errs.Unauthorized, "No user has this certificate.")
				}
				user, method = u, "certificate"
			case authnv1.Method_METHOD_VOMS:
				user, method, roles = req.GetDn(), "voms", req.GetFqans()
			default:
				return nil, refused
			}
			now := time.Now()
			tok := f.tokenLocked(user, roles, method, now, f.ttl)
			return &authnv1.LoginResponse{Token: tok, User: user, Roles: roles,
				Expires: timestamppb.New(now.Add(f.ttl)), Method: req.GetMethod()}, nil
		}),
		bus.Handle("logout", func(ctx context.Context, req *authnv1.LogoutRequest) (proto.Message, error) {
			f.logouts.Add(1)
			f.mu.Lock()
			ks := session.KeySet{}
			for _, k := range f.keys {
				ks[k.GetKid()] = k.GetEd25519()
			}
			f.mu.Unlock()
			c, err := session.Parse(req.GetToken(), ks, time.Now())
			if err != nil {
				return nil, errs.Wrap(errs.Unauthorized, err, "This session is not valid")
			}
			f.mu.Lock()
			silent := f.silentLogout
			f.mu.Unlock()
			if silent {
				return &authnv1.LogoutResponse{}, nil
			}
			ev := &authnv1.SessionRevoked{TokenId: c.ID, Expires: timestamppb.New(c.Expiry())}
			return &authnv1.LogoutResponse{}, f.bus.Publish(ctx, subject.EvtAuthnSessionRevoked, ev, "")
		}),
		bus.Handle("keys", func(ctx context.Context, req *authnv1.KeysRequest) (proto.Message, error) {
			f.keyFetches.Add(1)
			f.mu.Lock()
			defer f.mu.Unlock()
			return &authnv1.KeysResponse{Keys: f.keys}, nil
		}),
		bus.Handle("revocations", func(ctx context.Context, req *authnv1.RevocationsRequest) (proto.Message, error) {
			f.mu.Lock()
			defer f.mu.Unlock()
			return f.revs, nil
		}),
	)
}

// env is one test's NATS, fake authn and Auth.
type env struct {
	t     testing.TB
	authn *authn
	auth  *Auth
}

// newEnv starts NATS, the fake authn (unless noAuthn) and an Auth with
// options o, and waits until the Auth has loaded the keys. revs are the
// revocations in force when the Auth starts.
func newEnv(t testing.TB, o Options, noAuthn bool, revs *authnv1.RevocationsResponse) *env {
	t.Helper()
	nc, js := testkit.JetStream(t)
	if err := bus.EnsureStreams(context.Background(), js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t}
	e.authn = newAuthn(t, bus.New(nc, js, bus.Options{Service: subject.Authn, Logger: quiet()}))
	if revs != nil {
		e.authn.revs = revs
	}
	if !noAuthn {
		start(t, e.authn.serve)
		deadline := time.Now().Add(waitLimit)
		for e.authn.bus.Request(context.Background(), subject.SvcAuthnKeys, nil, &authnv1.KeysRequest{}, nil) != nil {
			if time.Now().After(deadline) {
				t.Fatal("the fake authn does not answer")
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	e.auth = New(bus.New(nc, js, bus.Options{Service: subject.Cimi, Logger: quiet()}), quiet(), o)
	start(t, e.auth.Run)
	if !noAuthn {
		eventually(t, "keys loaded", func() bool { return e.auth.Ready() == nil })
	}
	return e
}

// start runs fn until the test ends, and fails the test if fn fails.
func start(t testing.TB, fn func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("stopped with %v", err)
		}
	})
}

// eventually waits for cond, failing the test after waitLimit.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after %s", what, waitLimit)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// request returns a GET from addr with the given headers.
func request(addr string, hdr ...string) *http.Request {
	r := httptest.NewRequest(http.MethodGet, "/api/cloudEntryPoint", nil)
	r.RemoteAddr = addr
	for i := 0; i+1 < len(hdr); i += 2 {
		r.Header.Add(hdr[i], hdr[i+1])
	}
	return r
}

// wantCode checks that err has the code want ("" for no error).
func wantCode(t testing.TB, err error, want errs.Code) {
	t.Helper()
	if got := errs.CodeOf(err); got != want {
		t.Fatalf("error %v has code %q, want %q", err, got, want)
	}
}

// forged returns a token signed by a key authn never had, under kid.
func forged(t testing.TB, kid string) string {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok, err := session.Sign(priv, kid, session.Claims{ID: "x", User: "root", Roles: []string{"::ADMIN"},
		IssuedAt: now.UnixMilli(), Expires: now.Add(time.Hour).UnixMilli()})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
