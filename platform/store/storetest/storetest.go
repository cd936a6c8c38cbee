package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"testing"
	"time"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/store"
)

// Run runs the contract suite. open must return a new, empty store for the
// test (no documents in any collection) and close it when the test ends;
// subtests run in parallel, each with its own store.
func Run(t *testing.T, open func(t *testing.T) store.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s store.Store)
	}{
		{"CreateGet", testCreateGet},
		{"PutRevisions", testPut},
		{"Delete", testDelete},
		{"IDIsAuthoritative", testIDAuthoritative},
		{"InvalidBodies", testInvalid},
		{"OddIDs", testOddIDs},
		{"Update", testUpdate},
		{"UpdateConcurrent", testUpdateConcurrent},
		{"UpdateError", testUpdateError},
		{"UpdateHonoursContext", testUpdateContext},
		{"QueryFilter", testQueryFilter},
		{"QueryOrderPaging", testQueryOrderPaging},
		{"QueryACL", testQueryACL},
		{"QuerySeesOwnWrites", testQueryOwnWrites},
		{"Watch", testWatch},
		{"CollectionsIsolated", testIsolated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, open(t))
		})
	}
}

// timeout bounds every call of the suite so that a broken adapter fails
// instead of hanging; it is not a speed requirement.
const timeout = 30 * time.Second

func ctxFor(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	return ctx
}

func collection(t *testing.T, s store.Store, kind string) store.Collection {
	t.Helper()
	c, err := s.Collection(ctxFor(t), kind)
	if err != nil {
		t.Fatalf("Collection(%q): %v", kind, err)
	}
	return c
}

// ownedBy is the ACL of a document alice owns.
var aliceACL = cimi.ACL{Owner: cimi.Owner{Principal: "alice", Type: cimi.User}}

func body(t *testing.T, fields map[string]any) json.RawMessage {
	t.Helper()
	b, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func decode(t *testing.T, b json.RawMessage) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("stored body %s is not a JSON object: %v", b, err)
	}
	return m
}

// sameJSON fails unless got holds the same attributes as want.
func sameJSON(t *testing.T, got json.RawMessage, want map[string]any) {
	t.Helper()
	var w map[string]any
	if err := json.Unmarshal(body(t, want), &w); err != nil {
		t.Fatal(err)
	}
	if g := decode(t, got); !reflect.DeepEqual(g, w) {
		t.Fatalf("body = %s, want %s", got, body(t, want))
	}
}

func create(t *testing.T, c store.Collection, id string, fields map[string]any) uint64 {
	t.Helper()
	rev, err := c.Create(ctxFor(t), id, body(t, fields))
	if err != nil {
		t.Fatalf("Create(%q): %v", id, err)
	}
	if rev == 0 {
		t.Fatalf("Create(%q) returned revision 0", id)
	}
	return rev
}

func get(t *testing.T, c store.Collection, id string) store.Document {
	t.Helper()
	d, err := c.Get(ctxFor(t), id)
	if err != nil {
		t.Fatalf("Get(%q): %v", id, err)
	}
	return d
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: error %v, want %v", what, err, want)
	}
}

func testCreateGet(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	c := collection(t, s, "Volume")
	fields := map[string]any{"id": "Volume/1", "name": "disk", "capacity": 20, "acl": aliceACL}
	rev := create(t, c, "Volume/1", fields)
	d := get(t, c, "Volume/1")
	if d.ID != "Volume/1" || d.Revision != rev {
		t.Fatalf("Get = %q rev %d, want Volume/1 rev %d", d.ID, d.Revision, rev)
	}
	sameJSON(t, d.Body, fields)

	_, err := c.Create(ctx, "Volume/1", body(t, fields))
	wantErr(t, "second Create", err, store.ErrExists)
	if d := get(t, c, "Volume/1"); d.Revision != rev {
		t.Fatalf("failed Create changed the revision: %d, was %d", d.Revision, rev)
	}
	_, err = c.Get(ctx, "Volume/missing")
	wantErr(t, "Get of a missing document", err, store.ErrNotFound)
}

func testPut(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	c := collection(t, s, "Volume")
	rev1 := create(t, c, "Volume/1", map[string]any{"id": "Volume/1", "v": 1})
	v2 := map[string]any{"id": "Volume/1", "v": 2}
	rev2, err := c.Put(ctx, "Volume/1", body(t, v2), rev1)
	if err != nil {
		t.Fatalf("Put with the current revision: %v", err)
	}
	if rev2 == 0 || rev2 == rev1 {
		t.Fatalf("Put returned revision %d after %d", rev2, rev1)
	}
	d := get(t, c, "Volume/1")
	if d.Revision != rev2 {
		t.Fatalf("Get revision %d, Put returned %d", d.Revision, rev2)
	}
	sameJSON(t, d.Body, v2)

	_, err = c.Put(ctx, "Volume/1", body(t, map[string]any{"v": 3}), rev1)
	wantErr(t, "Put with a stale revision", err, store.ErrConflict)
	_, err = c.Put(ctx, "Volume/1", body(t, map[string]any{"v": 3}), 0)
	wantErr(t, "Put with revision 0 on an existing document", err, store.ErrConflict)
	sameJSON(t, get(t, c, "Volume/1").Body, v2)

	_, err = c.Put(ctx, "Volume/missing", body(t, map[string]any{"v": 1}), rev2)
	wantErr(t, "Put of a missing document", err, store.ErrNotFound)
	_, err = c.Put(ctx, "Volume/missing", body(t, map[string]any{"v": 1}), 0)
	wantErr(t, "Put of a missing document with revision 0", err, store.ErrNotFound)
	_, err = c.Get(ctx, "Volume/missing")
	wantErr(t, "Get after a failed Put", err, store.ErrNotFound)
}

func testDelete(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	c := collection(t, s, "Volume")
	rev1 := create(t, c, "Volume/1", map[string]any{"v": 1})
	rev2, err := c.Put(ctx, "Volume/1", body(t, map[string]any{"v": 2}), rev1)
	if err != nil {
		t.Fatal(err)
	}
	wantErr(t, "Delete with a stale revision", c.Delete(ctx, "Volume/1", rev1), store.ErrConflict)
	wantErr(t, "Delete with revision 0", c.Delete(ctx, "Volume/1", 0), store.ErrConflict)
	get(t, c, "Volume/1")

	if err := c.Delete(ctx, "Volume/1", rev2); err != nil {
		t.Fatalf("Delete with the current revision: %v", err)
	}
	_, err = c.Get(ctx, "Volume/1")
	wantErr(t, "Get after Delete", err, store.ErrNotFound)
	wantErr(t, "second Delete", c.Delete(ctx, "Volume/1", rev2), store.ErrNotFound)
	wantErr(t, "Delete of a never created document", c.Delete(ctx, "Volume/never", rev2), store.ErrNotFound)
	_, err = c.Put(ctx, "Volume/1", body(t, map[string]any{"v": 3}), rev2)
	wantErr(t, "Put after Delete", err, store.ErrNotFound)

	rev3 := create(t, c, "Volume/1", map[string]any{"v": 4})
	d := get(t, c, "Volume/1")
	if d.Revision != rev3 {
		t.Fatalf("re-created document at revision %d, Create returned %d", d.Revision, rev3)
	}
	sameJSON(t, d.Body, map[string]any{"id": "Volume/1", "v": 4})
}

func testIDAuthoritative(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	c := collection(t, s, "Volume")
	create(t, c, "Volume/1", map[string]any{"id": "Volume/other", "v": 1})
	sameJSON(t, get(t, c, "Volume/1").Body, map[string]any{"id": "Volume/1", "v": 1})
	rev := create(t, c, "Volume/2", map[string]any{"v": 2})
	sameJSON(t, get(t, c, "Volume/2").Body, map[string]any{"id": "Volume/2", "v": 2})
	if _, err := c.Put(ctx, "Volume/2", json.RawMessage(`{"id":7,"v":3}`), rev); err != nil {
		t.Fatal(err)
	}
	sameJSON(t, get(t, c, "Volume/2").Body, map[string]any{"id": "Volume/2", "v": 3})
	_, err := c.Get(ctx, "Volume/other")
	wantErr(t, "Get by the id written in the body", err, store.ErrNotFound)
}

func testInvalid(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	c := collection(t, s, "Volume")
	rev := create(t, c, "Volume/1", map[string]any{"v": 1})
	for _, b := range []string{``, `null`, `[]`, `[{"id":"x"}]`, `"text"`, `42`, `true`, `{"a":`, `{"a":1}}`, `{"a":1} {"b":2}`, `not json`} {
		_, err := c.Create(ctx, "Volume/2", json.RawMessage(b))
		wantErr(t, fmt.Sprintf("Create with body %q", b), err, store.ErrInvalid)
		_, err = c.Put(ctx, "Volume/1", json.RawMessage(b), rev)
		wantErr(t, fmt.Sprintf("Put with body %q", b), err, store.ErrInvalid)
	}
	_, err := c.Get(ctx, "Volume/2")
	wantErr(t, "Get after invalid Creates", err, store.ErrNotFound)
	if d := get(t, c, "Volume/1"); d.Revision != rev {
		t.Fatalf("invalid Put changed the document to revision %d", d.Revision)
	}
	for _, id := range []string{"", string(make([]byte, store.MaxIDLength+1)), "bad\x00id", "bad\nid", "\xff\xfe"} {
		_, err := c.Create(ctx, id, body(t, map[string]any{"v": 1}))
		wantErr(t, fmt.Sprintf("Create with id %q", id), err, store.ErrInvalid)
	}
	_, err = c.Get(ctx, "")
	wantErr(t, "Get of the empty id", err, store.ErrInvalid)
}

// oddIDs are ids that are legal in CIMI but awkward for key-value stores.
var oddIDs = []string{
	"User/alice@example.org",
	"User/o'brien",
	"ServiceConfiguration/pdisk-main",
	"a.b.c",
	"..",
	".lead",
	"trail.",
	"/",
	"has space",
	"star*",
	"greater>",
	"a.*.>",
	"under_score",
	"_5F",
	"percent%41",
	"back`tick",
	"quote\"d",
	"Ünïcødé/名前",
	"emoji/🙂",
	"x=1&y=2",
	"MixedCase/ID",
}

func testOddIDs(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	c := collection(t, s, "Odd")
	acl := cimi.ACL{Owner: cimi.Owner{Principal: cimi.RoleAnon, Type: cimi.Role}}
	revs := make(map[string]uint64)
	for _, id := range oddIDs {
		revs[id] = create(t, c, id, map[string]any{"name": id, "acl": acl})
	}
	long := string(slices.Repeat([]byte("é"), store.MaxIDLength/2))
	revs[long] = create(t, c, long, map[string]any{"name": long, "acl": acl})
	for id := range revs {
		d := get(t, c, id)
		if d.ID != id || decode(t, d.Body)["name"] != id || decode(t, d.Body)["id"] != id {
			t.Fatalf("Get(%q) = %q %s", id, d.ID, d.Body)
		}
	}
	p, err := c.Query(ctx, cimi.Query{}, cimi.Identity{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range p.Docs {
		if decode(t, d.Body)["name"] != d.ID {
			t.Fatalf("Query returned %q with body %s", d.ID, d.Body)
		}
		got = append(got, d.ID)
	}
	want := append(slices.Clone(oddIDs), long)
	slices.Sort(want)
	if !slices.Equal(got, want) || p.Count != len(want) {
		t.Fatalf("Query ids = %q (count %d), want %q", got, p.Count, want)
	}
	for id, rev := range revs {
		if err := c.Delete(ctx, id, rev); err != nil {
			t.Fatalf("Delete(%q): %v", id, err)
		}
	}
	if p, err := c.Query(ctx, cimi.Query{}, cimi.Identity{}); err != nil || p.Count != 0 {
		t.Fatalf("Query after deleting all = %d docs, %v", p.Count, err)
	}
}

// increment is an UpdateFunc adding one to the "n" attribute.
func increment(cur store.Document) (json.RawMessage, error) {
	var m map[string]any
	if err := json.Unmarshal(cur.Body, &m); err != nil {
		return nil, err
	}
	n, _ := m["n"].(float64)
	m["n"] = n + 1
	return json.Marshal(m)
}

func testUpdate(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	c := collection(t, s, "Counter")
	rev := create(t, c, "Counter/1", map[string]any{"n": 0})
	d, err := c.Update(ctx, "Counter/1", increment)
	if err != nil {
		t.Fatalf("Update: %v", err)
	}
	if d.ID != "Counter/1" || d.Revision == rev || d.Revision == 0 {
		t.Fatalf("Update returned %q rev %d after rev %d", d.ID, d.Revision, rev)
	}
	sameJSON(t, d.Body, map[string]any{"id": "Counter/1", "n": 1})
	stored := get(t, c, "Counter/1")
	if stored.Revision != d.Revision {
		t.Fatalf("stored revision %d, Update returned %d", stored.Revision, d.Revision)
	}
	sameJSON(t, stored.Body, map[string]any{"id": "Counter/1", "n": 1})

	_, err = c.Update(ctx, "Counter/missing", increment)
	wantErr(t, "Update of a missing document", err, store.ErrNotFound)
	_, err = c.Update(ctx, "Counter/1", func(store.Document) (json.RawMessage, error) {
		return json.RawMessage(`[1]`), nil
	})
	wantErr(t, "Update to a non-object", err, store.ErrInvalid)
}

func testUpdateConcurrent(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	c := collection(t, s, "Counter")
	create(t, c, "Counter/1", map[string]any{"n": 0})
	const writers = 20
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for range writers {
		wg.Go(func() {
			if _, err := c.Update(ctx, "Counter/1", increment); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("concurrent Update: %v", err)
	}
	if n := decode(t, get(t, c, "Counter/1").Body)["n"]; n != float64(writers) {
		t.Fatalf("counter = %v after %d concurrent increments", n, writers)
	}
}

func testUpdateError(t *testing.T, s store.Store) {
	ctx := ctxFor(t)
	c := collection(t, s, "Counter")
	rev := create(t, c, "Counter/1", map[string]any{"n": 0})
	refused := errors.New("refused by the domain")
	calls := 0
	_, err := c.Update(ctx, "Counter/1", func(cur store.Document) (json.RawMessage, error) {
		calls++
		if cur.Revision != rev {
			t.Errorf("fn saw revision %d, want %d", cur.Revision, rev)
		}
		return json.RawMessage(`{"n":99}`), refused
	})
	if !errors.Is(err, refused) {
		t.Fatalf("Update error = %v, want the fn's error", err)
	}
	if calls != 1 {
		t.Fatalf("fn called %d times after returning an error", calls)
	}
	d := get(t, c, "Counter/1")
	if d.Revision != rev {
		t.Fatalf("failed Update wrote revision %d over %d", d.Revision, rev)
	}
	sameJSON(t, d.Body, map[string]any{"id": "Counter/1", "n": 0})
}

// testUpdateContext makes every attempt of an Update conflict (fn itself
// writes the document behind its back) and checks that Update stops when
// its context ends.
func testUpdateContext(t *testing.T, s store.Store) {
	c := collection(t, s, "Counter")
	create(t, c, "Counter/1", map[string]any{"n": 0})
	ctx, cancel := context.WithTimeout(ctxFor(t), 300*time.Millisecond)
	defer cancel()
	calls := 0
	_, err := c.Update(ctx, "Counter/1", func(cur store.Document) (json.RawMessage, error) {
		calls++
		b, err := increment(cur)
		if err != nil {
			return nil, err
		}
		if _, err := c.Put(ctxFor(t), "Counter/1", b, cur.Revision); err != nil {
			return nil, err
		}
		return b, nil
	})
	// Adapters report an ended context in their own words (a client
	// timeout, a cancellation); what matters is that Update returned.
	if err == nil || (ctx.Err() == nil && !errors.Is(err, store.ErrConflict)) {
		t.Fatalf("Update under endless conflicts = %v, want a failure once its context ends", err)
	}
	if calls < 2 {
		t.Fatalf("Update tried %d times, want retries", calls)
	}
}
