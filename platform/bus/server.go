package bus

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ServerOptions configure the embedded NATS server.
type ServerOptions struct {
	// DataDir is the service data directory; JetStream keeps its files
	// under DataDir/nats. Required.
	DataDir string
	// Host is the address clients connect to; 127.0.0.1 when empty.
	Host string
	// Port is the client port. 0 picks a free random port (read it back
	// with the server's ClientURL); pass 4222 for the standard NATS port.
	Port int
	// NoListen serves in-process connections only (see
	// ConnOptions.InProcess): no network port is opened.
	NoListen bool
	// ServerName names the server in JetStream; "stratuslab" when empty.
	ServerName string
	// MaxStore bounds the disk JetStream may use, in bytes; 0 lets the
	// server pick (most of the free space).
	MaxStore int64
	// Logger receives the server's warnings and errors (its notices at
	// debug level); slog.Default() when nil.
	Logger *slog.Logger
}

// defaultStartTimeout bounds StartServer when ctx has no deadline.
const defaultStartTimeout = 30 * time.Second

// StartServer starts a NATS server with JetStream in this process, storing
// on disk under opts.DataDir, and returns once it accepts connections. It
// installs no signal handlers and writes its log through slog. ctx bounds
// the start only; stop the server with Shutdown (and WaitForShutdown).
func StartServer(ctx context.Context, opts ServerOptions) (*server.Server, error) {
	if opts.DataDir == "" {
		return nil, errors.New("bus: start NATS server: a data directory is required")
	}
	so := &server.Options{
		ServerName: opts.ServerName,
		Host:       opts.Host,
		Port:       opts.Port,
		DontListen: opts.NoListen,
		JetStream:  true,
		StoreDir:   filepath.Join(opts.DataDir, "nats"),
		NoSigs:     true,
		NoLog:      true,
	}
	if so.ServerName == "" {
		so.ServerName = "stratuslab"
	}
	if so.Host == "" {
		so.Host = "127.0.0.1"
	}
	if so.Port == 0 {
		so.Port = server.RANDOM_PORT
	}
	if opts.MaxStore > 0 {
		so.JetStreamMaxStore = opts.MaxStore
	}
	s, err := server.NewServer(so)
	if err != nil {
		return nil, fmt.Errorf("bus: start NATS server: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	s.SetLoggerV2(serverLog{log: log.With("component", "nats-server")}, false, false, false)
	go s.Start()

	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(defaultStartTimeout)
	}
	for !s.ReadyForConnections(100 * time.Millisecond) {
		if ctx.Err() != nil || time.Now().After(deadline) {
			s.Shutdown()
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("bus: start NATS server: %w", err)
			}
			return nil, errors.New("bus: start NATS server: not ready in time; see its log for the reason")
		}
	}
	return s, nil
}

// serverLog writes the NATS server's log to slog: warnings and errors as
// such, notices at debug level so that a default handler shows only what
// needs attention.
type serverLog struct{ log *slog.Logger }

func (l serverLog) Noticef(format string, v ...any) { l.emit(slog.LevelDebug, format, v) }
func (l serverLog) Warnf(format string, v ...any)   { l.emit(slog.LevelWarn, format, v) }
func (l serverLog) Fatalf(format string, v ...any)  { l.emit(slog.LevelError, format, v) }
func (l serverLog) Errorf(format string, v ...any)  { l.emit(slog.LevelError, format, v) }
func (l serverLog) Debugf(format string, v ...any)  { l.emit(slog.LevelDebug, format, v) }
func (l serverLog) Tracef(format string, v ...any)  { l.emit(slog.LevelDebug, format, v) }

func (l serverLog) emit(level slog.Level, format string, v []any) {
	ctx := context.Background()
	if l.log.Enabled(ctx, level) {
		l.log.Log(ctx, level, fmt.Sprintf(format, v...))
	}
}
