package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/store"
)

// Kinds of the documents this package keeps; also their collections.
const (
	KindJob   = "Job"
	KindEvent = "Event"
)

// Job states (CIMI).
const (
	StateQueued   = "QUEUED"
	StateRunning  = "RUNNING"
	StateFailed   = "FAILED"
	StateSuccess  = "SUCCESS"
	StateStopping = "STOPPING"
	StateStopped  = "STOPPED"
)

// DefaultRetention is how long jobs and events are kept after their last
// change.
const DefaultRetention = 30 * 24 * time.Hour

// sweepEvery is how often Run deletes expired documents.
const sweepEvery = time.Hour

// Ref links to another resource.
type Ref struct {
	Href string `json:"href"`
}

// Job is the stored form of a CIMI Job.
type Job struct {
	cimi.Common
	State             string `json:"state"`
	TargetResource    *Ref   `json:"targetResource,omitempty"`
	AffectedResources []Ref  `json:"affectedResources,omitempty"`
	Action            string `json:"action"`
	// ReturnCode is 0 unless the job failed; then it is the HTTP status of
	// the error's code (400 invalid, 403 forbidden, 404 not_found, 409
	// conflict, 503 unavailable, 500 for a code we do not know, ...), so
	// that a client can branch on it as it would on an HTTP answer.
	ReturnCode         int       `json:"returnCode"`
	Progress           int       `json:"progress"`
	StatusMessage      string    `json:"statusMessage,omitempty"`
	TimeOfStatusChange time.Time `json:"timeOfStatusChange"`
	ParentJob          *Ref      `json:"parentJob,omitempty"`
	NestedJobs         []Ref     `json:"nestedJobs,omitempty"`
	// ErrorCode is the stable error code of a failed job (platform/errs),
	// also named in StatusMessage.
	ErrorCode string `json:"errorCode,omitempty"`
	// CommandSubject and CommandID name the command the job follows; only
	// that command's terminal event ends the job (other commands carrying
	// the job's id become nested jobs).
	CommandSubject string `json:"commandSubject,omitempty"`
	CommandID      string `json:"commandId,omitempty"`
}

// terminal reports whether a job in state s can no longer change.
func terminal(s string) bool {
	return s == StateSuccess || s == StateFailed || s == StateStopped
}

// Spec describes the job of one command.
type Spec struct {
	// Action is "create", "edit", "delete", or an action URI
	// ("http://schemas.dmtf.org/cimi/1/action/start").
	Action string
	// Target is the id of the resource the command acts on, e.g.
	// "ServiceMessage/<uuid>".
	Target         string
	CommandID      string
	CommandSubject string
}

// Jobs records jobs and follows them, and keeps the audit trail.
type Jobs struct {
	jobs   store.Collection
	events store.Collection
	bus    *bus.Bus
	log    *slog.Logger
	now    func() time.Time
	// retention is the age after which jobs (by their last change) and
	// events are deleted; tests shorten it.
	retention time.Duration
	// sweepEvery is the pause between two retention sweeps of Run.
	sweepEvery time.Duration
}

// New returns Jobs keeping jobs and events in the two collections and
// following the EVENTS stream of b.
func New(jobs, events store.Collection, b *bus.Bus, log *slog.Logger) *Jobs {
	if log == nil {
		log = slog.Default()
	}
	return &Jobs{jobs: jobs, events: events, bus: b, log: log.With("component", "jobs"),
		now: time.Now, retention: DefaultRetention, sweepEvery: sweepEvery}
}

// Start records a QUEUED job owned by who (administrators may see it too;
// an anonymous caller's job is visible to administrators only) and returns
// its id "Job/<uuid>".
func (j *Jobs) Start(ctx context.Context, who cimi.Identity, s Spec) (string, error) {
	now := j.now().UTC()
	job := Job{
		Common:         cimi.Common{ID: cimi.NewID(KindJob), ResourceURI: cimi.ResourceURI(KindJob), ACL: cimi.OwnedBy(who)},
		State:          StateQueued,
		Action:         s.Action,
		CommandSubject: s.CommandSubject,
		CommandID:      s.CommandID,
	}
	if s.Target != "" {
		job.TargetResource = &Ref{Href: s.Target}
	}
	job.Touch(now)
	job.TimeOfStatusChange = job.Updated
	body, err := json.Marshal(job)
	if err != nil {
		return "", fmt.Errorf("jobs: encode %s: %w", job.ID, err)
	}
	if _, err := j.jobs.Create(ctx, job.ID, body); err != nil {
		return "", fmt.Errorf("jobs: record %s: %w", job.ID, err)
	}
	return job.ID, nil
}

// Fail marks a job FAILED at once, because the gateway could not send its
// command: the job carries err's code and message. A job that has already
// ended is left as it is.
func (j *Jobs) Fail(ctx context.Context, id string, err error) error {
	code, msg := string(errs.CodeOf(err)), errs.MessageOf(err)
	_, uerr := j.update(ctx, id, func(job *Job) bool {
		return j.fail(job, code, msg)
	})
	return uerr
}

// fail moves job to FAILED with the error code and message; false when the
// job had already ended.
func (j *Jobs) fail(job *Job, code, msg string) bool {
	if terminal(job.State) {
		return false
	}
	if code == "" {
		code = string(errs.Internal)
	}
	if msg == "" {
		msg = errs.Code(code).Description()
	}
	job.State = StateFailed
	job.ReturnCode = errs.HTTPStatus(errs.Code(code))
	job.ErrorCode = code
	job.StatusMessage = fmt.Sprintf("%s (%s)", msg, code)
	j.touch(job)
	return true
}

// touch records a change of status now.
func (j *Jobs) touch(job *Job) {
	job.Touch(j.now())
	job.TimeOfStatusChange = job.Updated
}

// errUnchanged aborts an update that has nothing to write.
var errUnchanged = errors.New("jobs: unchanged")

// update applies change to the stored job id and writes it when change
// reports a change. It returns whether it wrote; store.ErrNotFound (wrapped)
// when the job does not exist.
func (j *Jobs) update(ctx context.Context, id string, change func(*Job) bool) (bool, error) {
	_, err := j.jobs.Update(ctx, id, func(cur store.Document) (json.RawMessage, error) {
		var job Job
		if err := json.Unmarshal(cur.Body, &job); err != nil {
			return nil, fmt.Errorf("jobs: stored %s cannot be read: %w", id, err)
		}
		if !change(&job) {
			return nil, errUnchanged
		}
		return json.Marshal(job)
	})
	switch {
	case errors.Is(err, errUnchanged):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("jobs: update %s: %w", id, err)
	}
	return true, nil
}
