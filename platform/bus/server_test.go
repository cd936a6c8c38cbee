package bus

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	commonv1 "stratuslab.dev/proto/stratus/common/v1"
)

func TestStartServerAndConnect(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	s, err := StartServer(ctx, ServerOptions{DataDir: dir, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)

	for _, tt := range []struct {
		name string
		opts ConnOptions
	}{
		{"url", ConnOptions{URLs: []string{s.ClientURL()}, Name: "test", Logger: quiet()}},
		{"in process", ConnOptions{InProcess: s, Name: "test", Logger: quiet()}},
	} {
		nc, err := Connect(ctx, tt.opts)
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		js, err := jetstream.New(nc)
		if err != nil {
			t.Fatal(err)
		}
		if err := EnsureStreams(ctx, js, StreamOptions{}); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		b := New(nc, js, Options{Service: "pdisk", Logger: quiet()})
		if err := b.Send(ctx, "cmd.pdisk.volume.create", &commonv1.Meta{}, &commonv1.ResourceRef{}); err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		nc.Close()
	}
	// JetStream files live under DataDir/nats.
	if _, err := os.Stat(filepath.Join(dir, "nats", "jetstream")); err != nil {
		t.Errorf("no JetStream store under the data directory: %v", err)
	}

	// A restart on the same directory finds the stored commands.
	s.Shutdown()
	s.WaitForShutdown()
	s2, err := StartServer(ctx, ServerOptions{DataDir: dir, NoListen: true, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s2.Shutdown)
	nc, err := Connect(ctx, ConnOptions{InProcess: s2, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	st, err := js.Stream(ctx, CommandsStream)
	if err != nil {
		t.Fatal(err)
	}
	if n := st.CachedInfo().State.Msgs; n != 2 {
		t.Errorf("%d commands after restart, want 2", n)
	}
}

func TestStartServerNeedsDataDir(t *testing.T) {
	t.Parallel()
	if _, err := StartServer(context.Background(), ServerOptions{}); err == nil {
		t.Fatal("started without a data directory")
	}
}

func TestConnectFailures(t *testing.T) {
	t.Parallel()
	// Nothing listens: Connect retries until its context ends.
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if _, err := Connect(ctx, ConnOptions{URLs: []string{"nats://127.0.0.1:1"}, Logger: quiet()}); err == nil {
		t.Error("connected to a closed port")
	}
	// An unreadable credentials file fails at once, whatever the context.
	_, err := Connect(context.Background(), ConnOptions{URLs: []string{"nats://127.0.0.1:1"}, CredsFile: filepath.Join(t.TempDir(), "missing.creds"), Logger: quiet()})
	if err == nil {
		t.Error("connected with a missing credentials file")
	}
}

func TestRedact(t *testing.T) {
	t.Parallel()
	got := redact("nats://alice:s3cret@a:4222,nats://tok3n@b:4222,nats://c:4222")
	if want := "nats://redacted@a:4222,nats://redacted@b:4222,nats://c:4222"; got != want {
		t.Errorf("redact = %q, want %q", got, want)
	}
}
