package hypervisor

import (
	"context"
	"time"
)

// PowerOff presses the guest's power button (Shutdown) and waits until
// the domain no longer runs, or within has passed. It reports whether the
// domain is off: true for a guest that powered off by itself or a domain
// that did not run, false for a guest still running after within, which
// the caller may then Destroy. A domain that does not exist is
// errs.NotFound, as for Shutdown.
//
// It polls State rather than following libvirt's lifecycle events, which
// would keep callback state per connection: the wait is for a guest's
// shutdown, seconds long, so a poll every second at most costs nothing.
func PowerOff(ctx context.Context, h Hypervisor, uuid string, within time.Duration) (bool, error) {
	deadline := time.Now().Add(within)
	if err := h.Shutdown(ctx, uuid); err != nil {
		return false, err
	}
	for delay := 50 * time.Millisecond; ; delay = min(2*delay, time.Second) {
		st, err := h.State(ctx, uuid)
		if err != nil {
			return false, err
		}
		if st == Shutoff || st == Missing {
			return true, nil
		}
		left := time.Until(deadline)
		if left <= 0 {
			return false, nil
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(min(delay, left)):
		}
	}
}
