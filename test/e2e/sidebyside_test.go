package e2e

import (
	"os"
	"os/exec"
	"testing"
)

// TestSideBySide starts two clouds that differ only in --data-dir and
// --listen: the second takes free ports where the first holds the
// defaults, and each is a whole cloud of its own.
func TestSideBySide(t *testing.T) {
	var clouds []*cloud
	for range 2 {
		c := &cloud{t: t, dataDir: t.TempDir(), listen: freeAddr(t)}
		c.start(func(cmd *exec.Cmd) {
			cmd.Args = []string{binary, "--data-dir", c.dataDir, "--listen", c.listen, "--config", os.DevNull}
		})
		clouds = append(clouds, c)
	}
	for i, c := range clouds {
		waitServices(t, c.natsURL(), services)
		for _, s := range services {
			if status, body := get(t.Context(), t, c.health[s]); status != 200 {
				t.Errorf("cloud %d: %s: %d %s", i, s, status, body)
			}
		}
	}
	if clouds[0].natsURL() == clouds[1].natsURL() {
		t.Errorf("both clouds report the NATS server %s", clouds[0].natsURL())
	}
	for _, c := range clouds {
		if err := c.stop(); err != nil {
			t.Error(err)
		}
	}
}
