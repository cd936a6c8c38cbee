// Package volume is the Volume document pdisk owns: its fields, types and
// states as stored and as returned through CIMI, and the rules every writer
// (CIMI hooks, typed service commands, the image cache, the reconciler)
// applies to it.
package volume

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/services/pdisk/internal/backend"
)

// Kind is the CIMI kind and the name of the store collection.
const Kind = "Volume"

// Type is what a volume holds and how machines may use it (REFERENCE.md).
type Type string

// The volume types of the original pdisk.
const (
	MachineImageOrigin   Type = "MACHINE_IMAGE_ORIGIN"
	MachineImageLive     Type = "MACHINE_IMAGE_LIVE"
	DataImageOrigin      Type = "DATA_IMAGE_ORIGIN"
	DataImageLive        Type = "DATA_IMAGE_LIVE"
	DataImageRawReadOnly Type = "DATA_IMAGE_RAW_READONLY"
	// DataImageRawReadWrite is a user's persistent (or volatile) disk.
	DataImageRawReadWrite Type = "DATA_IMAGE_RAW_READ_WRITE"
)

// Types lists every valid Type.
var Types = []Type{MachineImageOrigin, MachineImageLive, DataImageOrigin, DataImageLive, DataImageRawReadOnly, DataImageRawReadWrite}

// Origin reports whether volumes of type t are image-cache origins.
func (t Type) Origin() bool { return t == MachineImageOrigin || t == DataImageOrigin }

// Live reports whether volumes of type t are copy-on-write snapshots of an origin.
func (t Type) Live() bool { return t == MachineImageLive || t == DataImageLive }

// ReadOnly reports whether many machines may hold a volume of type t at once.
func (t Type) ReadOnly() bool { return t == DataImageRawReadOnly || t.Origin() }

// State is where a volume is in its life.
type State string

// Volume states.
const (
	// Downloading: an image-cache origin whose image is being fetched.
	Downloading State = "DOWNLOADING"
	// Available: usable, attached to no machine.
	Available State = "AVAILABLE"
	// InUse: attached to at least one machine (see Attachments).
	InUse State = "IN_USE"
	// Quarantined: the live disk of a finished machine, kept until
	// Quarantine, then deleted.
	Quarantined State = "QUARANTINED"
	// Failed: an origin whose download failed (StateMessage says why),
	// kept a short while so that other requests fail fast, then removed.
	Failed State = "FAILED"
	// Error: the backend lost the volume's storage; an administrator must
	// look (StateMessage says what the reconciler found).
	Error State = "ERROR"
)

// Visibility of a volume to other users.
const (
	Private = "PRIVATE"
	Public  = "PUBLIC"
)

// Limits on what users may ask for.
const (
	MinSizeGiB = 1
	MaxSizeGiB = 1024
	// MaxTag bounds tags and names, in bytes.
	MaxTag = 256
	// MaxDescription bounds descriptions, in bytes.
	MaxDescription = 4096
)

// Attachment is one machine holding the volume.
type Attachment struct {
	// Machine is the machine's CIMI id, "Machine/<uuid>".
	Machine string `json:"machine"`
	// Device is the guest device name, e.g. "vdb".
	Device string `json:"device,omitempty"`
	// HotPlugged is true when attached to a running machine, false when
	// attached at launch (such a disk cannot be detached before the end).
	HotPlugged bool `json:"hotPlugged"`
	// Attached is when, RFC 3339.
	Attached string `json:"attached,omitempty"`
}

// Volume is the stored document (and, without "_"-prefixed attributes,
// the CIMI representation). Every attribute is modelled so that a writer
// decoding and re-encoding a document loses nothing.
type Volume struct {
	ID          string          `json:"id"`
	ResourceURI string          `json:"resourceURI,omitempty"`
	Name        string          `json:"name,omitempty"`
	Description string          `json:"description,omitempty"`
	Created     string          `json:"created,omitempty"`
	Updated     string          `json:"updated,omitempty"`
	ACL         json.RawMessage `json:"acl,omitempty"`

	UUID string `json:"uuid"`
	Tag  string `json:"tag"`
	// Owner is the user the volume counts against; "" for the cloud's own
	// (image-cache origins).
	Owner string `json:"owner"`
	// Size is the virtual size in GiB.
	Size int64 `json:"size"`
	// Capacity is the size in KiB, the CIMI Volume unit.
	Capacity   int64  `json:"capacity"`
	Visibility string `json:"visibility"`
	// Count is the number of machines holding it; for an origin, the
	// number of its live snapshots.
	Count int `json:"count"`
	// Identifier is the Marketplace id of an origin's image, or
	// "snapshot:<origin uuid>" for a live snapshot.
	Identifier   string `json:"identifier,omitempty"`
	Type         Type   `json:"type"`
	State        State  `json:"state"`
	StateMessage string `json:"stateMessage,omitempty"`
	// Quarantine is when a quarantined volume will be deleted, RFC 3339.
	Quarantine string `json:"quarantine,omitempty"`
	// Volatile volumes live and die with Machine.
	Volatile bool `json:"volatile,omitempty"`
	// Machine and Device repeat the first attachment, for listings.
	Machine     string       `json:"machine,omitempty"`
	Device      string       `json:"device,omitempty"`
	Attachments []Attachment `json:"attachments,omitempty"`
	// Backend names the storage backend ("qcow2", "lvm", "rbd"), Format
	// the disk format a hypervisor must be told ("qcow2", "raw").
	Backend string `json:"backend,omitempty"`
	Format  string `json:"format,omitempty"`
	// Path is where the storage host finds it (a file or block device);
	// TURL is its transport URL for other hosts (iscsi://, rbd:), set
	// while it is exported.
	Path string `json:"path,omitempty"`
	TURL string `json:"turl,omitempty"`
	// Origin is the uuid of the origin of a live snapshot.
	Origin string `json:"origin,omitempty"`
	// Bytes and SHA1 describe an origin's image as the Marketplace does.
	Bytes int64  `json:"bytes,omitempty"`
	SHA1  string `json:"sha1,omitempty"`
	// LastUsed is when an origin last gained or lost a snapshot, RFC 3339;
	// unused origins are evicted after the configured time.
	LastUsed string `json:"lastUsed,omitempty"`
	// Holder and LeaseUntil say which pdisk replica is downloading an
	// origin and until when its claim holds without a renewal.
	Holder     string `json:"holder,omitempty"`
	LeaseUntil string `json:"leaseUntil,omitempty"`

	// Command is the id of the command that wrote the document last (the
	// platform/resource convention for idempotent writes).
	Command string `json:"_command,omitempty"`
}

// ID returns the CIMI id of the volume with this uuid.
func ID(uuid string) string { return Kind + "/" + uuid }

// UUIDOf returns the uuid of a CIMI id ("Volume/<uuid>") or of a bare
// uuid, checked: an invalid one is an errs.Invalid error.
func UUIDOf(id string) (string, error) {
	u := strings.TrimPrefix(id, Kind+"/")
	if !ValidUUID(u) {
		return "", errs.Errorf(errs.Invalid, "%q is not a volume uuid (expected 8-4-4-4-12 lowercase hexadecimal digits).", short(id))
	}
	return u, nil
}

// ValidUUID reports whether s is a uuid in canonical lowercase form, the
// only form backends accept as a name (backend.ValidID).
func ValidUUID(s string) bool { return backend.ValidID(s) }

// originSpace is the namespace of origin uuids: an origin's uuid is derived
// from its image id, so that every replica asking for an image names the
// same document and store creation decides who downloads it.
var originSpace = uuid.MustParse("6b1c3f0e-8f61-5b0a-9d1e-2f7c4c1e5a10")

// OriginUUID is the uuid of the image-cache origin of an image.
func OriginUUID(imageID string) string {
	return uuid.NewSHA1(originSpace, []byte(imageID)).String()
}

// SnapshotIdentifier is the identifier of a live snapshot of origin.
func SnapshotIdentifier(originUUID string) string { return "snapshot:" + originUUID }

// Decode reads a stored document.
func Decode(data []byte) (*Volume, error) {
	var v Volume
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("volume: decode: %w", err)
	}
	return &v, nil
}

// Encode writes v as a stored document.
func (v *Volume) Encode() (json.RawMessage, error) {
	return json.Marshal(v)
}

// Map returns v as a generic document (numbers as json.Number), the form
// platform/resource hooks exchange.
func (v *Volume) Map() (map[string]any, error) {
	data, err := v.Encode()
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, err
	}
	return m, nil
}

// FromMap reads a generic document.
func FromMap(m map[string]any) (*Volume, error) {
	data, err := json.Marshal(m)
	if err != nil {
		return nil, err
	}
	return Decode(data)
}

// SetSize sets Size and the matching Capacity.
func (v *Volume) SetSize(gib int64) {
	v.Size = gib
	v.Capacity = gib << 20
}

// Attach records machine holding v; attaching the same machine twice is
// idempotent. A read-write volume held by another machine is a conflict.
func (v *Volume) Attach(machine, device string, hotPlugged bool, at time.Time) error {
	for _, a := range v.Attachments {
		if a.Machine == machine {
			return nil
		}
	}
	if len(v.Attachments) > 0 && !v.Type.ReadOnly() {
		return errs.Errorf(errs.Conflict, "Volume %s is attached to %s: detach it first; a read-write volume attaches to one machine at a time.", v.UUID, v.Attachments[0].Machine)
	}
	v.Attachments = append(v.Attachments, Attachment{Machine: machine, Device: device, HotPlugged: hotPlugged, Attached: Stamp(at)})
	v.sync()
	return nil
}

// Detach removes machine's attachment. hotUnplug says the machine is
// running: a disk attached at launch cannot leave it then. Detaching a
// machine that does not hold v is idempotent (reports false).
func (v *Volume) Detach(machine string, hotUnplug bool) (Attachment, bool, error) {
	for i, a := range v.Attachments {
		if a.Machine != machine {
			continue
		}
		if hotUnplug && !a.HotPlugged {
			return a, false, errs.Errorf(errs.Conflict, "Disk have not been hot-plugged: volume %s was attached to %s at launch and stays until the machine ends.", v.UUID, machine)
		}
		v.Attachments = append(v.Attachments[:i:i], v.Attachments[i+1:]...)
		v.sync()
		return a, true, nil
	}
	return Attachment{}, false, nil
}

// sync derives Count, Machine, Device and State from the attachments.
func (v *Volume) sync() {
	if v.Type.Origin() {
		return // an origin counts snapshots, not machines
	}
	v.Count = len(v.Attachments)
	v.Machine, v.Device = "", ""
	if len(v.Attachments) > 0 {
		v.Machine, v.Device = v.Attachments[0].Machine, v.Attachments[0].Device
	}
	switch {
	case v.State == Available && v.Count > 0:
		v.State = InUse
	case v.State == InUse && v.Count == 0:
		v.State = Available
	}
}

// Stamp formats a time as documents hold it.
func Stamp(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// ParseStamp reads a time written by Stamp; the zero time when empty or bad.
func ParseStamp(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}
	}
	return t
}

// short keeps error messages readable when input is garbage.
func short(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// ACLFor is the access control list of a user's volume: the owner and
// administrators hold every right; every user may view a PUBLIC one.
func ACLFor(owner, visibility string) cimi.ACL {
	acl := cimi.ACL{
		Owner: cimi.Owner{Principal: owner, Type: cimi.User},
		Rules: []cimi.Rule{{Principal: cimi.RoleAdmin, Type: cimi.Role, Right: cimi.All}},
	}
	if owner == "" {
		acl.Owner = cimi.Owner{Principal: cimi.RoleAdmin, Type: cimi.Role}
		acl.Rules = nil
	}
	if visibility == Public {
		acl.Rules = append(acl.Rules, cimi.Rule{Principal: cimi.RoleUser, Type: cimi.Role, Right: cimi.View})
	}
	return acl
}

// SetACL stores acl in v.
func (v *Volume) SetACL(acl cimi.ACL) {
	data, _ := json.Marshal(acl) // a struct of strings always encodes
	v.ACL = data
}

// Access returns v's access control list; a document without one grants
// nothing to anybody but administrators.
func (v *Volume) Access() cimi.ACL {
	var acl cimi.ACL
	if len(v.ACL) == 0 || json.Unmarshal(v.ACL, &acl) != nil {
		return cimi.ACL{Owner: cimi.Owner{Principal: cimi.RoleAdmin, Type: cimi.Role}}
	}
	return acl
}
