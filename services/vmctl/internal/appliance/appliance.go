package appliance

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Disk is a built appliance image: a raw disk with a FAT filesystem, syslinux,
// Debian's kernel and a busybox initramfs. It boots with console=ttyS0 from a
// virtio, IDE or SATA disk. Open it read-only or through a copy-on-write
// overlay: many tests share the same file.
type Disk struct {
	// Path is the raw image's absolute path.
	Path string
	// SHA1 is the image's SHA-1, hex encoded.
	SHA1 string
}

// Build runs script (scripts/appliance.sh) to build the image into cacheDir,
// or to find it there already built from the same inputs, and returns it.
// Concurrent calls, in this process or others, wait for one build.
func Build(ctx context.Context, script, cacheDir string) (Disk, error) {
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return Disk{}, fmt.Errorf("appliance: cache folder: %w", err)
	}
	out := filepath.Join(cacheDir, "appliance.img")
	cmd := exec.CommandContext(ctx, "bash", script, out)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return Disk{}, fmt.Errorf("appliance: %s %s: %w: %s", script, out, err, strings.TrimSpace(stderr.String()))
	}
	// The script's last line is "PATH SHA1".
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	fields := strings.Fields(lines[len(lines)-1])
	if len(fields) != 2 || !filepath.IsAbs(fields[0]) || len(fields[1]) != 40 {
		return Disk{}, fmt.Errorf("appliance: %s printed %q, want the image's path and SHA-1", script, stdout.String())
	}
	return Disk{Path: out, SHA1: fields[1]}, nil
}

// Image returns the appliance for a test, building it on first use on this
// machine (about ten seconds and a 70 MB kernel download) into the user's
// cache folder. It fails the test when the build does: scripts/deps.sh
// installs what the build needs.
func Image(t testing.TB) Disk {
	t.Helper()
	script, err := findScript()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Minute)
	defer cancel()
	disk, err := Build(ctx, script, cacheDir())
	if err != nil {
		t.Fatal(err)
	}
	return disk
}

// cacheDir is where the image and the kernel package are kept between runs.
func cacheDir() string {
	if dir, err := os.UserCacheDir(); err == nil {
		return filepath.Join(dir, "stratuslab", "appliance")
	}
	return filepath.Join(os.TempDir(), "stratuslab-appliance")
}

// findScript looks for scripts/appliance.sh in the working folder and its
// parents: tests run inside the repository.
func findScript() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("appliance: %w", err)
	}
	for {
		path := filepath.Join(dir, "scripts", "appliance.sh")
		if _, err := os.Stat(path); err == nil {
			return path, nil
		} else if !errors.Is(err, os.ErrNotExist) {
			return "", fmt.Errorf("appliance: %w", err)
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("appliance: scripts/appliance.sh is not in the working folder or its parents; run the tests inside the repository")
		}
		dir = parent
	}
}
