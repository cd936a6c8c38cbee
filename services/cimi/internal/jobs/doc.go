// Package jobs keeps the CIMI Job and Event documents of the gateway. The
// gateway records a QUEUED Job before it sends a write command on the bus;
// this package then follows the EVENTS stream and moves each job along as
// the owning service reports progress and the command's terminal event
// (…_completed or …_failed) arrives, and it records an audit trail of Events
// (terminal events of commands, resource changes) that each user may read
// for their own actions. Both collections are read-only through CIMI, and
// documents older than the retention age are swept away.
package jobs
