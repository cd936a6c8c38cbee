// Package testkit starts the real dependencies tests run against: an
// in-process NATS server with JetStream in a temporary directory.
package testkit

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// NATS starts an in-process NATS server with JetStream on a random loopback
// port, storing under dir (a new temporary directory when empty). The server
// is shut down when the test ends.
func NATS(t testing.TB, dir string) *server.Server {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	opts := &server.Options{
		Host:      "127.0.0.1",
		Port:      server.RANDOM_PORT,
		JetStream: true,
		StoreDir:  dir,
		NoSigs:    true,
		NoLog:     true,
	}
	s, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("testkit: new NATS server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		t.Fatal("testkit: NATS server not ready after 10s")
	}
	t.Cleanup(s.Shutdown)
	return s
}

// JetStream starts a server as NATS does and returns a connection to it and
// its JetStream context; the connection is closed when the test ends.
func JetStream(t testing.TB) (*nats.Conn, jetstream.JetStream) {
	t.Helper()
	s := NATS(t, "")
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		t.Fatalf("testkit: connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("testkit: jetstream: %v", err)
	}
	return nc, js
}
