package gateway

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/config"
	"stratuslab.dev/platform/daemon"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/resource"
	"stratuslab.dev/platform/session"
	"stratuslab.dev/platform/store"
	"stratuslab.dev/platform/store/embedded"
	"stratuslab.dev/platform/testkit"
	authnv1 "stratuslab.dev/proto/stratus/authn/v1"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/authn"
	"stratuslab.dev/services/cimi/internal/api"
	"stratuslab.dev/services/cimi/internal/auth"
	"stratuslab.dev/services/cimi/internal/jobs"
	"stratuslab.dev/services/cimi/internal/servicemsg"
	"stratuslab.dev/services/cimi/internal/webui"
)

// waitLimit bounds every wait in these tests; reaching it is a failure.
const waitLimit = 60 * time.Second

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// Users the authn stand-in knows, with their passwords.
var testUsers = map[string]struct {
	password string
	roles    []string
}{
	"admin": {"admin-secret", []string{cimi.RoleAdmin}},
	"alice": {"alice-secret", nil},
	"bob":   {"bob-secret", nil},
}

// serveAuthn answers svc.authn.login, logout, keys and revocations as
// authn.proto says, with real session tokens. It stands in for the User
// store of services/authn, which the gateway reaches only through these
// queries.
func serveAuthn(ctx context.Context, b *bus.Bus) error {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	keys := &authnv1.KeysResponse{Keys: []*authnv1.PublicKey{{Kid: "k1", Ed25519: pub, Created: timestamppb.Now()}}}
	return b.Serve(ctx, bus.ServiceInfo{Name: subject.Authn},
		bus.Handle("login", func(ctx context.Context, req *authnv1.LoginRequest) (proto.Message, error) {
			if req.GetUsername() == "mallory" {
				return nil, errs.New(errs.TooManyRequests, "Too many failed logins: wait a minute.")
			}
			u, ok := testUsers[req.GetUsername()]
			if req.GetMethod() != authnv1.Method_METHOD_PASSWORD || !ok || u.password != req.GetPassword() {
				return nil, errs.New(errs.Unauthorized, "The username or the password is wrong.")
			}
			now := time.Now()
			exp := now.Add(time.Hour)
			tok, err := session.Sign(priv, "k1", session.Claims{ID: uuid.NewString(), User: req.GetUsername(), Roles: u.roles,
				Method: "password", IssuedAt: now.UnixMilli(), Expires: exp.UnixMilli()})
			if err != nil {
				return nil, err
			}
			return &authnv1.LoginResponse{Token: tok, User: req.GetUsername(), Roles: u.roles,
				Expires: timestamppb.New(exp), Method: req.GetMethod()}, nil
		}),
		bus.Handle("logout", func(ctx context.Context, req *authnv1.LogoutRequest) (proto.Message, error) {
			c, err := session.Parse(req.GetToken(), session.KeySet{"k1": pub}, time.Now())
			if err != nil {
				return nil, errs.Wrap(errs.Unauthorized, err, "This session is not valid")
			}
			ev := &authnv1.SessionRevoked{TokenId: c.ID, Expires: timestamppb.New(c.Expiry())}
			return &authnv1.LogoutResponse{}, b.Publish(ctx, subject.EvtAuthnSessionRevoked, ev, "")
		}),
		bus.Handle("keys", func(ctx context.Context, req *authnv1.KeysRequest) (proto.Message, error) {
			return keys, nil
		}),
		bus.Handle("revocations", func(ctx context.Context, req *authnv1.RevocationsRequest) (proto.Message, error) {
			return &authnv1.RevocationsResponse{}, nil
		}),
	)
}

// startAuthn runs the real authn service on the test's NATS server and
// returns the administrator's first password.
func startAuthn(t testing.TB, srv *server.Server) string {
	t.Helper()
	dir := t.TempDir()
	boot := config.Bootstrap{DataDir: dir, AdminListen: "127.0.0.1:0", Store: config.StoreEmbedded,
		LogFormat: "text", LogLevel: "error", Instance: "test"}
	d, err := daemon.Open(context.Background(), authn.Name, boot, daemon.Options{Server: srv})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(context.Background()) })
	start(t, authn.New(d).Run)
	var pw []byte
	eventually(t, "admin password written", func() bool {
		pw, err = os.ReadFile(filepath.Join(dir, authn.PasswordFile))
		return err == nil && len(bytes.TrimSpace(pw)) > 0
	})
	return string(bytes.TrimSpace(pw))
}

// jobRecorder adapts the jobs package to the gateway core, as cimi.go does.
type jobRecorder struct{ j *jobs.Jobs }

func (r jobRecorder) Start(ctx context.Context, who cimi.Identity, s api.JobSpec) (string, error) {
	return r.j.Start(ctx, who, jobs.Spec{Action: s.Action, Target: s.Target, CommandID: s.CommandID, CommandSubject: s.CommandSubject})
}

func (r jobRecorder) Fail(ctx context.Context, id string, err error) error {
	return r.j.Fail(ctx, id, err)
}

// env is one test's cloud: NATS, the cimi store, the real cimi resource
// owner and jobs, the authn stand-in, the real Auth and the gateway.
type env struct {
	t   testing.TB
	url string
	res *api.Service
	bus *bus.Bus
	nc  *nats.Conn
	st  store.Store // cimi's own documents
	// tokens of the logged-in test users, and their passwords
	tokens, passwords map[string]string
	// realAuthn is set when the real authn service runs: test users other
	// than admin are created on first use.
	realAuthn bool
}

// envOptions change the cloud of a test.
type envOptions struct {
	noOwner bool // the cimi resource owner is not running
	// realAuthn runs the real authn service (bcrypt, User records) instead
	// of the stand-in, which answers at once and throttles "mallory".
	realAuthn bool
	writeWait time.Duration // 0: the default
	// widgets adds a Widget kind, owned by a "widgets" service, that any
	// user may create and that has the action "polish".
	widgets bool
}

// widgetKind is the gateway's entry for the test kind Widget.
var widgetKind = api.Kind{Name: "Widget", Attr: "widgets", Service: "widgets", AddRole: cimi.RoleUser, Actions: []string{"polish"}}

// serveWidgets runs the owner of Widget resources.
func serveWidgets(t testing.TB, b *bus.Bus, coll store.Collection) {
	p, err := resource.New(b, "widgets", quiet(), resource.Kind{
		Name: "Widget", Collection: coll,
		CanCreate: func(who cimi.Identity) bool { return who.User != "" },
		Actions: map[string]func(context.Context, cimi.Identity, map[string]any, map[string]any) (map[string]any, error){
			"polish": func(_ context.Context, _ cimi.Identity, current, _ map[string]any) (map[string]any, error) {
				current["polished"] = true
				return current, nil
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	start(t, func(ctx context.Context) error {
		return b.Serve(ctx, bus.ServiceInfo{Name: "widgets"}, p.Endpoints()...)
	})
	start(t, func(ctx context.Context) error {
		return b.Consume(ctx, bus.ConsumerSpec{Durable: "widgets", Subjects: p.Subjects()}, p.Handle)
	})
}

func newEnv(t testing.TB, o envOptions) *env {
	t.Helper()
	ctx := context.Background()
	srv := testkit.NATS(t, "")
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if err := bus.EnsureStreams(ctx, js, bus.StreamOptions{}); err != nil {
		t.Fatal(err)
	}
	// authn first: opening its dependencies updates the streams, which
	// nats-server does not do safely while consumers are being created
	// (a data race inside the server, seen with -race).
	adminPassword := testUsers["admin"].password
	if !o.realAuthn {
		authnBus := bus.New(nc, js, bus.Options{Service: subject.Authn, Logger: quiet()})
		start(t, func(ctx context.Context) error { return serveAuthn(ctx, authnBus) })
	} else {
		adminPassword = startAuthn(t, srv)
	}
	b := bus.New(nc, js, bus.Options{Service: subject.Cimi, Logger: quiet()})
	st, err := embedded.Open(ctx, js, subject.Cimi)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	coll := func(kind string) store.Collection {
		c, err := st.Collection(ctx, kind)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	jb := jobs.New(coll(jobs.KindJob), coll(jobs.KindEvent), b, quiet())
	if !o.noOwner {
		kinds := append(servicemsg.Kinds(coll(servicemsg.KindServiceMessage), coll(servicemsg.KindServiceConfiguration)), jb.Kinds()...)
		p, err := resource.New(b, subject.Cimi, quiet(), kinds...)
		if err != nil {
			t.Fatal(err)
		}
		start(t, func(ctx context.Context) error {
			return b.Serve(ctx, bus.ServiceInfo{Name: subject.Cimi}, p.Endpoints()...)
		})
		start(t, func(ctx context.Context) error {
			return b.Consume(ctx, bus.ConsumerSpec{Durable: subject.Cimi, Subjects: p.Subjects()}, p.Handle)
		})
		start(t, jb.Run)
	}
	au := auth.New(b, quiet(), auth.Options{})
	start(t, au.Run)
	eventually(t, "session keys loaded", func() bool { return au.Ready() == nil })

	kinds := api.DefaultKinds()
	if o.widgets {
		kinds = append(kinds, widgetKind)
		serveWidgets(t, bus.New(nc, js, bus.Options{Service: "widgets", Logger: quiet()}), coll("Widget"))
	}
	res, err := api.New(api.Options{Bus: b, Conn: nc, Jobs: jobRecorder{jb}, Log: quiet(), WriteWait: o.writeWait, Kinds: kinds})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = res.Close() })
	created := time.Date(2026, 11, 21, 10, 0, 0, 0, time.UTC)
	gw := New(Options{Log: quiet(), Created: created, Resources: res, Sessions: au, WebUI: webui.New(res, au, quiet()).Handler(), Bus: b})
	hs := httptest.NewServer(gw.Handler())
	t.Cleanup(hs.Close)
	e := &env{t: t, url: hs.URL, res: res, bus: b, nc: nc, st: st, tokens: map[string]string{}, passwords: map[string]string{"admin": adminPassword}}
	e.realAuthn = o.realAuthn
	if !o.realAuthn {
		for name, u := range testUsers {
			e.passwords[name] = u.password
		}
	}
	if !o.noOwner {
		// The owner's endpoints answer once Serve has registered them.
		eventually(t, "owner answering", func() bool {
			_, err := res.Query(ctx, cimi.Identity{}, "ServiceMessage", nil)
			return err == nil
		})
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
		if err := <-done; err != nil && ctx.Err() == nil {
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

// response is an answer of the gateway.
type response struct {
	status int
	header http.Header
	body   map[string]any
	raw    []byte
}

// req is one request of a test.
type req struct {
	method, path string
	as           string // a test user, logged in on first use; "" anonymous
	body         string
	contentType  string // "" means application/json when there is a body
	header       map[string]string
}

func (e *env) do(r req) response {
	e.t.Helper()
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	hr, err := http.NewRequest(r.method, e.url+r.path, body)
	if err != nil {
		e.t.Fatal(err)
	}
	switch {
	case r.contentType != "":
		hr.Header.Set("Content-Type", r.contentType)
	case r.body != "":
		hr.Header.Set("Content-Type", "application/json")
	}
	for k, v := range r.header {
		hr.Header.Set(k, v)
	}
	if r.as != "" {
		hr.Header.Set("Authorization", "Bearer "+e.token(r.as))
	}
	return send(e.t, hr)
}

func send(t testing.TB, hr *http.Request) response {
	t.Helper()
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(hr)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	out := response{status: resp.StatusCode, header: resp.Header, raw: raw}
	if len(bytes.TrimSpace(raw)) > 0 {
		_ = json.Unmarshal(raw, &out.body)
	}
	if resp.Header.Get("CIMI-Specification-Version") != SpecificationVersion {
		t.Errorf("%s %s: no CIMI-Specification-Version header", hr.Method, hr.URL.Path)
	}
	return out
}

// token logs user in once through POST /cimi/login.
func (e *env) token(user string) string {
	e.t.Helper()
	if tok, ok := e.tokens[user]; ok {
		return tok
	}
	pw, ok := e.passwords[user]
	if !ok && e.realAuthn {
		e.addUser(user)
		pw = testUsers[user].password
	}
	b, _ := json.Marshal(map[string]string{"username": user, "password": pw})
	// A login is a bcrypt check in authn, answered within the gateway's
	// read timeout; on a loaded machine (race detector, QEMU guests of
	// other tests) it may not be, which is a 503 to retry, not a failure.
	r := e.do(req{method: "POST", path: "/cimi/login", body: string(b)})
	for deadline := time.Now().Add(waitLimit); r.status == 503 && time.Now().Before(deadline); {
		time.Sleep(200 * time.Millisecond)
		r = e.do(req{method: "POST", path: "/cimi/login", body: string(b)})
	}
	tok, _ := r.body["token"].(string)
	if r.status != 200 || tok == "" {
		e.t.Fatalf("login %s: %d %s", user, r.status, r.raw)
	}
	e.tokens[user] = tok
	return tok
}

// addUser creates a test user as an administrator would, and waits until
// authn has it.
func (e *env) addUser(name string) {
	e.t.Helper()
	body, _ := json.Marshal(map[string]any{"username": name, "password": testUsers[name].password, "enabled": true,
		"first-name": name, "last-name": "Test"})
	r := e.do(req{method: "POST", path: "/cimi/User", as: "admin", body: string(body)})
	if r.status != 201 && r.status != 202 {
		e.t.Fatalf("create User/%s: %d %s", name, r.status, r.raw)
	}
	eventually(e.t, "User/"+name+" created", func() bool {
		return e.do(req{method: "GET", path: "/cimi/User/" + name, as: "admin"}).status == 200
	})
	e.passwords[name] = testUsers[name].password
}

// want checks the status of an answer.
func (r response) want(t testing.TB, what string, status int) response {
	t.Helper()
	if r.status != status {
		t.Fatalf("%s: status %d, want %d: %s", what, r.status, status, r.raw)
	}
	return r
}

// wantError checks an error answer: status and code of the CIMI body.
func (r response) wantError(t testing.TB, what string, status int, code errs.Code) response {
	t.Helper()
	r.want(t, what, status)
	if r.body["code"] != string(code) || r.body["status"] != float64(status) || r.body["message"] == "" {
		t.Fatalf("%s: error body %s, want code %s", what, r.raw, code)
	}
	return r
}
