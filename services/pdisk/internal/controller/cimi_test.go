package controller_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/uuid"

	"stratuslab.dev/platform/errs"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
	volumev1 "stratuslab.dev/proto/stratus/volume/v1"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/pdisk/internal/backend"
	"stratuslab.dev/services/pdisk/internal/volume"
)

// aclJSON is the stored form of the ACL of a user's volume.
func aclJSON(t *testing.T, owner, visibility string) string {
	t.Helper()
	b, err := json.Marshal(volume.ACLFor(owner, visibility))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func sameACL(t *testing.T, got json.RawMessage, owner, visibility string) bool {
	t.Helper()
	var a, b any
	if err := json.Unmarshal(got, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal([]byte(aclJSON(t, owner, visibility)), &b); err != nil {
		t.Fatal(err)
	}
	x, _ := json.Marshal(a)
	y, _ := json.Marshal(b)
	return string(x) == string(y)
}

func TestCIMICreateEditDelete(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	id := e.create(alice, `{"size": 2, "tag": "HELLO", "description": "first disk", "visibility": "PRIVATE"}`)

	// The storage, of the size asked for.
	bv, ok := e.storage(id)
	if !ok || bv.Size != 2*backend.GiB || bv.Origin != "" {
		t.Fatalf("storage of %s: %+v, %v; want a standalone volume of 2 GiB", id, bv, ok)
	}
	// The document.
	v := e.mustDoc(id)
	if v.ID != volume.ID(id) || v.UUID != id || v.Owner != "alice" || v.Size != 2 || v.Capacity != 2<<20 ||
		v.Visibility != volume.Private || v.Type != volume.DataImageRawReadWrite || v.State != volume.Available ||
		v.Tag != "HELLO" || v.Description != "first disk" || v.Count != 0 || v.Backend != "qcow2" || v.Format != "qcow2" ||
		v.Path == "" || v.TURL != "file://"+v.Path || v.Created == "" || v.ResourceURI == "" {
		t.Errorf("document of %s: %+v", id, v)
	}
	if !sameACL(t, v.ACL, "alice", volume.Private) {
		t.Errorf("acl of %s: %s; want %s", id, v.ACL, aclJSON(t, "alice", volume.Private))
	}
	// One usage event, and the quota ledger counts it.
	created := e.usageOf(id, subject.EvtVolumeCreated)
	if len(created) != 1 || created[0].owner != "alice" || created[0].size != 2 {
		t.Errorf("VolumeCreated events of %s: %+v", id, created)
	}
	if got := e.ledger("alice"); len(got) != 1 || got[id] != 2 {
		t.Errorf("alice's ledger: %v; want %s: 2", got, id)
	}

	// The CIMI VolumeCreate form: a capacity in KiB.
	tmpl := e.create(alice, `{"name": "from a template", "volumeTemplate": {"volumeConfig": {"capacity": 1048576}}}`)
	if v := e.mustDoc(tmpl); v.Size != 1 || v.Name != "from a template" {
		t.Errorf("volume from a template: %+v", v)
	}

	// Private: bob does not see it.
	if _, code := e.get(bob, id); code != errs.NotFound {
		t.Errorf("bob reads alice's private disk: %q; want not_found", code)
	}

	// An edit with $select changes only what it selects, and only what a
	// user may change.
	o := e.cimi(alice, subject.VerbCimiEdit, id,
		`{"tag": "NEW", "description": "second", "visibility": "PUBLIC", "size": 5, "owner": "bob", "state": "ERROR"}`,
		"tag", "description", "visibility")
	if !o.ok() {
		t.Fatalf("edit: %s: %s", o.code, o.message)
	}
	v = e.mustDoc(id)
	if v.Tag != "NEW" || v.Description != "second" || v.Visibility != volume.Public || v.Size != 2 || v.Owner != "alice" || v.State != volume.Available {
		t.Errorf("after the edit: %+v", v)
	}
	if !sameACL(t, v.ACL, "alice", volume.Public) {
		t.Errorf("acl after the edit: %s; want %s", v.ACL, aclJSON(t, "alice", volume.Public))
	}
	// $select of an attribute the server keeps: refused.
	if o := e.cimi(alice, subject.VerbCimiEdit, id, `{"size": 5}`, "size"); o.code != errs.Invalid {
		t.Errorf("edit of the size: %s %q; want invalid", o.code, o.message)
	}

	// Public: bob reads it, without where it is stored; an admin sees that.
	doc, code := e.get(bob, id)
	if code != "" || doc["tag"] != "NEW" || doc["owner"] != "alice" {
		t.Errorf("bob reads alice's public disk: %v %q", doc, code)
	}
	if _, ok := doc["path"]; ok {
		t.Errorf("bob sees the storage path: %v", doc["path"])
	}
	if doc, code := e.get(admin, id); code != "" || doc["path"] != v.Path {
		t.Errorf("admin reads %s: %v %q", id, doc, code)
	}

	// Bob may neither edit nor delete it.
	if o := e.cimi(bob, subject.VerbCimiEdit, id, `{"tag": "MINE"}`, "tag"); o.code != errs.Forbidden || o.message != "Not enough rights to update disk." {
		t.Errorf("bob edits alice's public disk: %s %q", o.code, o.message)
	}
	if o := e.cimi(bob, subject.VerbCimiDelete, id, ""); o.code != errs.Forbidden || o.message != "Not enough rights to delete disk." {
		t.Errorf("bob deletes alice's public disk: %s %q", o.code, o.message)
	}
	if o := e.typed(bob, subject.CmdVolumeDelete, &volumev1.DeleteVolume{Uuid: id}); o.code != errs.Forbidden || o.message != "Not enough rights to delete disk." {
		t.Errorf("bob deletes alice's public disk with DeleteVolume: %s %q", o.code, o.message)
	}

	// A whole document sent back with one change: fine; with a changed
	// server attribute: refused, naming it.
	whole, _ := e.get(alice, id)
	whole["visibility"] = "PRIVATE"
	body, _ := json.Marshal(whole)
	if o := e.cimi(alice, subject.VerbCimiEdit, id, string(body)); !o.ok() {
		t.Fatalf("edit of the whole document: %s %q", o.code, o.message)
	}
	if v := e.mustDoc(id); v.Visibility != volume.Private || !sameACL(t, v.ACL, "alice", volume.Private) {
		t.Errorf("back to private: %+v", v)
	}
	whole["size"] = 3
	body, _ = json.Marshal(whole)
	if o := e.cimi(alice, subject.VerbCimiEdit, id, string(body)); o.code != errs.Invalid || !strings.Contains(o.message, "size") {
		t.Errorf("edit of the size in the whole document: %s %q", o.code, o.message)
	}
	if o := e.cimi(bob, subject.VerbCimiDelete, id, ""); o.code != errs.Forbidden || o.message != "Not enough rights to delete disk." {
		t.Errorf("bob deletes alice's private disk: %s %q", o.code, o.message)
	}
	if _, ok := e.storage(id); !ok || e.doc(id) == nil {
		t.Fatal("a refused delete removed the volume")
	}

	// Alice deletes it: storage, document and reservation go, and billing
	// hears of it.
	if o := e.cimi(alice, subject.VerbCimiDelete, id, ""); !o.ok() {
		t.Fatalf("delete: %s %q", o.code, o.message)
	}
	if _, ok := e.storage(id); ok {
		t.Error("the storage of a deleted volume is still there")
	}
	if e.doc(id) != nil {
		t.Error("the document of a deleted volume is still there")
	}
	deleted := e.usageOf(id, subject.EvtVolumeDeleted)
	if len(deleted) != 1 || deleted[0].owner != "alice" || deleted[0].size != 2 ||
		deleted[0].msg.(*volumev1.VolumeDeleted).GetType() != volumev1.VolumeType_VOLUME_TYPE_DATA_IMAGE_RAW_READ_WRITE {
		t.Errorf("VolumeDeleted events of %s: %+v", id, deleted)
	}
	if got := e.ledger("alice"); len(got) != 1 || got[tmpl] != 1 {
		t.Errorf("alice's ledger after the delete: %v; want only %s", got, tmpl)
	}
}

func TestCIMICreateRefusals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	for _, tt := range []struct {
		name string
		body string
		msg  string // part of the message
	}{
		{"size 0", `{"size": 0}`, "between 1 and 1024"},
		{"size 2000", `{"size": 2000}`, "between 1 and 1024"},
		{"size -1", `{"size": -1}`, "between 1 and 1024"},
		{"size ten", `{"size": "ten"}`, "must be a number"},
		{"size 1.5", `{"size": 1.5}`, "whole number"},
		{"no size", `{"tag": "x"}`, "needs a size"},
		{"capacity 0", `{"volumeTemplate": {"volumeConfig": {"capacity": 0}}}`, "between 1 and 1024"},
		{"visibility", `{"size": 1, "visibility": "FRIENDS"}`, "PRIVATE or PUBLIC"},
		{"huge tag", `{"size": 1, "tag": "` + strings.Repeat("t", 100_000) + `"}`, "at most 256"},
		{"huge description", `{"size": 1, "description": "` + strings.Repeat("d", 5000) + `"}`, "at most 4096"},
		{"control character", `{"size": 1, "tag": "a\u0007b"}`, "control characters"},
		{"owner", `{"size": 1, "owner": "bob"}`, `"owner"`},
		{"state", `{"size": 1, "state": "IN_USE"}`, `"state"`},
		{"acl", `{"size": 1, "acl": {"owner": {"principal": "bob", "type": "USER"}}}`, `"acl"`},
		{"not an object", `[1]`, "JSON object"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			id := uuid.NewString()
			o := e.cimi(alice, subject.VerbCimiCreate, id, tt.body)
			if o.code != errs.Invalid || !strings.Contains(o.message, tt.msg) {
				t.Errorf("%s %q; want invalid saying %s", o.code, o.message, tt.msg)
			}
			if _, ok := e.storage(id); ok {
				t.Error("a refused create left storage")
			}
			if e.doc(id) != nil {
				t.Error("a refused create left a document")
			}
			if n := len(e.usageOf(id, "")); n != 0 {
				t.Errorf("a refused create published %d usage events", n)
			}
		})
	}
	if got := e.ledger("alice"); len(got) != 0 {
		t.Errorf("refused creates count against alice: %v", got)
	}
	if got := e.stored(); len(got) != 0 {
		t.Errorf("refused creates left storage: %v", got)
	}
}

// TestCIMICreateTakenID: a create under the id of someone else's volume
// is a conflict that changes nothing of it, nor counts it against the
// sender.
func TestCIMICreateTakenID(t *testing.T) {
	t.Parallel()
	e := newEnv(t, 1)
	id := e.create(alice, `{"size": 1, "tag": "ALICE"}`)
	for _, actor := range []*commonv1.Actor{bob, alice} {
		if o := e.cimi(actor, subject.VerbCimiCreate, id, `{"size": 1, "tag": "AGAIN"}`); o.code != errs.Conflict {
			t.Errorf("%s creates under a taken id: %s %q; want conflict", actor.User, o.code, o.message)
		}
	}
	if v := e.mustDoc(id); v.Owner != "alice" || v.Tag != "ALICE" {
		t.Errorf("the volume changed: %+v", v)
	}
	if _, ok := e.storage(id); !ok {
		t.Error("the volume's storage is gone")
	}
	if got := e.ledger("bob"); len(got) != 0 {
		t.Errorf("bob's ledger counts alice's volume: %v", got)
	}
	if got := e.ledger("alice"); len(got) != 1 {
		t.Errorf("alice's ledger: %v", got)
	}
	if n := len(e.usageOf(id, subject.EvtVolumeCreated)); n != 1 {
		t.Errorf("%d VolumeCreated events; want 1", n)
	}
}
