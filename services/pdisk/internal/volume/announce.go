package volume

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"stratuslab.dev/platform/bus"
	cimiv1 "stratuslab.dev/proto/stratus/cimi/v1"
	"stratuslab.dev/proto/subject"
)

// Announcer publishes the change of a Volume document written outside the
// CIMI write path (typed service commands, the image cache, the janitor,
// the reconciler) as the same ResourceChanged event platform/resource
// publishes, so that the audit trail and every reader see all changes.
type Announcer struct {
	// Bus carries the events.
	Bus *bus.Bus
	// Now is the clock; nil: time.Now.
	Now func() time.Time
}

// Changed publishes event (subject.EventCreated, EventUpdated or
// EventDeleted) for the volume with this uuid; after is nil for a delete.
// msgID de-duplicates a republication after a redelivery: derive it from
// the command id, e.g. cmd.ID()+".changed".
func (a Announcer) Changed(ctx context.Context, event, uuid string, after *Volume, msgID string) error {
	now := time.Now
	if a.Now != nil {
		now = a.Now
	}
	ev := &cimiv1.ResourceChanged{Kind: Kind, Id: ID(uuid), At: timestamppb.New(now())}
	if after != nil {
		v := *after
		v.Command = ""
		data, err := json.Marshal(&v)
		if err != nil {
			return fmt.Errorf("volume: encode %s: %w", uuid, err)
		}
		ev.Json = data
	}
	subj := subject.Event(subject.Pdisk, subject.ResourceVolume, event)
	if err := a.Bus.Publish(ctx, subj, ev, msgID); err != nil {
		return fmt.Errorf("volume: announce the change of %s: %w", uuid, err)
	}
	return nil
}
