package catalog

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"

	"stratuslab.dev/client/metadata"
	"stratuslab.dev/platform/cimi"
)

// Kind is the CIMI kind of Marketplace entries, and their collection.
const Kind = "MachineImage"

// StatusDraft is the status of an unsigned draft; the other statuses are
// metadata's (StatusValid, StatusExpired, StatusDeprecated).
const StatusDraft = "draft"

// Statuses are the values of "status", in the order people read them.
var Statuses = []string{metadata.StatusValid, metadata.StatusExpired, metadata.StatusDeprecated, StatusDraft}

// pdiskScheme starts the location of an image held in a pdisk volume:
// "pdisk:<volume uuid>".
const pdiskScheme = "pdisk:"

// idSpace is the name space of the marketplace's name-based (v5) UUIDs;
// changing it would rename every draft and newest-entry record.
const idSpace = "5f0d2d0e-1e6c-4f4a-9d1e-6d61726b6574"

// DraftID is the id of the draft of the image captured into a volume: the
// same volume always gives the same draft, so a redelivered command finds
// the draft it made.
func DraftID(volumeUUID string) string {
	return Kind + "/" + uuid.NewSHA1(uuid.MustParse(idSpace), []byte("draft/"+strings.ToLower(volumeUUID))).String()
}

// Endorser is who vouches for an entry, as its endorsement block says.
type Endorser struct {
	Email   string `json:"email,omitempty"`
	Subject string `json:"subject,omitempty"`
	Issuer  string `json:"issuer,omitempty"`
}

// Image is the marketplace's part of a MachineImage document: the entry's
// fields under the names of CONTRACT.md, the entry's XML, and the
// marketplace's own state (deprecation, draft). The CIMI attributes (id,
// acl, created, updated, resourceURI) are the resource framework's.
type Image struct {
	// ID is the document's id, "MachineImage/<uuid>", when the image was
	// read from a document; Attributes never writes it.
	ID         string   `json:"id,omitempty"`
	Identifier string   `json:"identifier"`
	Endorser   Endorser `json:"endorser"`
	// Endorsed is the endorsement's created date: it orders the versions
	// of an entry. Empty for a draft.
	Endorsed string `json:"endorsed,omitempty"`
	// Valid is when the entry expires; empty when it never does.
	Valid        string              `json:"valid,omitempty"`
	Kind         string              `json:"kind,omitempty"` // dcterms:type: machine or disk
	ImageKind    string              `json:"imageKind,omitempty"`
	OS           string              `json:"os,omitempty"`
	OSVersion    string              `json:"osVersion,omitempty"`
	OSArch       string              `json:"osArch,omitempty"`
	Version      string              `json:"version,omitempty"`
	Format       string              `json:"format,omitempty"`
	Compression  string              `json:"compression,omitempty"`
	Hypervisor   string              `json:"hypervisor,omitempty"`
	DisksBus     string              `json:"disksBus,omitempty"`
	Name         string              `json:"name,omitempty"` // dcterms:title
	Description  string              `json:"description,omitempty"`
	Tag          string              `json:"tag,omitempty"`
	Creator      string              `json:"creator,omitempty"`
	Publisher    string              `json:"publisher,omitempty"`
	ImageCreated string              `json:"imageCreated,omitempty"` // dcterms:created
	SerialNumber string              `json:"serialNumber,omitempty"`
	Bytes        int64               `json:"bytes"`
	SHA1         string              `json:"sha1"`
	Checksums    []metadata.Checksum `json:"checksums,omitempty"`
	Locations    []string            `json:"locations,omitempty"`
	InboundPorts []int               `json:"inboundPorts,omitempty"`
	// OutboundPorts and ICMP are the entry's slterms:outbound-port and
	// slterms:icmp.
	OutboundPorts []int `json:"outboundPorts,omitempty"`
	ICMP          []int `json:"icmp,omitempty"`
	// Deprecated is the reason the image should no longer be used, from
	// the entry itself, a newer entry or the deprecate action.
	Deprecated string `json:"deprecated,omitempty"`
	// DeprecatedBy is the user who deprecated it (action or newer upload).
	DeprecatedBy string `json:"deprecatedBy,omitempty"`
	// DeprecatedAt is when the marketplace recorded the deprecation.
	DeprecatedAt string `json:"deprecatedAt,omitempty"`
	// Draft marks an unsigned draft; always present so that filters can
	// say draft=false.
	Draft bool `json:"draft"`
	// Volume and Machine are, for a draft, the Volume holding the captured
	// image and the Machine it came from ("Volume/<uuid>", "Machine/<uuid>").
	Volume  string `json:"volume,omitempty"`
	Machine string `json:"machine,omitempty"`
	// XML is the entry as uploaded (signed), or as rendered (draft).
	XML string `json:"xml"`
}

// FromEntry is the Image of an entry whose document is xml.
func FromEntry(e *metadata.Entry, xml []byte) Image {
	return Image{
		Identifier: e.Identifier,
		Endorser: Endorser{
			Email: e.Endorsement.Endorser.Email, Subject: e.Endorsement.Endorser.Subject, Issuer: e.Endorsement.Endorser.Issuer,
		},
		Endorsed: e.Endorsement.Created, Valid: e.Valid, Kind: e.Type, ImageKind: e.Kind,
		OS: e.OS, OSVersion: e.OSVersion, OSArch: e.OSArch, Version: e.Version,
		Format: e.Format, Compression: e.Compression, Hypervisor: e.Hypervisor, DisksBus: e.DisksBus,
		Name: e.Title, Description: e.Description, Tag: e.Tag, Creator: e.Creator, Publisher: e.Publisher,
		ImageCreated: e.Created, SerialNumber: e.SerialNumber,
		Bytes: e.Bytes, SHA1: strings.ToLower(e.Checksum(metadata.AlgorithmSHA1)), Checksums: e.Checksums,
		Locations: e.Locations, InboundPorts: e.InboundPorts, OutboundPorts: e.OutboundPorts, ICMP: e.ICMP,
		Deprecated: e.Deprecated,
		XML:        string(xml),
	}
}

// Attributes returns the image as document attributes, to merge into a
// MachineImage document (numbers as json.Number, as the resource
// framework keeps them).
func (im Image) Attributes() (map[string]any, error) {
	data, err := json.Marshal(im)
	if err != nil {
		return nil, fmt.Errorf("catalog: encode %s: %w", im.Identifier, err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var out map[string]any
	if err := dec.Decode(&out); err != nil {
		return nil, fmt.Errorf("catalog: encode %s: %w", im.Identifier, err)
	}
	delete(out, "id")
	return out, nil
}

// Merge replaces in doc every attribute an Image holds with im's, leaving
// the CIMI ones (id, acl, created, ...) alone.
func (im Image) Merge(doc map[string]any) (map[string]any, error) {
	attrs, err := im.Attributes()
	if err != nil {
		return nil, err
	}
	for _, a := range imageAttributes {
		delete(doc, a)
	}
	for k, v := range attrs {
		doc[k] = v
	}
	return doc, nil
}

// imageAttributes are the JSON names of Image's fields.
var imageAttributes = []string{
	"identifier", "endorser", "endorsed", "valid", "kind", "imageKind", "os", "osVersion", "osArch", "version",
	"format", "compression", "hypervisor", "disksBus", "name", "description", "tag", "creator", "publisher",
	"imageCreated", "serialNumber", "bytes", "sha1", "checksums", "locations", "inboundPorts", "outboundPorts",
	"icmp", "deprecated", "deprecatedBy", "deprecatedAt", "draft", "volume", "machine", "xml",
}

// Decode reads the Image of a stored document body.
func Decode(body []byte) (Image, error) {
	var im Image
	if err := json.Unmarshal(body, &im); err != nil {
		return Image{}, fmt.Errorf("catalog: decode a %s: %w", Kind, err)
	}
	return im, nil
}

// FromMap reads the Image of a decoded document.
func FromMap(doc map[string]any) (Image, error) {
	data, err := json.Marshal(doc)
	if err != nil {
		return Image{}, fmt.Errorf("catalog: decode a %s: %w", Kind, err)
	}
	return Decode(data)
}

// Status is the entry's status at now: "draft" for a draft, else
// "deprecated" once deprecated, else "expired" once its valid date has
// passed, else "valid".
func (im Image) Status(now time.Time) string {
	switch {
	case im.Draft:
		return StatusDraft
	case im.Deprecated != "":
		return metadata.StatusDeprecated
	case im.Expired(now):
		return metadata.StatusExpired
	}
	return metadata.StatusValid
}

// Expired reports whether the valid date has passed at now (a date that
// cannot be read counts as passed).
func (im Image) Expired(now time.Time) bool {
	if im.Valid == "" {
		return false
	}
	t, err := metadata.ParseTime(im.Valid)
	return err != nil || !now.Before(t)
}

// VolumeUUID is the pdisk volume holding the image: a draft's volume, or
// the first "pdisk:<uuid>" location; "" when the image is only on the web.
func (im Image) VolumeUUID() string {
	if _, u, ok := strings.Cut(im.Volume, "/"); ok && im.Volume != "" {
		return u
	}
	for _, l := range im.Locations {
		if u, ok := PdiskLocation(l); ok {
			return u
		}
	}
	return ""
}

// WebLocations are the http and https locations, in order.
func (im Image) WebLocations() []string {
	var out []string
	for _, l := range im.Locations {
		if _, ok := PdiskLocation(l); !ok {
			out = append(out, l)
		}
	}
	return out
}

// PdiskLocation reports whether a location names a pdisk volume,
// "pdisk:<uuid>", and returns the uuid.
func PdiskLocation(loc string) (string, bool) {
	rest, ok := strings.CutPrefix(loc, pdiskScheme)
	if !ok {
		return "", false
	}
	u, err := uuid.Parse(rest)
	if err != nil || len(rest) != 36 {
		return "", false
	}
	return u.String(), true
}

// PdiskURL is the location of an image held in volume uuid.
func PdiskURL(volumeUUID string) string { return pdiskScheme + strings.ToLower(volumeUUID) }

// SignedACL is the ACL of a signed entry: everyone may read it, its
// uploader owns it (and may deprecate it; the Kind's hooks refuse other
// changes to anyone but administrators).
func SignedACL(uploader string) cimi.ACL {
	acl := cimi.OwnedBy(cimi.Identity{User: uploader})
	acl.Rules = append(acl.Rules, cimi.Rule{Principal: cimi.RoleAnon, Type: cimi.Role, Right: cimi.View})
	return acl
}

// DraftACL is the ACL of a draft: its author and administrators only.
func DraftACL(owner string) cimi.ACL {
	return cimi.OwnedBy(cimi.Identity{User: owner})
}

// Owner is the user owning a document, from its ACL; "" when a role owns
// it.
func Owner(doc map[string]any) string {
	acl, _ := doc["acl"].(map[string]any)
	owner, _ := acl["owner"].(map[string]any)
	if t, _ := owner["type"].(string); t != string(cimi.User) {
		return ""
	}
	p, _ := owner["principal"].(string)
	return p
}
