package appliance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// Marker starts every line the appliance prints for tests on its serial
// console.
const Marker = "STRATUS-APPLIANCE: "

// pollInterval is how often Wait looks at the log again: a TCG guest prints a
// few lines a second at most.
const pollInterval = 50 * time.Millisecond

// Wait reads the serial log at logPath, following it as the guest writes,
// until a report (a line's text after [Marker]) satisfies match, and returns
// that report. The log may not exist yet. It gives up when ctx ends, saying
// which reports it saw.
func Wait(ctx context.Context, logPath string, match func(report string) bool) (string, error) {
	var (
		offset  int64
		partial []byte
		seen    []string
	)
	ticker := time.NewTicker(pollInterval)
	defer ticker.Stop()
	for {
		chunk, err := readFrom(logPath, offset)
		if err != nil {
			return "", err
		}
		offset += int64(len(chunk))
		partial = append(partial, chunk...)
		// Only whole lines: the guest may be in the middle of one.
		for {
			i := bytes.IndexByte(partial, '\n')
			if i < 0 {
				break
			}
			line := strings.TrimRight(string(partial[:i]), "\r")
			partial = partial[i+1:]
			// Kernel messages may share the line: the marker need not start it.
			j := strings.Index(line, Marker)
			if j < 0 {
				continue
			}
			report := line[j+len(Marker):]
			if match(report) {
				return report, nil
			}
			seen = append(seen, report)
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("appliance: no matching report in %s (saw %q): %w", logPath, seen, ctx.Err())
		case <-ticker.C:
		}
	}
}

// WaitFor waits as [Wait] does for the first report starting with prefix
// (such as "hostname=") and returns the rest of it.
func WaitFor(ctx context.Context, logPath, prefix string) (string, error) {
	report, err := Wait(ctx, logPath, func(r string) bool { return strings.HasPrefix(r, prefix) })
	return strings.TrimPrefix(report, prefix), err
}

// readFrom returns what the file holds past offset; nothing if it does not
// exist yet.
func readFrom(path string, offset int64) ([]byte, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("appliance: serial log: %w", err)
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return nil, fmt.Errorf("appliance: serial log: %w", err)
	}
	b, err := io.ReadAll(f)
	if err != nil {
		return nil, fmt.Errorf("appliance: serial log: %w", err)
	}
	return b, nil
}
