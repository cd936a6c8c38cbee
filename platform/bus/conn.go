package bus

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	neturl "net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// ConnOptions say how to reach NATS: a cluster by URL with credentials, or
// an embedded server in process.
type ConnOptions struct {
	// URLs of the servers, e.g. nats://nats-1:4222; nats://127.0.0.1:4222
	// when empty and InProcess is nil.
	URLs []string
	// InProcess connects to an embedded server without the network; URLs
	// are then ignored.
	InProcess *server.Server
	// Name identifies the connection in the server's monitoring, e.g.
	// "pdisk".
	Name string
	// CredsFile is a NATS credentials file (user JWT and nkey seed).
	CredsFile string
	// NKeyFile is a file holding an nkey seed.
	NKeyFile string
	// User and Password authenticate with a user name and password.
	User, Password string
	// Token authenticates with a token.
	Token string
	// CAFile, when set, requires TLS and trusts the certificate
	// authorities it holds.
	CAFile string
	// CertFile and KeyFile hold a client certificate for TLS.
	CertFile, KeyFile string
	// ConnectTimeout bounds each connection attempt; 5 seconds when zero.
	ConnectTimeout time.Duration
	// Logger receives disconnections, reconnections and asynchronous
	// errors; slog.Default() when nil.
	Logger *slog.Logger
}

// Connect connects to NATS. It retries a failed first connection, backing
// off up to 5 seconds, until ctx ends (authentication refusals fail at
// once); once connected, the connection reconnects forever.
func Connect(ctx context.Context, opts ConnOptions) (*nats.Conn, error) {
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	log = log.With("component", "nats")
	timeout := opts.ConnectTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	no := []nats.Option{
		nats.Name(opts.Name),
		nats.Timeout(timeout),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("disconnected from NATS; reconnecting", "error", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) {
			log.Info("reconnected to NATS", "server", c.ConnectedUrlRedacted())
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			if sub != nil {
				log.Warn("NATS subscription error", "subject", sub.Subject, "error", err)
				return
			}
			log.Warn("NATS error", "error", err)
		}),
	}
	// Files are checked now: nats reads them only once a server answers,
	// and a missing file must not look like a server not up yet.
	for _, f := range []string{opts.CredsFile, opts.CAFile, opts.CertFile, opts.KeyFile} {
		if f == "" {
			continue
		}
		if _, err := os.Stat(f); err != nil {
			return nil, fmt.Errorf("bus: connect: %w", err)
		}
	}
	if opts.InProcess != nil {
		no = append(no, nats.InProcessServer(opts.InProcess))
	}
	if opts.CredsFile != "" {
		no = append(no, nats.UserCredentials(opts.CredsFile))
	}
	if opts.NKeyFile != "" {
		o, err := nats.NkeyOptionFromSeed(opts.NKeyFile)
		if err != nil {
			return nil, fmt.Errorf("bus: connect: nkey seed %s: %w", opts.NKeyFile, err)
		}
		no = append(no, o)
	}
	if opts.User != "" {
		no = append(no, nats.UserInfo(opts.User, opts.Password))
	}
	if opts.Token != "" {
		no = append(no, nats.Token(opts.Token))
	}
	if opts.CAFile != "" {
		no = append(no, nats.RootCAs(opts.CAFile))
	}
	if opts.CertFile != "" || opts.KeyFile != "" {
		no = append(no, nats.ClientCert(opts.CertFile, opts.KeyFile))
	}
	url := strings.Join(opts.URLs, ",")
	if url == "" {
		url = nats.DefaultURL
	}

	delay := time.Duration(0)
	for {
		nc, err := nats.Connect(url, no...)
		if err == nil {
			return nc, nil
		}
		if !retryable(err) {
			return nil, fmt.Errorf("bus: connect to %s: %w", redact(url), err)
		}
		delay = min(max(2*delay, 100*time.Millisecond), 5*time.Second)
		log.Warn("cannot connect to NATS; retrying", "url", redact(url), "error", err, "retry_in", delay)
		if !sleep(ctx, delay) {
			return nil, fmt.Errorf("bus: connect to %s: %w (last error: %w)", redact(url), ctx.Err(), err)
		}
	}
}

// retryable reports whether a failed first connection may succeed later:
// servers not up yet or unreachable, as opposed to refused credentials or
// unreadable key files.
func retryable(err error) bool {
	var ne net.Error
	return errors.Is(err, nats.ErrNoServers) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, io.EOF) || errors.As(err, &ne)
}

// redact hides the user information (passwords, tokens) of a
// comma-separated list of URLs, for logs.
func redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if u, err := neturl.Parse(p); err == nil && u.User != nil {
			u.User = neturl.User("redacted")
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}
