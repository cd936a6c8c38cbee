package appliance

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func TestWaitFor(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		log     string // "" means no log file at all
		prefix  string
		want    string
		timeout bool
	}{
		{
			name:   "report after boot loader output",
			log:    "\r\nSYSLINUX 6.04\r\nSTRATUS-APPLIANCE: booted\r\nSTRATUS-APPLIANCE: hostname=web-1\r\n",
			prefix: "hostname=",
			want:   "web-1",
		},
		{
			name:   "kernel message on the same line",
			log:    "[    3.1] virtio_blk virtio2: [vdb] 16384 512-byte blocksSTRATUS-APPLIANCE: disk-added=vdb bytes=8388608\n",
			prefix: "disk-added=",
			want:   "vdb bytes=8388608",
		},
		{
			name:   "first match wins",
			log:    "STRATUS-APPLIANCE: disks=sr0 vda\nSTRATUS-APPLIANCE: disks=sr0 vda vdb\n",
			prefix: "disks=",
			want:   "sr0 vda",
		},
		{
			name:   "empty value",
			log:    "STRATUS-APPLIANCE: ip=\n",
			prefix: "ip=",
			want:   "",
		},
		{
			name:    "line not finished yet",
			log:     "STRATUS-APPLIANCE: hostname=web",
			prefix:  "hostname=",
			timeout: true,
		},
		{
			name:    "text without the marker",
			log:     "hostname=web-1\n",
			prefix:  "hostname=",
			timeout: true,
		},
		{
			name:    "no log yet",
			prefix:  "booted",
			timeout: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "serial.log")
			if tt.log != "" {
				if err := os.WriteFile(path, []byte(tt.log), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			ctx, cancel := context.WithTimeout(t.Context(), 300*time.Millisecond)
			defer cancel()
			got, err := WaitFor(ctx, path, tt.prefix)
			if tt.timeout {
				if !errors.Is(err, context.DeadlineExceeded) {
					t.Fatalf("WaitFor = %q, %v; want a deadline error", got, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("WaitFor = %q, %v; want %q", got, err, tt.want)
			}
		})
	}
}

// TestWaitFollowsLog checks that reports written after Wait started, in
// pieces as a serial port delivers them, are found.
func TestWaitFollowsLog(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "serial.log")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	go func() {
		for _, piece := range []string{"STRATUS-APPLIANCE: boo", "ted\r\nSTRATUS-APPLIANCE: rea", "dy\r\n"} {
			time.Sleep(2 * pollInterval)
			if _, err := f.WriteString(piece); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	got, err := Wait(ctx, path, func(r string) bool { return r == "ready" })
	if err != nil || got != "ready" {
		t.Fatalf("Wait = %q, %v; want ready", got, err)
	}
}
