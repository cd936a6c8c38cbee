package sdk

import (
	"context"
	"time"
)

// Job is a CIMI Job: the progress of asynchronous work.
type Job struct {
	ID                string `json:"id"`
	State             string `json:"state"`
	Progress          int    `json:"progress"`
	StatusMessage     string `json:"statusMessage"`
	ReturnCode        int    `json:"returnCode"`
	Action            string `json:"action,omitempty"`
	TargetResource    *Ref   `json:"targetResource,omitempty"`
	AffectedResources []Ref  `json:"affectedResources,omitempty"`
}

// Ref is a link to another resource.
type Ref struct {
	Href string `json:"href"`
}

// Terminal reports whether the job will not change any more.
func (j *Job) Terminal() bool {
	switch j.State {
	case "SUCCESS", "FAILED", "STOPPED":
		return true
	}
	return false
}

// The states in which a job ends.
const (
	JobFailed  = "FAILED"
	JobStopped = "STOPPED"
	JobSuccess = "SUCCESS"
)

// WaitJob reads the job id until it ends, waiting a little longer between
// reads each time (from 100 ms up to 3 s). Each watch function sees every
// reading, e.g. to show progress. A job ending FAILED or STOPPED returns
// the job and a *JobError carrying its status message; a cancelled ctx
// returns the last reading and ctx's error.
func (c *Client) WaitJob(ctx context.Context, id string, watch ...func(*Job)) (*Job, error) {
	delay := 100 * time.Millisecond
	var last *Job
	for {
		var j Job
		if err := c.Get(ctx, id, &j); err != nil {
			return last, err
		}
		if j.ID == "" {
			j.ID = id
		}
		last = &j
		for _, w := range watch {
			w(last)
		}
		if last.Terminal() {
			if last.State != JobSuccess {
				return last, &JobError{Job: last}
			}
			return last, nil
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return last, ctx.Err()
		case <-t.C:
		}
		delay = min(delay*3/2, 3*time.Second)
	}
}
