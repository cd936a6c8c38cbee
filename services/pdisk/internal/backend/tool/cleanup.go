package tool

import (
	"context"
	"time"
)

// CleanupTimeout bounds the removal of temporaries after a failure.
const CleanupTimeout = 2 * time.Minute

// CleanupContext returns the context in which to undo what a failed
// operation made: it keeps ctx's values but not its end, since the failure
// may be ctx ending, and ends CleanupTimeout from now.
func CleanupContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), CleanupTimeout)
}
