package jobs

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/store"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
	jobv1 "stratuslab.dev/proto/stratus/job/v1"
	"stratuslab.dev/proto/subject"
)

// Durable subscriptions on the EVENTS stream, shared by every replica of the
// gateway so that each event is handled once.
const (
	DurableJobs  = "cimi-jobs"
	DurableAudit = "cimi-audit"
)

// nestedJobID derives the id of the nested job following commandID, so
// that a redelivered event finds the nested job it made before.
func nestedJobID(commandID string) string {
	space := uuid.MustParse("5b0c3e52-8f7e-4c55-9a59-2f6f7a0c1d11")
	return KindJob + "/" + uuid.NewSHA1(space, []byte(commandID)).String()
}

// Run follows the EVENTS stream with two durable subscriptions shared by
// every gateway replica (DurableJobs: terminal and progress events move
// jobs; DurableAudit: the audit trail), and deletes expired jobs and events
// periodically, until ctx ends.
func (j *Jobs) Run(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errc := make(chan error, 3)
	run := func(f func(context.Context) error) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := f(ctx); err != nil {
				errc <- err
				cancel()
			}
		}()
	}
	run(func(ctx context.Context) error {
		return j.bus.Subscribe(ctx, bus.SubscribeSpec{Durable: DurableJobs, Subjects: []string{subject.AllEvents}}, j.handleJobEvent)
	})
	run(func(ctx context.Context) error {
		return j.bus.Subscribe(ctx, bus.SubscribeSpec{Durable: DurableAudit, Subjects: []string{subject.AllEvents}}, j.handleAuditEvent)
	})
	run(j.sweepLoop)
	wg.Wait()
	close(errc)
	return <-errc
}

// sweepLoop deletes expired documents now and then every sweepEvery.
func (j *Jobs) sweepLoop(ctx context.Context) error {
	t := time.NewTicker(j.sweepEvery)
	defer t.Stop()
	for {
		if err := j.sweep(ctx); err != nil && ctx.Err() == nil {
			j.log.Warn("cannot delete expired jobs and events; will retry", "error", err, "retry_in", j.sweepEvery)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// report is what a terminal or progress event says about a command.
type report struct {
	commandID string
	subject   string // the command's subject
	progress  *jobv1.JobProgress
	completed *commonv1.CommandCompleted
	failed    *commonv1.CommandFailed
}

// readReport decodes a terminal or progress event; false for any other.
func readReport(ev *bus.Event) (report, bool, error) {
	s := ev.Subject()
	var r report
	switch {
	case strings.HasSuffix(s, subject.CompletedSuffix):
		r.completed = &commonv1.CommandCompleted{}
		if err := ev.Decode(r.completed); err != nil {
			return r, false, err
		}
		r.commandID, r.subject = r.completed.GetCommandId(), r.completed.GetCommandSubject()
	case strings.HasSuffix(s, subject.FailedSuffix):
		r.failed = &commonv1.CommandFailed{}
		if err := ev.Decode(r.failed); err != nil {
			return r, false, err
		}
		r.commandID, r.subject = r.failed.GetCommandId(), r.failed.GetCommandSubject()
	case strings.HasSuffix(s, subject.ProgressSuffix):
		r.progress = &jobv1.JobProgress{}
		if err := ev.Decode(r.progress); err != nil {
			return r, false, err
		}
		r.commandID, r.subject = r.progress.GetCommandId(), r.progress.GetCommandSubject()
	default:
		return r, false, nil
	}
	return r, true, nil
}

// jobOf returns the job id an event belongs to: its Stratus-Job header, or
// the one its payload names.
func jobOf(ev *bus.Event, r report) string {
	if id := ev.JobID(); id != "" {
		return id
	}
	switch {
	case r.completed != nil:
		return r.completed.GetJobId()
	case r.failed != nil:
		return r.failed.GetJobId()
	}
	return r.progress.GetJobId()
}

// handleJobEvent moves the job a terminal or progress event belongs to. It
// is idempotent: an event seen again, or arriving after the job ended,
// changes nothing. Events of jobs the gateway did not record are skipped.
func (j *Jobs) handleJobEvent(ctx context.Context, ev *bus.Event) error {
	r, ok, err := readReport(ev)
	if err != nil {
		// A payload we cannot read will not become readable: skip it.
		j.log.Warn("event cannot be read; job not updated", "subject", ev.Subject(), "event", ev.ID(), "error", err)
		return nil
	}
	if !ok {
		return nil
	}
	id := jobOf(ev, r)
	if kind, _, err := cimi.SplitID(id); err != nil || kind != KindJob {
		return nil
	}
	cur, err := j.jobs.Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		j.log.Debug("event for a job this gateway did not record; skipped", "job", id, "subject", ev.Subject())
		return nil
	}
	if err != nil {
		return fmt.Errorf("jobs: read %s: %w", id, err)
	}
	var job Job
	if err := json.Unmarshal(cur.Body, &job); err != nil {
		j.log.Warn("stored job cannot be read; event skipped", "job", id, "error", err)
		return nil
	}
	if job.CommandID != "" && r.commandID != "" && r.commandID != job.CommandID {
		return j.nested(ctx, &job, r)
	}
	_, err = j.update(ctx, id, func(job *Job) bool { return j.apply(job, r) })
	if errors.Is(err, store.ErrNotFound) {
		return nil // swept or deleted meanwhile
	}
	return err
}

// apply changes job as r reports; false when r changes nothing (a job that
// has ended, a duplicate, a progress report older than the last one).
func (j *Jobs) apply(job *Job, r report) bool {
	if terminal(job.State) {
		return false
	}
	switch {
	case r.completed != nil:
		job.State = StateSuccess
		job.Progress = 100
		job.ReturnCode = 0
		job.AffectedResources = refs(r.completed.GetAffected())
		job.StatusMessage = r.completed.GetMessage()
		j.touch(job)
		return true
	case r.failed != nil:
		return j.fail(job, r.failed.GetError().GetCode(), r.failed.GetError().GetMessage())
	}
	p := int(min(r.progress.GetProgress(), 100))
	if job.State == StateRunning && (p < job.Progress || p == job.Progress && r.progress.GetMessage() == job.StatusMessage) {
		return false
	}
	job.State = StateRunning
	job.Progress = max(p, job.Progress)
	job.StatusMessage = r.progress.GetMessage()
	j.touch(job)
	return true
}

// nested records the work of another command carrying parent's job id (a
// service doing part of the job through another service) as a nested job
// of parent, and marks parent RUNNING if it was still QUEUED.
func (j *Jobs) nested(ctx context.Context, parent *Job, r report) error {
	id := nestedJobID(r.commandID)
	child := Job{
		Common:         cimi.Common{ID: id, ResourceURI: cimi.ResourceURI(KindJob), ACL: parent.ACL},
		State:          StateQueued,
		Action:         actionOf(r.subject),
		ParentJob:      &Ref{Href: parent.ID},
		CommandSubject: r.subject,
		CommandID:      r.commandID,
	}
	j.touch(&child)
	j.apply(&child, r)
	body, err := json.Marshal(child)
	if err != nil {
		return fmt.Errorf("jobs: encode %s: %w", id, err)
	}
	_, err = j.jobs.Create(ctx, id, body)
	switch {
	case errors.Is(err, store.ErrExists):
		if _, err := j.update(ctx, id, func(job *Job) bool { return j.apply(job, r) }); err != nil && !errors.Is(err, store.ErrNotFound) {
			return err
		}
	case err != nil:
		return fmt.Errorf("jobs: record nested %s: %w", id, err)
	}
	_, err = j.update(ctx, parent.ID, func(job *Job) bool {
		changed := false
		if !slices.Contains(job.NestedJobs, Ref{Href: id}) {
			job.NestedJobs = append(job.NestedJobs, Ref{Href: id})
			changed = true
		}
		if job.State == StateQueued {
			job.State = StateRunning
			j.touch(job)
			return true
		}
		if changed {
			job.Touch(j.now())
		}
		return changed
	})
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	return err
}

// actionOf names the action of a command from its subject: its verb, e.g.
// "cmd.pdisk.volume.create" gives "create".
func actionOf(commandSubject string) string {
	c, err := subject.ParseCommand(commandSubject)
	if err != nil {
		return ""
	}
	return strings.TrimPrefix(c.Verb, subject.VerbCimiActionPrefix)
}

// refs converts resource references to CIMI links.
func refs(rs []*commonv1.ResourceRef) []Ref {
	if len(rs) == 0 {
		return nil
	}
	out := make([]Ref, 0, len(rs))
	for _, r := range rs {
		if r.GetId() != "" {
			out = append(out, Ref{Href: r.GetId()})
		}
	}
	return out
}
