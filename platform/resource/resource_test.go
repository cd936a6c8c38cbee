package resource

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/store"
	"stratuslab.dev/platform/store/embedded"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
	"stratuslab.dev/proto/subject"
)

// TestACLMatrix checks who may read and write a Note alice owns, and one
// she shares for viewing with every signed-in user.
func TestACLMatrix(t *testing.T) {
	t.Parallel()
	e := newEnv(t, notes)
	const shared = `,"acl":{"owner":{"principal":"alice","type":"USER"},"rules":[{"principal":"::USER","type":"ROLE","right":"VIEW"}]}`
	tests := []struct {
		who    string
		actor  *commonv1.Actor
		shared bool
		op     string
		want   errs.Code // "" = allowed; for query, "" = sees it, not_found = does not
	}{
		{"owner", alice, false, "get", ""},
		{"owner", alice, false, "query", ""},
		{"owner", alice, false, "edit", ""},
		{"owner", alice, false, "delete", ""},
		{"other user", bob, false, "get", errs.NotFound},
		{"other user", bob, false, "query", errs.NotFound},
		{"other user", bob, false, "edit", errs.NotFound},
		{"other user", bob, false, "delete", errs.NotFound},
		{"admin", admin, false, "get", ""},
		{"admin", admin, false, "query", ""},
		{"admin", admin, false, "edit", ""},
		{"admin", admin, false, "delete", ""},
		{"anonymous", anon, false, "get", errs.NotFound},
		{"anonymous", anon, false, "query", errs.NotFound},
		{"anonymous", anon, false, "edit", errs.NotFound},
		{"anonymous", anon, false, "delete", errs.NotFound},
		{"viewer", bob, true, "get", ""},
		{"viewer", bob, true, "query", ""},
		{"viewer", bob, true, "edit", errs.Forbidden},
		{"viewer", bob, true, "delete", errs.Forbidden},
		{"anonymous on shared", anon, true, "get", errs.NotFound},
		{"anonymous on shared", anon, true, "query", errs.NotFound},
		{"anonymous on shared", anon, true, "edit", errs.NotFound},
		{"system", nil, false, "edit", ""},
		{"system", nil, false, "delete", ""},
	}
	for _, tt := range tests {
		t.Run(tt.who+" "+tt.op, func(t *testing.T) {
			id := newID()
			body := `{"name":"n"`
			if tt.shared {
				body += shared
			}
			if o := e.do(alice, cmd{verb: subject.VerbCimiCreate, id: id, body: body + "}"}); o.code != "" {
				t.Fatalf("create: %s %s", o.code, o.message)
			}
			var got errs.Code
			switch tt.op {
			case "get":
				_, _, got = e.get(tt.actor, id)
			case "query":
				n, docs, code := e.query(tt.actor, "Note", &commonv1.CollectionQuery{Filter: fmt.Sprintf("id='%s'", id)})
				if code != "" {
					t.Fatalf("query: %s", code)
				}
				if n != uint64(len(docs)) || n > 1 {
					t.Fatalf("query: count %d, %d documents", n, len(docs))
				}
				if n == 0 {
					got = errs.NotFound
				}
			case "edit":
				got = e.do(tt.actor, cmd{verb: subject.VerbCimiEdit, id: id, body: `{"name":"changed"}`}).code
			case "delete":
				got = e.do(tt.actor, cmd{verb: subject.VerbCimiDelete, id: id}).code
			}
			if got != tt.want {
				t.Fatalf("%s by %s: %q, want %q", tt.op, tt.who, got, tt.want)
			}
			doc := e.stored(id)
			switch {
			case tt.op == "edit" && tt.want == "" && doc["name"] != "changed":
				t.Errorf("allowed edit did not change the document: %v", doc)
			case tt.op == "edit" && tt.want != "" && doc["name"] != "n":
				t.Errorf("refused edit changed the document: %v", doc)
			case tt.op == "delete" && (tt.want == "") != (doc == nil):
				t.Errorf("delete %q, document afterwards: %v", got, doc)
			}
		})
	}
}

// TestCreate checks the attributes the provider sets and what it refuses.
func TestCreate(t *testing.T) {
	t.Parallel()
	e := newEnv(t, notes)
	fixed := time.Date(2026, 11, 21, 12, 0, 0, 123456789, time.FixedZone("CET", 3600))
	e.p.now = func() time.Time { return fixed }

	id := newID()
	body := `{"name":"n","big":12345678901234567890,"id":"Note/other","created":"2000-01-01T00:00:00Z",` +
		`"operations":[{"rel":"edit","href":"x"}],"_command":"forged","_secret":1}`
	o := e.do(alice, cmd{verb: subject.VerbCimiCreate, id: id, body: body})
	if o.code != "" {
		t.Fatalf("create: %s %s", o.code, o.message)
	}
	if len(o.affected) != 1 || o.affected[0] != id || o.message != id+" created." {
		t.Errorf("result: affected %v, message %q", o.affected, o.message)
	}
	doc, rev, code := e.get(alice, id)
	if code != "" {
		t.Fatal(code)
	}
	want := map[string]any{
		"id": id, "resourceURI": cimi.DMTFNamespace + "Note", "name": "n", "big": 12345678901234567890.0,
		"created": "2026-11-21T11:00:00.123Z", "updated": "2026-11-21T11:00:00.123Z",
	}
	for k, v := range want {
		if doc[k] != v {
			t.Errorf("%s = %v, want %v", k, doc[k], v)
		}
	}
	for _, k := range []string{"operations", "_command", "_secret"} {
		if _, ok := doc[k]; ok {
			t.Errorf("%s returned: %v", k, doc[k])
		}
	}
	if rev == 0 {
		t.Error("no revision returned")
	}
	if acl := aclOf(doc); !sameACL(acl, cimi.OwnedBy(IdentityOf(alice))) {
		t.Errorf("acl %+v, want the creator's", acl)
	}
	st := e.stored(id)
	if st["_command"] != o.id || st["_secret"] != nil || st["operations"] != nil {
		t.Errorf("stored %v", st)
	}
	if raw := e.storedRaw(id); !strings.Contains(raw, "12345678901234567890") {
		t.Errorf("a large integer lost digits: %s", raw)
	}
	ch := e.changes(o.id)
	if len(ch) != 1 || ch[0].Kind != "Note" || ch[0].Id != id || !strings.Contains(string(ch[0].Json), `"name":"n"`) ||
		strings.Contains(string(ch[0].Json), "_command") {
		t.Errorf("events %v", ch)
	}
	if ev := e.eventOf(o.id); ev == nil || ev.Subject() != "evt.test.note.created" || ev.Actor().GetUser() != "alice" {
		t.Errorf("event %v", ev)
	}

	refusals := []struct {
		name  string
		actor *commonv1.Actor
		id    string
		body  string
		code  errs.Code
	}{
		{"anonymous may not create", anon, newID(), `{}`, errs.Forbidden},
		{"array body", alice, newID(), `[1]`, errs.Invalid},
		{"null body", alice, newID(), `null`, errs.Invalid},
		{"empty body", alice, newID(), ``, errs.Invalid},
		{"trailing data", alice, newID(), `{} {}`, errs.Invalid},
		{"id of another kind", alice, "Other/1", `{}`, errs.Invalid},
		{"malformed id", alice, "Note/a b", `{}`, errs.Invalid},
		{"bad acl", alice, newID(), `{"acl":{"owner":{"principal":"bob"}}}`, errs.Invalid},
		{"bad right", alice, newID(), `{"acl":{"owner":{"principal":"bob","type":"USER"},"rules":[{"principal":"x","type":"USER","right":"OWN"}]}}`, errs.Invalid},
		{"existing id", alice, id, `{}`, errs.Conflict},
	}
	for _, tt := range refusals {
		o := e.do(tt.actor, cmd{verb: subject.VerbCimiCreate, id: tt.id, body: tt.body, kind: "Note"})
		if o.code != tt.code {
			t.Errorf("%s: %q (%s), want %q", tt.name, o.code, o.message, tt.code)
		}
		if tt.code == errs.Conflict && o.message != id+" already exists." {
			t.Errorf("%s: message %q", tt.name, o.message)
		}
	}
	if n, _, _ := e.query(admin, "Note", nil); n != 1 {
		t.Errorf("refused creates left %d documents, want 1", n)
	}

	// A valid acl in the body is kept when it leaves the creator ALL.
	id2 := newID()
	o = e.do(alice, cmd{verb: subject.VerbCimiCreate, id: id2, body: `{"acl":{"owner":{"principal":"alice","type":"USER"},"rules":[{"principal":"bob","type":"USER","right":"VIEW"}]}}`})
	if o.code != "" {
		t.Fatal(o.code, o.message)
	}
	if _, _, code := e.get(bob, id2); code != "" {
		t.Errorf("bob, given VIEW, cannot read: %s", code)
	}
	if o := e.do(alice, cmd{verb: subject.VerbCimiCreate, id: newID(), body: `{"acl":{"owner":{"principal":"bob","type":"USER"}}}`}); o.code != errs.Forbidden {
		t.Errorf("alice giving a new Note away: %s", o.code)
	}
	id3 := newID()
	o = e.do(admin, cmd{verb: subject.VerbCimiCreate, id: id3, body: `{"acl":{"owner":{"principal":"bob","type":"USER"}}}`})
	if _, _, code := e.get(bob, id3); o.code != "" || code != "" {
		t.Errorf("an administrator creating a Note for bob: %s, bob reads: %s", o.code, code)
	}
}

// TestHooks checks that New, DefaultACL, View, Change, Remove, Actions and
// Changed are called and obeyed.
func TestHooks(t *testing.T) {
	t.Parallel()
	var changed atomic.Int32
	e := newEnv(t, func(coll store.Collection) []Kind {
		return []Kind{{
			Name:       "Note",
			Collection: coll,
			CanCreate:  func(who cimi.Identity) bool { return who.IsAdmin() },
			New: func(_ context.Context, _ cimi.Identity, id string, body map[string]any) (map[string]any, error) {
				if body["name"] == nil {
					return nil, errs.Errorf(errs.Invalid, "A Note needs a name.")
				}
				body["secret"] = "s3cret"
				body["_hidden"] = "dropped"
				return body, nil
			},
			DefaultACL: func(cimi.Identity, string, map[string]any) cimi.ACL {
				return cimi.ACL{Owner: cimi.Owner{Principal: cimi.RoleAdmin, Type: cimi.Role},
					Rules: []cimi.Rule{{Principal: cimi.RoleAnon, Type: cimi.Role, Right: cimi.View}}}
			},
			View: func(who cimi.Identity, doc map[string]any) map[string]any {
				if !who.IsAdmin() {
					delete(doc, "secret")
				}
				return doc
			},
			Change: func(_ context.Context, _ cimi.Identity, current, body map[string]any, _ []string) (map[string]any, error) {
				current["name"] = strings.ToUpper(fmt.Sprint(body["name"]))
				return current, nil
			},
			Remove: func(_ context.Context, _ cimi.Identity, current map[string]any) error {
				if current["name"] == "KEEP" {
					return errs.Errorf(errs.Conflict, "This Note is kept.")
				}
				return nil
			},
			Actions: map[string]func(context.Context, cimi.Identity, map[string]any, map[string]any) (map[string]any, error){
				"count": func(_ context.Context, _ cimi.Identity, current, body map[string]any) (map[string]any, error) {
					n, _ := current["count"].(float64)
					if v, ok := current["count"].(interface{ Float64() (float64, error) }); ok {
						n, _ = v.Float64()
					}
					current["count"] = n + 1
					return current, nil
				},
			},
			Changed: func(_ context.Context, _ cimi.Identity, before, after map[string]any) error {
				if _, ok := before["_command"]; ok {
					return errors.New("hidden attribute given to Changed")
				}
				changed.Add(1)
				return nil
			},
		}}
	})
	id := newID()
	if o := e.do(admin, cmd{verb: subject.VerbCimiCreate, id: id, body: `{}`}); o.code != errs.Invalid || o.message != "A Note needs a name." {
		t.Errorf("New refusal: %s %q", o.code, o.message)
	}
	if o := e.do(alice, cmd{verb: subject.VerbCimiCreate, id: id, body: `{"name":"x"}`}); o.code != errs.Forbidden {
		t.Errorf("CanCreate refusal: %s", o.code)
	}
	if o := e.do(admin, cmd{verb: subject.VerbCimiCreate, id: id, body: `{"name":"keep"}`}); o.code != "" {
		t.Fatal(o.code, o.message)
	}
	if st := e.stored(id); st["secret"] != "s3cret" || st["_hidden"] != nil {
		t.Errorf("stored %v", st)
	}
	doc, _, code := e.get(anon, id)
	if code != "" || doc["secret"] != nil || doc["name"] != "keep" {
		t.Errorf("anonymous reads %v (%s): DefaultACL or View not applied", doc, code)
	}
	if _, docs, _ := e.query(anon, "Note", nil); len(docs) != 1 || docs[0]["secret"] != nil {
		t.Errorf("anonymous query %v", docs)
	}
	if doc, _, _ := e.get(admin, id); doc["secret"] != "s3cret" {
		t.Errorf("admin reads %v", doc)
	}
	if o := e.do(admin, cmd{verb: subject.VerbCimiEdit, id: id, body: `{"name":"keep"}`}); o.code != "" {
		t.Fatal(o.code, o.message)
	}
	if st := e.stored(id); st["name"] != "KEEP" || st["secret"] != "s3cret" {
		t.Errorf("Change not applied: %v", st)
	}
	if o := e.do(admin, cmd{verb: subject.VerbCimiDelete, id: id}); o.code != errs.Conflict {
		t.Errorf("Remove refusal: %s", o.code)
	}
	for range 2 {
		if o := e.do(admin, cmd{verb: subject.CimiAction("count"), id: id}); o.code != "" {
			t.Fatal(o.code, o.message)
		}
	}
	if st := e.stored(id); st["count"] != 2.0 {
		t.Errorf("after two counts: %v", st["count"])
	}
	if o := e.do(admin, cmd{verb: subject.CimiAction("explode"), id: id}); o.code != errs.Invalid || !strings.Contains(o.message, "accepts count") {
		t.Errorf("unknown action: %s %q", o.code, o.message)
	}
	if o := e.do(bob, cmd{verb: subject.CimiAction("count"), id: id}); o.code != errs.Forbidden {
		t.Errorf("action by a viewer: %s", o.code)
	}
	if o := e.do(admin, cmd{verb: subject.VerbCimiEdit, id: id, body: `{"name":"gone"}`}); o.code != "" {
		t.Fatal(o.code, o.message)
	}
	if o := e.do(admin, cmd{verb: subject.VerbCimiDelete, id: id}); o.code != "" {
		t.Fatal(o.code, o.message)
	}
	// create, edit, 2 counts, edit, delete
	if n := changed.Load(); n != 6 {
		t.Errorf("Changed ran %d times, want 6", n)
	}
}

// TestEdit checks the generic replace, $select, revisions and acl changes.
func TestEdit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, notes)
	id := newID()
	if o := e.do(alice, cmd{verb: subject.VerbCimiCreate, id: id, body: `{"name":"n","description":"d","tags":["a"]}`}); o.code != "" {
		t.Fatal(o.code, o.message)
	}
	before, rev, _ := e.get(alice, id)
	later := time.Now().Add(time.Hour)
	e.p.now = func() time.Time { return later }

	// Replace all: attributes absent from the body go, server-set ones stay.
	o := e.do(alice, cmd{verb: subject.VerbCimiEdit, id: id, ifRevision: rev,
		body: `{"name":"n2","created":"1999-01-01T00:00:00Z","resourceURI":"x","id":"Note/x","operations":[]}`})
	if o.code != "" {
		t.Fatal(o.code, o.message)
	}
	doc, rev2, _ := e.get(alice, id)
	if doc["name"] != "n2" || doc["description"] != nil || doc["tags"] != nil || doc["created"] != before["created"] ||
		doc["resourceURI"] != before["resourceURI"] || doc["id"] != id || doc["operations"] != nil || doc["acl"] == nil {
		t.Errorf("after replace: %v", doc)
	}
	if doc["updated"] != timestamp(later) {
		t.Errorf("updated %v, want %s", doc["updated"], timestamp(later))
	}
	if rev2 == rev {
		t.Error("revision unchanged")
	}
	if ch := e.changes(o.id); len(ch) != 1 || e.eventOf(o.id).Subject() != "evt.test.note.updated" {
		t.Errorf("events %v", ch)
	}

	// $select replaces only the listed attributes; one absent from the body goes.
	if o := e.do(alice, cmd{verb: subject.VerbCimiEdit, id: id, selects: []string{"description", "name"}, body: `{"description":"d2","other":1}`}); o.code != "" {
		t.Fatal(o.code, o.message)
	}
	doc, _, _ = e.get(alice, id)
	if doc["description"] != "d2" || doc["other"] != nil || doc["name"] != nil {
		t.Errorf("after $select edit: %v", doc)
	}

	tests := []struct {
		name  string
		actor *commonv1.Actor
		c     cmd
		code  errs.Code
	}{
		{"stale revision", alice, cmd{ifRevision: rev, body: `{"name":"x"}`}, errs.RevisionConflict},
		{"not an object", alice, cmd{body: `"x"`}, errs.Invalid},
		{"bad acl", alice, cmd{body: `{"acl":{"owner":{"principal":"","type":"USER"}}}`}, errs.Invalid},
		{"missing", alice, cmd{id: newID(), body: `{}`}, errs.NotFound},
	}
	for _, tt := range tests {
		if tt.c.id == "" {
			tt.c.id = id
		}
		tt.c.verb = subject.VerbCimiEdit
		if o := e.do(tt.actor, tt.c); o.code != tt.code {
			t.Errorf("%s: %q (%s), want %q", tt.name, o.code, o.message, tt.code)
		}
	}

	// Sharing with bob for MODIFY: he may edit, and send the acl back
	// unchanged, but not change it.
	share := `"acl":{"owner":{"principal":"alice","type":"USER"},"rules":[{"principal":"bob","type":"USER","right":"MODIFY"}]}`
	if o := e.do(alice, cmd{verb: subject.VerbCimiEdit, id: id, body: `{"name":"shared",` + share + `}`}); o.code != "" {
		t.Fatal(o.code, o.message)
	}
	if o := e.do(bob, cmd{verb: subject.VerbCimiEdit, id: id, body: `{"name":"by bob",` + share + `}`}); o.code != "" {
		t.Errorf("bob's edit with the same acl: %s %s", o.code, o.message)
	}
	grab := `"acl":{"owner":{"principal":"bob","type":"USER"}}`
	if o := e.do(bob, cmd{verb: subject.VerbCimiEdit, id: id, body: `{"name":"mine",` + grab + `}`}); o.code != errs.Forbidden {
		t.Errorf("bob taking ownership: %s, want forbidden", o.code)
	}
	if doc := e.stored(id); doc["name"] != "by bob" || aclOf(doc).Owner.Principal != "alice" {
		t.Errorf("after refused acl change: %v", doc)
	}
}

// TestQuery checks filters, ordering, paging, $select and refusals.
func TestQuery(t *testing.T) {
	t.Parallel()
	e := newEnv(t, notes)
	for i := range 5 {
		body := fmt.Sprintf(`{"name":"n%d","size":%d}`, i, i)
		if o := e.do(alice, cmd{verb: subject.VerbCimiCreate, id: fmt.Sprintf("Note/%d", i), body: body}); o.code != "" {
			t.Fatal(o.code, o.message)
		}
	}
	if o := e.do(bob, cmd{verb: subject.VerbCimiCreate, id: "Note/bob", body: `{"name":"b","size":9}`}); o.code != "" {
		t.Fatal(o.code, o.message)
	}
	tests := []struct {
		name  string
		actor *commonv1.Actor
		kind  string
		q     *commonv1.CollectionQuery
		count uint64
		names []string
		code  errs.Code
	}{
		{"everything alice sees", alice, "Note", &commonv1.CollectionQuery{OrderBy: []string{"size:desc"}}, 5, []string{"n4", "n3", "n2", "n1", "n0"}, ""},
		{"admin sees all", admin, "Note", &commonv1.CollectionQuery{OrderBy: []string{"name"}}, 6, []string{"b", "n0", "n1", "n2", "n3", "n4"}, ""},
		{"filter", alice, "Note", &commonv1.CollectionQuery{Filter: "size>=3", OrderBy: []string{"size"}}, 2, []string{"n3", "n4"}, ""},
		{"page", alice, "Note", &commonv1.CollectionQuery{OrderBy: []string{"size"}, First: 2, Last: 3}, 5, []string{"n1", "n2"}, ""},
		{"anonymous", anon, "Note", nil, 0, nil, ""},
		{"bad filter", alice, "Note", &commonv1.CollectionQuery{Filter: "size >>> 1"}, 0, nil, errs.BadFilter},
		{"bad order", alice, "Note", &commonv1.CollectionQuery{OrderBy: []string{"a b"}}, 0, nil, errs.BadFilter},
		{"last before first", alice, "Note", &commonv1.CollectionQuery{First: 3, Last: 2}, 0, nil, errs.BadFilter},
		{"hidden filter", alice, "Note", &commonv1.CollectionQuery{Filter: "name='x' or _command!='x'"}, 0, nil, errs.BadFilter},
		{"hidden order", alice, "Note", &commonv1.CollectionQuery{OrderBy: []string{"_command"}}, 0, nil, errs.BadFilter},
		{"unknown kind", alice, "Volume", nil, 0, nil, errs.NotFound},
	}
	for _, tt := range tests {
		count, docs, code := e.query(tt.actor, tt.kind, tt.q)
		if code != tt.code {
			t.Errorf("%s: code %q, want %q", tt.name, code, tt.code)
			continue
		}
		var names []string
		for _, d := range docs {
			names = append(names, fmt.Sprint(d["name"]))
		}
		if count != tt.count || fmt.Sprint(names) != fmt.Sprint(tt.names) {
			t.Errorf("%s: count %d names %v, want %d %v", tt.name, count, names, tt.count, tt.names)
		}
	}
	_, docs, _ := e.query(alice, "Note", &commonv1.CollectionQuery{Filter: "size=1", Select: []string{"size"}})
	if len(docs) != 1 || len(docs[0]) != 3 || docs[0]["id"] != "Note/1" || docs[0]["size"] != 1.0 || docs[0]["resourceURI"] == nil {
		t.Errorf("$select: %v", docs)
	}
	// In process, as the endpoints call them.
	doc, _, err := e.p.Get(context.Background(), IdentityOf(bob), "Note/1")
	if errs.CodeOf(err) != errs.NotFound || doc != nil || errs.MessageOf(err) != "Note/1 does not exist or you may not see it." {
		t.Errorf("Get by bob: %v %v", doc, err)
	}
	if _, _, err := e.p.Get(context.Background(), IdentityOf(alice), "Thing/1"); errs.CodeOf(err) != errs.NotFound {
		t.Errorf("Get of an unknown kind: %v", err)
	}
}

// TestIdempotency checks redelivered commands (a crash after the work,
// before the acknowledgement) and commands that collide.
func TestIdempotency(t *testing.T) {
	t.Parallel()
	var failChanged atomic.Bool
	var changedCalls atomic.Int32
	e := newEnv(t, func(coll store.Collection) []Kind {
		k := notes(coll)
		k[0].Changed = func(context.Context, cimi.Identity, map[string]any, map[string]any) error {
			changedCalls.Add(1)
			if failChanged.CompareAndSwap(true, false) {
				return errors.New("the session store is unreachable")
			}
			return nil
		}
		return k
	})
	id := newID()
	create := e.do(alice, cmd{verb: subject.VerbCimiCreate, id: id, body: `{"name":"n"}`, crash: true})
	if create.code != "" {
		t.Fatalf("redelivered create: %s %s", create.code, create.message)
	}
	if n := len(e.changes(create.id)); n != 1 {
		t.Errorf("redelivered create: %d change events, want 1", n)
	}
	if n := changedCalls.Load(); n != 2 {
		t.Errorf("Changed ran %d times over two deliveries, want 2", n)
	}
	if o := e.do(alice, cmd{verb: subject.VerbCimiCreate, id: id, body: `{"name":"n"}`}); o.code != errs.Conflict {
		t.Errorf("second create of one id: %s", o.code)
	}

	_, rev, _ := e.get(alice, id)
	edit := e.do(alice, cmd{verb: subject.VerbCimiEdit, id: id, body: `{"name":"e"}`, ifRevision: rev, crash: true})
	if edit.code != "" {
		t.Fatalf("redelivered edit with a revision: %s %s", edit.code, edit.message)
	}
	if n := len(e.changes(edit.id)); n != 1 {
		t.Errorf("redelivered edit: %d change events", n)
	}

	action := e.do(alice, cmd{verb: subject.VerbCimiEdit, id: id, body: `{"name":"f"}`})
	if action.code != "" {
		t.Fatal(action.code, action.message)
	}

	failChanged.Store(true)
	retried := e.do(alice, cmd{verb: subject.VerbCimiEdit, id: id, body: `{"name":"g"}`})
	if retried.code != "" || e.stored(id)["name"] != "g" {
		t.Errorf("edit whose Changed failed once: %s %s", retried.code, retried.message)
	}

	del := e.do(alice, cmd{verb: subject.VerbCimiDelete, id: id, crash: true})
	if del.code != "" {
		t.Fatalf("redelivered delete: %s %s", del.code, del.message)
	}
	if ch := e.changes(del.id); len(ch) != 1 || len(ch[0].Json) != 0 || e.eventOf(del.id).Subject() != "evt.test.note.deleted" {
		t.Errorf("redelivered delete: events %v", ch)
	}
	if o := e.do(alice, cmd{verb: subject.VerbCimiDelete, id: id}); o.code != errs.NotFound {
		t.Errorf("delete of a missing resource: %s", o.code)
	}
}

// TestNewRefusesBadKinds checks the provider's own configuration.
func TestNewRefusesBadKinds(t *testing.T) {
	t.Parallel()
	var coll store.Collection = fakeCollection{}
	tests := []struct {
		name    string
		service string
		kinds   []Kind
	}{
		{"bad service", "a.b", nil},
		{"bad kind", "s", []Kind{{Name: "note", Collection: coll}}},
		{"no collection", "s", []Kind{{Name: "Note"}}},
		{"twice", "s", []Kind{{Name: "Note", Collection: coll}, {Name: "Note", Collection: coll}}},
		{"reserved action", "s", []Kind{{Name: "Note", Collection: coll, Actions: map[string]func(context.Context, cimi.Identity, map[string]any, map[string]any) (map[string]any, error){"delete": nil}}}},
	}
	for _, tt := range tests {
		if _, err := New(nil, tt.service, quiet(), tt.kinds...); err == nil {
			t.Errorf("%s: accepted", tt.name)
		}
	}
	p, err := New(nil, "s", quiet(), Kind{Name: "ServiceMessage", Collection: coll}, Kind{Name: "Job", Collection: coll, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(p.Subjects()); got != "[cmd.s.service_message.*]" {
		t.Errorf("subjects %s", got)
	}
	if !p.Owns("cmd.s.service_message.cimi_create") || p.Owns("cmd.s.job.cimi_create") || p.Owns("cmd.s.service_message.create") {
		t.Error("Owns is wrong")
	}
}

// fakeCollection stands for a collection where none is used.
type fakeCollection struct{ store.Collection }

// TestRefuse: a kind words the refusals of writes by who lacks MODIFY,
// visible or not; without a wording the defaults stay (not_found when
// invisible, forbidden otherwise).
func TestRefuse(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(coll store.Collection) []Kind {
		return []Kind{{
			Name: "Note", Collection: coll,
			CanCreate: func(who cimi.Identity) bool { return who.User != "" },
			Refuse: func(_ cimi.Identity, op string, visible bool) error {
				if op == "action" {
					return nil
				}
				return errs.Errorf(errs.Forbidden, "Not enough rights to %s note (visible %v).", op, visible)
			},
			Actions: map[string]func(context.Context, cimi.Identity, map[string]any, map[string]any) (map[string]any, error){
				"touch": func(_ context.Context, _ cimi.Identity, current, _ map[string]any) (map[string]any, error) {
					return current, nil
				},
			},
		}}
	})
	private := newID()
	if o := e.do(alice, cmd{verb: subject.VerbCimiCreate, id: private, body: `{"name": "mine"}`}); o.code != "" {
		t.Fatalf("create: %+v", o)
	}
	public := newID()
	acl := `{"owner": {"principal": "alice", "type": "USER"}, "rules": [{"principal": "::USER", "type": "ROLE", "right": "VIEW"}]}`
	if o := e.do(alice, cmd{verb: subject.VerbCimiCreate, id: public, body: `{"name": "ours", "acl": ` + acl + `}`}); o.code != "" {
		t.Fatalf("create: %+v", o)
	}
	for _, tt := range []struct {
		verb, id string
		code     errs.Code
		message  string
	}{
		{subject.VerbCimiDelete, private, errs.Forbidden, "Not enough rights to delete note (visible false)."},
		{subject.VerbCimiDelete, public, errs.Forbidden, "Not enough rights to delete note (visible true)."},
		{subject.VerbCimiEdit, public, errs.Forbidden, "Not enough rights to edit note (visible true)."},
		{subject.VerbCimiEdit, private, errs.Forbidden, "Not enough rights to edit note (visible false)."},
		{"cimi_touch", private, errs.NotFound, ""},
		{"cimi_touch", public, errs.Forbidden, ""},
	} {
		o := e.do(bob, cmd{verb: tt.verb, id: tt.id, body: `{"name": "theirs"}`})
		if o.code != tt.code || (tt.message != "" && o.message != tt.message) {
			t.Errorf("bob %s %s: %s %q, want %s %q", tt.verb, tt.id, o.code, o.message, tt.code, tt.message)
		}
	}
}

// TestCheckID: a malformed id is refused as invalid before any read or
// write, whatever the operation.
func TestCheckID(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(coll store.Collection) []Kind {
		return []Kind{{
			Name: "Note", Collection: coll,
			CanCreate: func(who cimi.Identity) bool { return who.User != "" },
			CheckID: func(local string) error {
				if strings.HasPrefix(local, "bad") {
					return errs.Errorf(errs.Invalid, "%q is not a note id.", local)
				}
				return nil
			},
		}}
	})
	for _, verb := range []string{subject.VerbCimiCreate, subject.VerbCimiEdit, subject.VerbCimiDelete} {
		if o := e.do(alice, cmd{verb: verb, id: "Note/bad-1", body: `{"name": "x"}`}); o.code != errs.Invalid || !strings.Contains(o.message, "not a note id") {
			t.Errorf("%s of a bad id: %+v", verb, o)
		}
	}
	if _, _, err := e.p.Get(context.Background(), cimi.Identity{User: "alice"}, "Note/bad-2"); errs.CodeOf(err) != errs.Invalid {
		t.Errorf("get of a bad id: %v", err)
	}
	if _, _, err := e.p.Get(context.Background(), cimi.Identity{User: "alice"}, "Note/good"); errs.CodeOf(err) != errs.NotFound {
		t.Errorf("get of a good id that does not exist: %v", err)
	}
}

// TestSoftDelete: a kind whose deletes keep a document edits it instead,
// with the rights of a delete.
func TestSoftDelete(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(coll store.Collection) []Kind {
		return []Kind{{
			Name: "Note", Collection: coll,
			CanCreate: func(who cimi.Identity) bool { return who.User != "" },
			SoftDelete: func(_ context.Context, _ cimi.Identity, current map[string]any) (map[string]any, error) {
				current["state"] = "DONE"
				return current, nil
			},
		}}
	})
	id := newID()
	if o := e.do(alice, cmd{verb: subject.VerbCimiCreate, id: id, body: `{"name": "n"}`}); o.code != "" {
		t.Fatalf("create: %+v", o)
	}
	if o := e.do(bob, cmd{verb: subject.VerbCimiDelete, id: id}); o.code != errs.NotFound {
		t.Errorf("bob deletes alice's note: %+v", o)
	}
	if o := e.do(alice, cmd{verb: subject.VerbCimiDelete, id: id}); o.code != "" {
		t.Fatalf("delete: %+v", o)
	}
	doc, _, err := e.p.Get(context.Background(), cimi.Identity{User: "alice"}, id)
	if err != nil || doc["state"] != "DONE" {
		t.Errorf("after a soft delete: %v %v", doc, err)
	}
}

// TestWritesReadFresh: an action decides from the state another replica
// wrote a moment before, not from this replica's index, which may not
// have it yet: a machine just made Running by one scheduler takes a
// volume through another.
func TestWritesReadFresh(t *testing.T) {
	t.Parallel()
	e := newEnv(t, func(coll store.Collection) []Kind {
		return []Kind{{Name: "Note", Collection: coll, CanCreate: func(who cimi.Identity) bool { return who.IsAdmin() },
			Actions: map[string]func(context.Context, cimi.Identity, map[string]any, map[string]any) (map[string]any, error){
				"use": func(_ context.Context, _ cimi.Identity, current, _ map[string]any) (map[string]any, error) {
					if current["state"] != "on" {
						return nil, errs.Errorf(errs.Conflict, "The note is %v; only an on note is used.", current["state"])
					}
					current["state"] = "off"
					return current, nil
				},
			},
		}}
	})
	other, err := embedded.Open(context.Background(), e.js, service, embedded.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = other.Close() })
	replica, err := other.Collection(context.Background(), "Note")
	if err != nil {
		t.Fatal(err)
	}
	id := newID()
	if o := e.do(admin, cmd{verb: subject.VerbCimiCreate, id: id, body: `{"state":"off"}`}); o.code != "" {
		t.Fatalf("create: %+v", o)
	}
	for i := range 30 {
		// The other replica turns the note on.
		if _, err := replica.Update(context.Background(), id, func(cur store.Document) (json.RawMessage, error) {
			var doc map[string]any
			if err := json.Unmarshal(cur.Body, &doc); err != nil {
				return nil, err
			}
			doc["state"] = "on"
			return json.Marshal(doc)
		}); err != nil {
			t.Fatal(err)
		}
		if o := e.do(admin, cmd{verb: subject.CimiAction("use"), id: id}); o.code != "" {
			t.Fatalf("use %d, right after the other replica's write: %s %s", i, o.code, o.message)
		}
	}
}
