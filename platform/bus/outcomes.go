package bus

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"stratuslab.dev/platform/errs"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
)

// OutcomesBucket is the JetStream key-value bucket where a consumer
// records how each command ended, for a while after. Terminal events reach
// only those listening when they pass; a sender that resumes after a crash
// sends its step's command again under the same id, JetStream drops it as
// a duplicate, and the sender reads the outcome here instead.
const OutcomesBucket = "OUTCOMES"

// outcomesConfig keeps outcomes twice as long as JetStream remembers a
// command id: a command sent again after that is not dropped but carried
// out again, and its handler answers from the state it left.
func outcomesConfig(o StreamOptions) jetstream.KeyValueConfig {
	return jetstream.KeyValueConfig{
		Bucket:      OutcomesBucket,
		Description: "How each command ended, by command id, for senders that resume after a crash.",
		TTL:         2 * o.DuplicateWindow,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
	}
}

// Outcome kinds, the first byte of a recorded outcome.
const (
	outcomeByteCompleted byte = 'c'
	outcomeByteFailed    byte = 'f'
)

// outcomeKey is the bucket key of a command id: ids may hold characters
// keys may not.
func outcomeKey(commandID string) string {
	sum := sha256.Sum256([]byte(commandID))
	return hex.EncodeToString(sum[:20])
}

// outcomesKV opens the bucket once.
func (b *Bus) outcomesKV(ctx context.Context) (jetstream.KeyValue, error) {
	b.outcomesMu.Lock()
	defer b.outcomesMu.Unlock()
	if b.outcomes != nil {
		return b.outcomes, nil
	}
	kv, err := b.js.KeyValue(ctx, OutcomesBucket)
	if err != nil {
		return nil, err
	}
	b.outcomes = kv
	return kv, nil
}

// recordOutcome keeps how a command ended. It is best effort: without the
// record a resumed sender waits out its step and retries.
func (b *Bus) recordOutcome(ctx context.Context, commandID string, kind byte, ev proto.Message) {
	if commandID == "" || b.js == nil {
		return
	}
	data, err := proto.Marshal(ev)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	kv, err := b.outcomesKV(ctx)
	if err == nil {
		_, err = kv.Put(ctx, outcomeKey(commandID), append([]byte{kind}, data...))
	}
	if err != nil {
		b.log.Debug("cannot record a command's outcome", "command_id", commandID, "error", err)
	}
}

// Outcome returns how the command commandID ended, when it ended within
// the bucket's TTL; found is false when no outcome is recorded (the
// command is still queued or running, or ended long ago).
func (b *Bus) Outcome(ctx context.Context, commandID string) (o Outcome, found bool, err error) {
	kv, err := b.outcomesKV(ctx)
	if err != nil {
		return Outcome{}, false, fmt.Errorf("bus: outcomes: %w", err)
	}
	e, err := kv.Get(ctx, outcomeKey(commandID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Outcome{}, false, nil
	}
	if err != nil {
		return Outcome{}, false, fmt.Errorf("bus: outcome of %s: %w", commandID, err)
	}
	v := e.Value()
	if len(v) == 0 {
		return Outcome{}, false, nil
	}
	switch v[0] {
	case outcomeByteCompleted:
		var ev commonv1.CommandCompleted
		if err := proto.Unmarshal(v[1:], &ev); err != nil {
			return Outcome{}, false, fmt.Errorf("bus: outcome of %s: %w", commandID, err)
		}
		return Outcome{Completed: &ev}, true, nil
	case outcomeByteFailed:
		var ev commonv1.CommandFailed
		if err := proto.Unmarshal(v[1:], &ev); err != nil {
			return Outcome{}, false, fmt.Errorf("bus: outcome of %s: %w", commandID, err)
		}
		ferr := errs.FromProto(ev.GetError())
		if ferr == nil {
			ferr = errs.New(errs.Internal, "")
		}
		return Outcome{Err: ferr}, true, nil
	}
	return Outcome{}, false, nil
}
