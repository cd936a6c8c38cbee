package bus

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Names of the two streams every message lives in.
const (
	// CommandsStream holds commands (cmd.>) until a consumer settles them.
	CommandsStream = "COMMANDS"
	// EventsStream holds events (evt.>), bounded in age and size.
	EventsStream = "EVENTS"
)

// Defaults of StreamOptions.
const (
	DefaultCommandsMaxAge  = 24 * time.Hour
	DefaultEventsMaxAge    = 7 * 24 * time.Hour
	DefaultEventsMaxBytes  = 1 << 30 // 1 GiB
	DefaultDuplicateWindow = 2 * time.Minute
)

// StreamOptions size the COMMANDS and EVENTS streams.
type StreamOptions struct {
	// Replicas is the number of copies of each stream: 1 on a single
	// server, 3 on a cluster. 1 when zero.
	Replicas int
	// CommandsMaxAge drops a command nobody consumed after this long; 24
	// hours when zero.
	CommandsMaxAge time.Duration
	// EventsMaxAge drops events older than this; 7 days when zero.
	EventsMaxAge time.Duration
	// EventsMaxBytes drops the oldest events beyond this size; 1 GiB when
	// zero.
	EventsMaxBytes int64
	// DuplicateWindow is how long a Nats-Msg-Id is remembered to drop a
	// message sent again; 2 minutes when zero.
	DuplicateWindow time.Duration
}

// streamConfigs returns the configurations EnsureStreams applies.
func streamConfigs(o StreamOptions) []jetstream.StreamConfig {
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.CommandsMaxAge <= 0 {
		o.CommandsMaxAge = DefaultCommandsMaxAge
	}
	if o.EventsMaxAge <= 0 {
		o.EventsMaxAge = DefaultEventsMaxAge
	}
	if o.EventsMaxBytes <= 0 {
		o.EventsMaxBytes = DefaultEventsMaxBytes
	}
	if o.DuplicateWindow <= 0 {
		o.DuplicateWindow = DefaultDuplicateWindow
	}
	return []jetstream.StreamConfig{
		{
			Name:        CommandsStream,
			Description: "StratusLab commands, cmd.<service>.<resource>.<verb>: each is consumed once by the owning service.",
			Subjects:    []string{commandPrefix + ">"},
			Retention:   jetstream.WorkQueuePolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    o.Replicas,
			MaxAge:      o.CommandsMaxAge,
			Duplicates:  min(o.DuplicateWindow, o.CommandsMaxAge),
			Discard:     jetstream.DiscardOld,
		},
		{
			Name:        EventsStream,
			Description: "StratusLab events, evt.<service>.<resource>.<event>, including every command's terminal event.",
			Subjects:    []string{eventPrefix + ">"},
			Retention:   jetstream.LimitsPolicy,
			Storage:     jetstream.FileStorage,
			Replicas:    o.Replicas,
			MaxAge:      o.EventsMaxAge,
			MaxBytes:    o.EventsMaxBytes,
			Duplicates:  min(o.DuplicateWindow, o.EventsMaxAge),
			Discard:     jetstream.DiscardOld,
		},
	}
}

// EnsureStreams creates the COMMANDS and EVENTS streams, or updates them to
// opts when they exist with another configuration. It is safe to call from
// every service at start-up. Changes JetStream refuses to apply in place
// (storage kind, retention policy) are returned as errors.
func EnsureStreams(ctx context.Context, js jetstream.JetStream, opts StreamOptions) error {
	for _, cfg := range streamConfigs(opts) {
		if _, err := js.CreateOrUpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("bus: ensure stream %s: %w", cfg.Name, err)
		}
	}
	if opts.DuplicateWindow <= 0 {
		opts.DuplicateWindow = DefaultDuplicateWindow
	}
	if _, err := js.CreateOrUpdateKeyValue(ctx, outcomesConfig(opts)); err != nil {
		return fmt.Errorf("bus: ensure bucket %s: %w", OutcomesBucket, err)
	}
	return nil
}
