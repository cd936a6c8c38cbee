package config_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"stratuslab.dev/platform/config"
	"stratuslab.dev/platform/store"
	"stratuslab.dev/platform/store/embedded"
	"stratuslab.dev/platform/testkit"
)

// settings is a service's live configuration in these tests.
type settings struct {
	MaxVolumes int            `json:"maxVolumes"`
	Backend    string         `json:"backend"`
	Limits     map[string]int `json:"limits"`
}

func (s settings) Validate() error {
	if s.MaxVolumes < 1 {
		return errors.New("maxVolumes must be at least 1")
	}
	return nil
}

func defaults() settings {
	return settings{MaxVolumes: 10, Backend: "qcow2", Limits: map[string]int{"cpu": 4}}
}

// syncBuffer is a log destination safe for the Run goroutine and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fixture is a live-settings instance on a real embedded store.
type fixture struct {
	coll    store.Collection
	live    *config.Live[settings]
	applied chan settings
	logs    *syncBuffer
	id      string
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	_, js := testkit.JetStream(t)
	st, err := embedded.Open(ctx, js, "cimi")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	coll, err := st.Collection(ctx, config.ServiceConfigurationKind)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{coll: coll, applied: make(chan settings, 100), logs: &syncBuffer{}, id: config.ServiceConfigurationID("pdisk", "")}
	f.live, err = config.NewLive(coll, f.id, defaults(),
		func(s settings) { f.applied <- s },
		slog.New(slog.NewJSONHandler(f.logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// next returns the next settings applied, failing after a generous wait.
func (f *fixture) next(t *testing.T) settings {
	t.Helper()
	select {
	case s := <-f.applied:
		return s
	case <-time.After(10 * time.Second):
		t.Fatal("no settings applied")
	}
	return settings{}
}

// waitLog waits until the log holds text, failing after a generous wait.
func (f *fixture) waitLog(t *testing.T, text string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(f.logs.String(), text) {
		if time.Now().After(deadline) {
			t.Fatalf("log lacks %q:\n%s", text, f.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (f *fixture) put(t *testing.T, body string) {
	t.Helper()
	ctx := context.Background()
	if _, err := f.coll.Update(ctx, f.id, func(store.Document) (json.RawMessage, error) { return json.RawMessage(body), nil }); err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			t.Fatal(err)
		}
		if _, err := f.coll.Create(ctx, f.id, json.RawMessage(body)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestLiveLoad(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		doc     string // "" for no document
		want    settings
		wantLog string
	}{
		{name: "no document", want: defaults()},
		{name: "overlay on defaults", doc: `{"resourceURI":"http://stratuslab.eu/cimi/1/ServiceConfiguration","maxVolumes":3,"limits":{"ram":8}}`,
			want: settings{MaxVolumes: 3, Backend: "qcow2", Limits: map[string]int{"cpu": 4, "ram": 8}}},
		{name: "invalid value", doc: `{"maxVolumes":0}`, want: defaults(), wantLog: "maxVolumes must be at least 1"},
		{name: "wrong type", doc: `{"maxVolumes":"many"}`, want: defaults(), wantLog: "cannot unmarshal string"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := newFixture(t)
			if tt.doc != "" {
				f.put(t, tt.doc)
			}
			if err := f.live.Load(context.Background()); err != nil {
				t.Fatal(err)
			}
			if got := f.next(t); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("applied %+v, want %+v", got, tt.want)
			}
			if got := f.live.Current(); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Current %+v, want %+v", got, tt.want)
			}
			if !strings.Contains(f.logs.String(), tt.wantLog) {
				t.Errorf("log lacks %q:\n%s", tt.wantLog, f.logs.String())
			}
			// Loading the same revision again applies nothing.
			if err := f.live.Load(context.Background()); err != nil {
				t.Fatal(err)
			}
			select {
			case s := <-f.applied:
				t.Errorf("second Load applied %+v", s)
			default:
			}
			if d := defaults(); d.Limits["ram"] != 0 {
				t.Errorf("defaults were modified")
			}
		})
	}
}

func TestLiveRun(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.put(t, `{"maxVolumes":5}`)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.live.Run(ctx) }()

	want := defaults()
	want.MaxVolumes = 5
	if got := f.next(t); !reflect.DeepEqual(got, want) {
		t.Fatalf("initial %+v, want %+v", got, want)
	}
	rev := f.live.Revision()
	if rev == 0 {
		t.Error("Revision is 0 with a document in effect")
	}

	// A change is applied.
	f.put(t, `{"maxVolumes":7,"backend":"lvm"}`)
	want = settings{MaxVolumes: 7, Backend: "lvm", Limits: map[string]int{"cpu": 4}}
	if got := f.next(t); !reflect.DeepEqual(got, want) {
		t.Fatalf("after change %+v, want %+v", got, want)
	}
	if f.live.Current().Backend != "lvm" || f.live.Revision() == rev {
		t.Errorf("Current %+v revision %d after change", f.live.Current(), f.live.Revision())
	}

	// An invalid change is logged and ignored.
	f.put(t, `{"maxVolumes":-1}`)
	f.waitLog(t, "maxVolumes must be at least 1")
	select {
	case s := <-f.applied:
		t.Errorf("invalid settings applied: %+v", s)
	default:
	}
	if got := f.live.Current(); !reflect.DeepEqual(got, want) {
		t.Errorf("after invalid change Current = %+v, want %+v", got, want)
	}

	// A valid change after an invalid one is applied.
	f.put(t, `{"maxVolumes":8}`)
	if got := f.next(t); got.MaxVolumes != 8 || got.Backend != "qcow2" {
		t.Fatalf("after fix %+v", got)
	}

	// Deleting the document brings the defaults back.
	doc, err := f.coll.Get(context.Background(), f.id)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.coll.Delete(context.Background(), f.id, doc.Revision); err != nil {
		t.Fatal(err)
	}
	if got := f.next(t); !reflect.DeepEqual(got, defaults()) {
		t.Fatalf("after delete %+v, want defaults", got)
	}
	if f.live.Revision() != 0 {
		t.Errorf("Revision after delete = %d, want 0", f.live.Revision())
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run after cancel = %v, want nil", err)
	}
}

func TestNewLiveRejectsBadDefaults(t *testing.T) {
	t.Parallel()
	_, err := config.NewLive[settings](nil, "ServiceConfiguration/x", settings{}, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "defaults are invalid: maxVolumes must be at least 1") {
		t.Errorf("NewLive with invalid defaults: %v", err)
	}
}

func TestServiceConfigurationID(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ service, instance, want string }{
		{"pdisk", "", "ServiceConfiguration/pdisk"},
		{"vmctl", "host7", "ServiceConfiguration/vmctl-host7"},
	} {
		if got := config.ServiceConfigurationID(tt.service, tt.instance); got != tt.want {
			t.Errorf("ServiceConfigurationID(%q, %q) = %q, want %q", tt.service, tt.instance, got, tt.want)
		}
	}
}

// cutWatch is the real collection whose first watch the test can end, as a
// lost connection would.
type cutWatch struct {
	store.Collection
	cut     chan struct{}
	mu      sync.Mutex
	watches int
}

func (c *cutWatch) Watch(ctx context.Context) (<-chan store.Change, error) {
	c.mu.Lock()
	c.watches++
	first := c.watches == 1
	c.mu.Unlock()
	if !first {
		return c.Collection.Watch(ctx)
	}
	wctx, stop := context.WithCancel(ctx)
	in, err := c.Collection.Watch(wctx)
	if err != nil {
		stop()
		return nil, err
	}
	out := make(chan store.Change)
	go func() {
		defer close(out)
		defer stop()
		for {
			select {
			case <-c.cut:
				return
			case ch, ok := <-in:
				if !ok {
					return
				}
				select {
				case out <- ch:
				case <-c.cut:
					return
				}
			}
		}
	}()
	return out, nil
}

func TestLiveRewatch(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	cw := &cutWatch{Collection: f.coll, cut: make(chan struct{})}
	live, err := config.NewLive(cw, f.id, defaults(), func(s settings) { f.applied <- s }, slog.New(slog.NewJSONHandler(f.logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- live.Run(ctx) }()
	if got := f.next(t); !reflect.DeepEqual(got, defaults()) {
		t.Fatalf("initial %+v", got)
	}

	close(cw.cut)
	f.waitLog(t, "watch of service configuration ended")
	// Written while no watch may be open: the reload after re-watching, or
	// the new watch, must bring it in.
	f.put(t, `{"maxVolumes":2}`)
	if got := f.next(t); got.MaxVolumes != 2 {
		t.Fatalf("after re-watch %+v", got)
	}
	f.put(t, `{"maxVolumes":3}`)
	if got := f.next(t); got.MaxVolumes != 3 {
		t.Fatalf("change on the new watch %+v", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run = %v", err)
	}
}
