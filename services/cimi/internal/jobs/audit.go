package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/store"
	cimiv1 "stratuslab.dev/proto/stratus/cimi/v1"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
	"stratuslab.dev/proto/subject"
)

// Values of an Event's type, severity and outcome (DMTF CIMI Event), and
// of its content's state for the end of a command (a resource change has
// the event's name: created, updated, deleted).
const (
	EventTypeState   = "state"
	SeverityLow      = "low"
	SeverityMedium   = "medium"
	OutcomeSuccess   = "Success"
	OutcomeFailure   = "Failure"
	OutcomeStatus    = "Status"
	ContentCompleted = "completed"
	ContentFailed    = "failed"
)

// Event is the stored form of a CIMI Event: one entry of the audit trail.
type Event struct {
	cimi.Common
	// Timestamp is when the recorded event happened.
	Timestamp time.Time `json:"timestamp"`
	Type      string    `json:"type"`
	Severity  string    `json:"severity"`
	Outcome   string    `json:"outcome"`
	Content   Content   `json:"content"`
	// Subject is the bus subject the event was published on.
	Subject string `json:"subject"`
	// Job is the job the event belongs to, when there is one.
	Job *Ref `json:"job,omitempty"`
}

// Content is what a state Event says about a resource.
type Content struct {
	Resource *Ref   `json:"resource,omitempty"`
	ResName  string `json:"resName,omitempty"`
	// ResType is the resource's CIMI kind, e.g. "ServiceMessage".
	ResType string `json:"resType,omitempty"`
	// State is "created", "updated" or "deleted" for a resource change,
	// "completed" or "failed" for the end of a command.
	State    string `json:"state"`
	Previous string `json:"previous,omitempty"`
}

// Protobuf names of the payloads the audit trail records (bus.Event.Type).
const (
	typeCompleted = "stratus.common.v1.CommandCompleted"
	typeFailed    = "stratus.common.v1.CommandFailed"
	typeChanged   = "stratus.cimi.v1.ResourceChanged"
)

// handleAuditEvent records an Event for the terminal event of a command or
// a resource change, owned by the user whose request caused it. Other
// events (progress, heartbeats, domain events) and the changes of jobs and
// events themselves are not recorded.
func (j *Jobs) handleAuditEvent(ctx context.Context, ev *bus.Event) error {
	tokens := strings.Split(ev.Subject(), ".")
	if len(tokens) < 4 || tokens[2] == subject.ResourceJob || tokens[2] == subject.ResourceEvent {
		return nil
	}
	e, ok, err := j.auditEntry(ctx, ev, tokens)
	if err != nil {
		return err
	}
	if !ok {
		return nil
	}
	e.Common.ID = KindEvent + "/" + eventUUID(ev)
	e.ResourceURI = cimi.ResourceURI(KindEvent)
	e.Type = EventTypeState
	e.Subject = ev.Subject()
	e.ACL = cimi.OwnedBy(cimi.Identity{User: ev.Actor().GetUser()})
	if id := ev.JobID(); strings.HasPrefix(id, KindJob+"/") {
		e.Job = &Ref{Href: id}
	}
	if e.Timestamp.IsZero() {
		e.Timestamp = ev.Time()
	}
	e.Timestamp = e.Timestamp.UTC().Truncate(time.Millisecond)
	e.Touch(j.now())
	body, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("jobs: encode %s: %w", e.ID, err)
	}
	if _, err := j.events.Create(ctx, e.ID, body); err != nil && !errors.Is(err, store.ErrExists) {
		return fmt.Errorf("jobs: record %s: %w", e.ID, err)
	}
	return nil
}

// eventUUID derives the uuid of the Event recording ev from its message id
// or, for an event published without one, its place in the stream, so that
// an event delivered twice is recorded once.
func eventUUID(ev *bus.Event) string {
	space := uuid.MustParse("d0f5c7a4-3b1e-4c8e-8f0a-6c2b9e4d7a35")
	key := "msg:" + ev.ID()
	if ev.ID() == "" {
		key = "seq:" + strconv.FormatUint(ev.Sequence(), 10) + "@" + ev.Time().UTC().Format(time.RFC3339Nano)
	}
	return uuid.NewSHA1(space, []byte(key)).String()
}

// auditEntry fills the part of the Event that depends on what ev reports;
// false when ev is not recorded.
func (j *Jobs) auditEntry(ctx context.Context, ev *bus.Event, tokens []string) (Event, bool, error) {
	var e Event
	switch ev.Type() {
	case typeCompleted:
		var c commonv1.CommandCompleted
		if err := ev.Decode(&c); err != nil {
			j.log.Warn("event cannot be read; not recorded", "subject", ev.Subject(), "event", ev.ID(), "error", err)
			return e, false, nil
		}
		e.Severity, e.Outcome, e.Content.State = SeverityLow, OutcomeSuccess, ContentCompleted
		e.Description = c.GetMessage()
		e.Timestamp = c.GetCompletedAt().AsTime()
		target := ""
		if a := c.GetAffected(); len(a) > 0 {
			target = a[0].GetId()
		} else {
			target = j.targetOf(ctx, ev.JobID())
		}
		e.Content.Resource, e.Content.ResName, e.Content.ResType = describe(target, tokens)
	case typeFailed:
		var f commonv1.CommandFailed
		if err := ev.Decode(&f); err != nil {
			j.log.Warn("event cannot be read; not recorded", "subject", ev.Subject(), "event", ev.ID(), "error", err)
			return e, false, nil
		}
		e.Severity, e.Outcome, e.Content.State = SeverityMedium, OutcomeFailure, ContentFailed
		e.Description = fmt.Sprintf("%s (%s)", f.GetError().GetMessage(), f.GetError().GetCode())
		e.Timestamp = f.GetFailedAt().AsTime()
		e.Content.Resource, e.Content.ResName, e.Content.ResType = describe(j.targetOf(ctx, ev.JobID()), tokens)
	case typeChanged:
		var c cimiv1.ResourceChanged
		if err := ev.Decode(&c); err != nil {
			j.log.Warn("event cannot be read; not recorded", "subject", ev.Subject(), "event", ev.ID(), "error", err)
			return e, false, nil
		}
		if c.GetKind() == KindJob || c.GetKind() == KindEvent {
			return e, false, nil
		}
		e.Severity, e.Outcome, e.Content.State = SeverityLow, OutcomeStatus, tokens[len(tokens)-1]
		e.Timestamp = c.GetAt().AsTime()
		e.Content.Resource, e.Content.ResName, e.Content.ResType = describe(c.GetId(), tokens)
		if c.GetKind() != "" {
			e.Content.ResType = c.GetKind()
		}
		var doc struct {
			Name string `json:"name"`
		}
		if json.Unmarshal(c.GetJson(), &doc) == nil && doc.Name != "" {
			e.Content.ResName = doc.Name
		}
	default:
		return e, false, nil
	}
	if e.Timestamp.Unix() <= 0 { // no time in the payload
		e.Timestamp = time.Time{}
	}
	return e, true, nil
}

// targetOf returns the target resource of the job id, "" when unknown.
func (j *Jobs) targetOf(ctx context.Context, id string) string {
	if !strings.HasPrefix(id, KindJob+"/") {
		return ""
	}
	d, err := j.jobs.Get(ctx, id)
	if err != nil {
		return ""
	}
	var job Job
	if json.Unmarshal(d.Body, &job) != nil || job.TargetResource == nil {
		return ""
	}
	return job.TargetResource.Href
}

// describe describes the resource id for an Event: its link, its name (the
// id until a better one is known) and its kind, taken from the id or else
// from the resource token of the subject.
func describe(id string, tokens []string) (*Ref, string, string) {
	if id == "" {
		return nil, "", tokens[2]
	}
	kind, _, err := cimi.SplitID(id)
	if err != nil {
		kind = tokens[2]
	}
	return &Ref{Href: id}, id, kind
}
