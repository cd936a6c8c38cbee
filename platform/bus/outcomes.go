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

// recordOutcome keeps how a command ended, before its terminal event is
// published: a crash after the event but before the record would leave a
// resumed sender, whose command JetStream drops as a duplicate, waiting
// for an event that passed while it was down. The first outcome recorded
// is the command's: a delivery that runs the handler again (its
// acknowledgement was lost) may end otherwise, on the state the first one
// left, and reports the first outcome instead; that is what returns. An
// error makes the caller retry the command. A deployment without the
// bucket (streams made by hand before it existed) records nothing.
func (b *Bus) recordOutcome(ctx context.Context, commandID string, kind byte, ev proto.Message) (byte, proto.Message, error) {
	if commandID == "" || b.js == nil {
		return kind, ev, nil
	}
	data, err := proto.Marshal(ev)
	if err != nil {
		return 0, nil, fmt.Errorf("bus: encode the outcome of %s: %w", commandID, err)
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	kv, err := b.outcomesKV(ctx)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		b.log.Debug("no outcomes bucket: a command's outcome is not recorded", "command_id", commandID)
		return kind, ev, nil
	}
	if err != nil {
		return 0, nil, fmt.Errorf("bus: record the outcome of %s: %w", commandID, err)
	}
	key := outcomeKey(commandID)
	_, err = kv.Create(ctx, key, append([]byte{kind}, data...))
	if err == nil {
		return kind, ev, nil
	}
	if !errors.Is(err, jetstream.ErrKeyExists) {
		return 0, nil, fmt.Errorf("bus: record the outcome of %s: %w", commandID, err)
	}
	first, err := kv.Get(ctx, key)
	if err != nil {
		return 0, nil, fmt.Errorf("bus: read the outcome of %s: %w", commandID, err)
	}
	k, fev, err := decodeOutcome(first.Value())
	if err != nil {
		return 0, nil, fmt.Errorf("bus: outcome of %s: %w", commandID, err)
	}
	return k, fev, nil
}

// recordedOutcome returns the outcome recorded for commandID, if any.
func (b *Bus) recordedOutcome(ctx context.Context, commandID string) (kind byte, ev proto.Message, found bool, err error) {
	kv, err := b.outcomesKV(ctx)
	if err != nil {
		return 0, nil, false, fmt.Errorf("bus: outcomes: %w", err)
	}
	e, err := kv.Get(ctx, outcomeKey(commandID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, nil, false, nil
	}
	if err != nil {
		return 0, nil, false, fmt.Errorf("bus: outcome of %s: %w", commandID, err)
	}
	kind, ev, err = decodeOutcome(e.Value())
	if err != nil {
		return 0, nil, false, fmt.Errorf("bus: outcome of %s: %w", commandID, err)
	}
	return kind, ev, true, nil
}

// decodeOutcome reads a recorded outcome: its kind, then its terminal
// event.
func decodeOutcome(v []byte) (byte, proto.Message, error) {
	if len(v) == 0 {
		return 0, nil, errors.New("empty record")
	}
	var ev proto.Message
	switch v[0] {
	case outcomeByteCompleted:
		ev = &commonv1.CommandCompleted{}
	case outcomeByteFailed:
		ev = &commonv1.CommandFailed{}
	default:
		return 0, nil, fmt.Errorf("unknown kind %q", v[0])
	}
	if err := proto.Unmarshal(v[1:], ev); err != nil {
		return 0, nil, err
	}
	return v[0], ev, nil
}

// Outcome returns how the command commandID ended, when it ended within
// the bucket's TTL; found is false when no outcome is recorded (the
// command is still queued or running, or ended long ago).
func (b *Bus) Outcome(ctx context.Context, commandID string) (o Outcome, found bool, err error) {
	kind, ev, found, err := b.recordedOutcome(ctx, commandID)
	if err != nil || !found {
		return Outcome{}, false, err
	}
	if kind == outcomeByteCompleted {
		return Outcome{Completed: ev.(*commonv1.CommandCompleted)}, true, nil
	}
	ferr := errs.FromProto(ev.(*commonv1.CommandFailed).GetError())
	if ferr == nil {
		ferr = errs.New(errs.Internal, "")
	}
	return Outcome{Err: ferr}, true, nil
}
