package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"stratuslab.dev/client/sdk"
	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/cimi"
	cimiv1 "stratuslab.dev/proto/stratus/cimi/v1"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
	"stratuslab.dev/proto/subject"
)

// TestVolumesConvergeAfterKill kills the all-in-one with SIGKILL while
// pdisk creates and deletes volumes, restarts it, and checks that storage
// and documents converge: every document names existing storage and every
// stored volume has its document, once the redelivered commands and the
// reconciler have run.
func TestVolumesConvergeAfterKill(t *testing.T) {
	c := newCloud(t)
	c.start()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	base := strings.TrimSuffix(c.endpoint, "/cimi/cloudEntryPoint")
	admin := sdk.New(base, sdk.WithBasicAuth("admin", adminPassword(t, c)))
	waitAdmin(ctx, t, admin)
	create(ctx, t, admin, "ServiceConfiguration", map[string]any{"service": "pdisk", "reconcile-every": "1s", "orphan-grace": "1s"})

	// 100 volumes to delete during the burst.
	var doomed []string
	for range 100 {
		doomed = append(doomed, create(ctx, t, admin, "Volume", map[string]any{"size": 1, "tag": "doomed"}))
	}

	nc := connect(t, c.natsURL())
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	b := bus.New(nc, js, bus.Options{Service: "e2e"})
	actor := &commonv1.Actor{User: "admin", Roles: []string{cimi.RoleAdmin}}
	var done sync.WaitGroup
	var mu sync.Mutex
	completed := 0
	sub, err := nc.Subscribe("evt.pdisk.volume.>", func(m *nats.Msg) {
		if strings.HasSuffix(m.Subject, "_completed") {
			mu.Lock()
			completed++
			mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	send := func(verb, id, body string) {
		meta := &commonv1.Meta{CommandId: uuid.NewString(), Actor: actor}
		rc := &cimiv1.ResourceCommand{Meta: meta, Kind: "Volume", Id: id, Body: []byte(body)}
		_ = b.Send(ctx, subject.CimiCommand(subject.Pdisk, subject.ResourceVolume, verb), meta, rc)
	}
	for w := range 4 {
		done.Go(func() {
			for i := w; i < 400; i += 4 {
				if i%4 == 0 && i/4 < len(doomed) {
					send(subject.VerbCimiDelete, doomed[i/4], "")
					continue
				}
				send(subject.VerbCimiCreate, "Volume/"+uuid.NewString(), `{"size": 1, "tag": "burst"}`)
			}
		})
	}
	for ctx.Err() == nil {
		mu.Lock()
		n := completed
		mu.Unlock()
		if n >= 60 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	c.kill()
	_ = sub.Unsubscribe()
	done.Wait()
	nc.Close()

	c.start()
	nc = connect(t, c.natsURL())
	js, err = jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	waitQueueEmpty(ctx, t, js)
	admin = sdk.New(base, sdk.WithBasicAuth("admin", adminPassword(t, c)))
	waitAdmin(ctx, t, admin)
	dir := filepath.Join(c.dataDir, "pdisk", "volumes")
	var docs, files []string
	converged := func() bool {
		docs, files = nil, nil
		for raw, err := range admin.QueryAll(ctx, "Volume", sdk.Query{}, 500) {
			if err != nil {
				return false
			}
			var v struct {
				UUID string `json:"uuid"`
			}
			if json.Unmarshal(raw, &v) != nil {
				return false
			}
			docs = append(docs, v.UUID)
		}
		entries, err := os.ReadDir(dir)
		if err != nil {
			return false
		}
		for _, e := range entries {
			if name, ok := strings.CutSuffix(e.Name(), ".qcow2"); ok && !strings.HasPrefix(name, ".") {
				files = append(files, name)
			}
		}
		slices.Sort(docs)
		slices.Sort(files)
		return slices.Equal(docs, files)
	}
	deadline := time.Now().Add(time.Minute)
	for !converged() {
		if time.Now().After(deadline) {
			t.Fatalf("documents and storage still disagree a minute after the restart: %d documents, %d files\nonly documents: %v\nonly files: %v\nstderr:\n%s",
				len(docs), len(files), minus(docs, files), minus(files, docs), c.stderr)
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Logf("converged: %d volumes with storage and documents", len(docs))
	if err := c.stop(); err != nil {
		t.Fatal(err)
	}
}

// minus lists what a holds and b does not.
func minus(a, b []string) []string {
	var out []string
	for _, s := range a {
		if !slices.Contains(b, s) {
			out = append(out, s)
		}
	}
	return out
}
