package fakecloud

import (
	"bytes"
	"cmp"
	"crypto/sha1"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"stratuslab.dev/client/metadata"
	"stratuslab.dev/client/metadata/xmlsig"
)

// The Marketplace routes of services/marketplace/CONTRACT.md, as far as
// the stratus client uses them: upload of signed XML (POST
// /marketplace/metadata), search (GET /marketplace/metadata?...), one
// entry as XML or JSON (GET /marketplace/metadata/<id>[/<email>[/<date>]])
// and the deprecate action. Entries are MachineImage documents in the
// fake's store; uploads are checked with the real metadata and xmlsig
// packages, so the client sees the refusals the service gives.

// imagePrefix is the id prefix of Marketplace entries in the store.
const imagePrefix = "MachineImage/"

// Image statuses, as the Marketplace computes them at read time.
const (
	statusValid      = "valid"
	statusExpired    = "expired"
	statusDeprecated = "deprecated"
	statusDraft      = "draft"
	statusAll        = "all"
)

// marketplace serves path, the part of the URL after /marketplace/.
func (c *Cloud) marketplace(w http.ResponseWriter, r *http.Request, user, path string) {
	parts := strings.Split(strings.Trim(path, "/"), "/")
	if parts[0] != "metadata" {
		writeErr(w, 404, "not_found", "The Marketplace serves /marketplace/metadata.")
		return
	}
	parts = parts[1:]
	switch {
	case len(parts) == 0 && r.Method == http.MethodPost:
		c.uploadImage(w, r, user)
	case len(parts) == 0 && r.Method == http.MethodGet:
		c.searchImages(w, r, user)
	case len(parts) >= 1 && len(parts) <= 3 && r.Method == http.MethodGet:
		c.getImage(w, r, user, parts)
	case len(parts) == 4 && parts[3] == "deprecate" && r.Method == http.MethodPost:
		c.deprecateImage(w, r, user, parts[:3])
	default:
		writeErr(w, 405, "method_not_allowed", "Not an operation of the Marketplace.")
	}
}

// Upload refusals are the service's, rule for rule: the rule names of
// package metadata (metadata.SignatureRule for the signature), the error
// code and status the gateway answers with (invalid: 400, conflict: 409,
// too_large: 413), and the message metadata.Problems.Refusal words. The
// reasons follow services/marketplace/internal/upload and its
// controller's sentences. The fake has no site policy: every endorser may
// upload and any certificate proves who signed (no trusted-ca or
// endorser-allowed refusal).

// pdiskScheme starts the location of an image kept in a pdisk volume.
const pdiskScheme = "pdisk:"

// refuse answers an upload refused under the rules of ps.
func refuse(w http.ResponseWriter, status int, code string, ps metadata.Problems) {
	writeErr(w, status, code, ps.Refusal())
}

// refuseRule answers an upload refused under one rule.
func refuseRule(w http.ResponseWriter, status int, code, rule, format string, args ...any) {
	refuse(w, status, code, metadata.Problems{{Rule: rule, Message: fmt.Sprintf(format, args...)}})
}

// refuseProblems answers an upload refused for err, the Problems of
// metadata's Parse, CheckEndorser or Validate, as invalid (400).
func refuseProblems(w http.ResponseWriter, err error) {
	var ps metadata.Problems
	if errors.As(err, &ps) && len(ps) > 0 {
		refuse(w, 400, "invalid", ps)
		return
	}
	writeErr(w, 400, "invalid", err.Error())
}

// signatureHint is what the service adds to an xmlsig error, by rule
// (upload.fromSignature's hints, copied: they are advice, not a contract,
// and the service keeps them to itself).
func signatureHint(rule string) string {
	switch rule {
	case metadata.RuleWellFormed:
		return ""
	case metadata.RuleSignaturePresent:
		return "sign it with stratus sign-metadata before uploading it"
	case metadata.RuleSignatureKeySize:
		return "sign with a key of at least 2048 bits"
	case metadata.RuleSignatureDigest:
		return "sign the entry again after changing it"
	case metadata.RuleTrustedCA:
		return "this Marketplace accepts certificates of the authorities its administrators trust (trusted-cas)"
	}
	return "sign the entry again with stratus sign-metadata"
}

// uploadImage checks and stores a signed entry sent as XML, in the
// service's order: the document, its signature, what the signature
// covers, the endorser against the certificate, the entry's rules, and
// last the stored entries of the same identifier and endorser.
func (c *Cloud) uploadImage(w http.ResponseWriter, r *http.Request, user string) {
	if user == "" {
		writeErr(w, 401, "unauthorized", "Log in to upload Marketplace entries.")
		return
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/xml" && mt != "text/xml" {
		writeErr(w, 415, "unsupported_media_type", "Send the signed entry as application/xml.")
		return
	}
	data, _ := io.ReadAll(io.LimitReader(r.Body, metadata.MaxDocumentSize+1))
	if len(data) > metadata.MaxDocumentSize {
		// The gateway refuses it before the Marketplace sees it.
		refuseRule(w, 413, "too_large", metadata.RuleDocumentSize, "an entry may have at most %d bytes (1 MiB)", metadata.MaxDocumentSize)
		return
	}
	if len(bytes.TrimSpace(data)) == 0 {
		writeErr(w, 400, "invalid", "The upload holds no entry: send the signed XML that stratus sign-metadata writes.")
		return
	}
	if !utf8.Valid(data) {
		refuseRule(w, 400, "invalid", metadata.RuleWellFormed, "the document is not UTF-8 text")
		return
	}
	if _, err := metadata.Parse(data); err != nil {
		refuseProblems(w, err)
		return
	}
	now := time.Now()
	res, err := xmlsig.Verify(data, xmlsig.VerifyOptions{Now: now})
	if err != nil {
		rule, msg := metadata.SignatureRule(err), err.Error()
		if hint := signatureHint(rule); hint != "" {
			msg += "; " + hint
		}
		refuseRule(w, 400, "invalid", rule, "%s", msg)
		return
	}
	// The entry is read from what the signature covers, as the service
	// reads it.
	e, err := metadata.Parse(res.Signed)
	if err != nil {
		refuseProblems(w, err)
		return
	}
	if err := metadata.CheckEndorser(e, res.Certificate); err != nil {
		refuseProblems(w, err)
		return
	}
	if err := validForUpload(e, now); err != nil {
		refuseProblems(w, err)
		return
	}
	email := e.Endorsement.Endorser.Email
	endorsed := e.Endorsement.Created
	newest, newestID := "", ""
	for id, d := range c.docs {
		if !strings.HasPrefix(id, imagePrefix) || d["draft"] == true || d["identifier"] != e.Identifier || !strings.EqualFold(endorserEmail(d), email) {
			continue
		}
		last, _ := d["endorsed"].(string)
		if last == endorsed && sameEntry(e, d) {
			refuseRule(w, 409, "conflict", metadata.RuleAlreadyUploaded, "this entry (%s, endorsed by %s at %s) is stored already as %s", e.Identifier, email, endorsed, id)
			return
		}
		// The fixed-width UTC dates sort as text; of two as new, the
		// smaller id is named, so that the message does not depend on the
		// map's order.
		if last > newest || (last == newest && id < newestID) {
			newest, newestID = last, id
		}
	}
	if newest != "" && newest >= endorsed {
		refuseRule(w, 400, "invalid", metadata.RuleNewerThanStored,
			"%s has a newer entry from %s, endorsed at %s (%s); this one was endorsed at %s: an entry must be newer than the stored ones of its identifier and endorser",
			e.Identifier, email, newest, newestID, endorsed)
		return
	}
	if e.Deprecated != "" {
		// A newer signed entry deprecates the image: its history too.
		for _, d := range c.docs {
			if d["identifier"] == e.Identifier && strings.EqualFold(endorserEmail(d), email) && d["draft"] != true && d["deprecated"] == nil {
				d["deprecated"], d["updated"] = e.Deprecated, stamp()
			}
		}
	}
	doc := imageDoc(e, stamp())
	doc["endorsed"], doc["owner"], doc["xml"] = endorsed, user, string(data)
	id := imagePrefix + nameUUID(e.Identifier+"/"+email+"/"+endorsed)
	doc["id"] = id
	c.docs[id] = doc
	w.Header().Set("Location", "/marketplace/metadata/"+e.Identifier+"/"+email+"/"+endorsed)
	writeJSON(w, 201, map[string]any{"status": 201, "message": "created", "resource-id": id})
}

// sameEntry reports whether the stored document d holds the entry e: the
// same content, however it was signed. The service compares the entries
// too, not the bytes, so that signing an entry again does not make it new.
func sameEntry(e *metadata.Entry, d map[string]any) bool {
	xml, _ := d["xml"].(string)
	stored, err := metadata.Parse([]byte(xml))
	if err != nil {
		return false
	}
	a, err1 := metadata.Render(e)
	b, err2 := metadata.Render(stored)
	return err1 == nil && err2 == nil && bytes.Equal(a, b)
}

// validForUpload is Validate with the service's two exceptions: an entry
// deprecating an image may have expired (that is how an endorser
// withdraws an old one), and a location may name a pdisk volume
// ("pdisk:<uuid>"), which is how an author keeps an image private.
func validForUpload(e *metadata.Entry, now time.Time) error {
	err := e.Validate(now)
	var ps metadata.Problems
	if err == nil || !errors.As(err, &ps) {
		return err
	}
	ps = slices.DeleteFunc(slices.Clone(ps), func(p metadata.Problem) bool {
		switch p.Rule {
		case metadata.RuleNotExpired:
			return e.Deprecated != ""
		case metadata.RuleLocationURL:
			var i int
			if _, err := fmt.Sscanf(p.Field, "locations[%d]", &i); err == nil && i >= 0 && i < len(e.Locations) {
				return pdiskLocation(e.Locations[i])
			}
		}
		return false
	})
	if len(ps) == 0 {
		return nil
	}
	return ps
}

// pdiskLocation reports whether loc is "pdisk:" and a volume's uuid.
func pdiskLocation(loc string) bool {
	rest, ok := strings.CutPrefix(loc, pdiskScheme)
	if !ok || len(rest) != 36 {
		return false
	}
	for i, r := range rest {
		switch i {
		case 8, 13, 18, 23:
			if r != '-' {
				return false
			}
		default:
			if !strings.ContainsRune("0123456789abcdefABCDEF", r) {
				return false
			}
		}
	}
	return true
}

// imageDoc is the MachineImage document of e, without what the upload or
// capture adds (id, owner, endorsement date, xml).
func imageDoc(e *metadata.Entry, now string) map[string]any {
	doc := map[string]any{
		"resourceURI": "http://schemas.dmtf.org/cimi/1/MachineImage", "identifier": e.Identifier,
		"endorser": map[string]any{"email": e.Endorsement.Endorser.Email, "subject": e.Endorsement.Endorser.Subject, "issuer": e.Endorsement.Endorser.Issuer},
		"created":  now, "updated": now, "bytes": e.Bytes, "sha1": strings.ToLower(e.Checksum(metadata.AlgorithmSHA1)),
		"locations": e.Locations, "draft": false,
	}
	for k, v := range map[string]string{
		"valid": e.Valid, "kind": e.Type, "os": e.OS, "osVersion": e.OSVersion, "osArch": e.OSArch, "version": e.Version,
		"format": e.Format, "compression": e.Compression, "hypervisor": e.Hypervisor, "disksBus": e.DisksBus,
		"name": e.Title, "description": e.Description, "tag": e.Tag, "deprecated": e.Deprecated,
	} {
		if v != "" {
			doc[k] = v
		}
	}
	var sums []any
	for _, s := range e.Checksums {
		sums = append(sums, map[string]any{"algorithm": s.Algorithm, "value": s.Value})
	}
	doc["checksums"] = sums
	return doc
}

// nameUUID is a name-based (version 5 style) UUID, so that the same entry
// always gets the same id.
func nameUUID(name string) string {
	b := sha1.Sum([]byte(name))
	b[6] = b[6]&0x0f | 0x50
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// imageStatus computes the status of an entry at now.
func imageStatus(doc map[string]any, now time.Time) string {
	switch {
	case doc["draft"] == true:
		return statusDraft
	case doc["deprecated"] != nil:
		return statusDeprecated
	}
	if v, ok := doc["valid"].(string); ok {
		if t, err := time.Parse(time.RFC3339, v); err == nil && !t.After(now) {
			return statusExpired
		}
	}
	return statusValid
}

// imageVisible says whether user may see an entry: a draft is its
// author's and admin's, a signed entry everyone's.
func imageVisible(user string, doc map[string]any) bool {
	return doc["draft"] != true || user == "admin" || (user != "" && doc["owner"] == user)
}

// allows says whether an entry of status st passes the status filter.
func allows(filter, st string) bool {
	switch filter {
	case "", statusValid:
		return st == statusValid
	case statusAll:
		return true
	}
	return filter == st
}

func endorserEmail(doc map[string]any) string {
	e, _ := doc["endorser"].(map[string]any)
	s, _ := e["email"].(string)
	return s
}

// images returns the entries user may see that match, newest endorsement
// first.
func (c *Cloud) images(user string, match func(doc map[string]any, status string) bool) []map[string]any {
	now := time.Now()
	var out []map[string]any
	for id, d := range c.docs {
		if !strings.HasPrefix(id, imagePrefix) || !imageVisible(user, d) {
			continue
		}
		if st := imageStatus(d, now); match(d, st) {
			v := map[string]any{}
			for k, x := range d {
				v[k] = x
			}
			v["status"] = st
			out = append(out, v)
		}
	}
	slices.SortFunc(out, func(a, b map[string]any) int {
		return cmp.Or(-compareValues(a["endorsed"], b["endorsed"]), strings.Compare(fmt.Sprint(a["id"]), fmt.Sprint(b["id"])))
	})
	return out
}

// searchImages answers GET /marketplace/metadata: a collection document
// {count, machineImages} of the page asked for.
func (c *Cloud) searchImages(w http.ResponseWriter, r *http.Request, user string) {
	q := r.URL.Query()
	var since time.Time
	if s := q.Get("created"); s != "" {
		t, err := time.Parse("2006-01-02", s)
		if err != nil {
			t, err = time.Parse(time.RFC3339, s)
		}
		if err != nil {
			writeErr(w, 400, "invalid", "created is a date yyyy-MM-dd or an RFC 3339 time, not "+strconv.Quote(s)+".")
			return
		}
		since = t
	}
	status := q.Get("status")
	switch status {
	case "", statusValid, statusExpired, statusDeprecated, statusAll:
	default:
		writeErr(w, 400, "invalid", "status is valid, expired, deprecated or all, not "+strconv.Quote(status)+".")
		return
	}
	str := func(d map[string]any, k string) string { s, _ := d[k].(string); return s }
	found := c.images(user, func(d map[string]any, st string) bool {
		for param, attr := range map[string]string{"identifier": "identifier", "os": "os", "os-version": "osVersion", "arch": "osArch", "tag": "tag"} {
			if v := q.Get(param); v != "" && str(d, attr) != v {
				return false
			}
		}
		if v := q.Get("email"); v != "" && !strings.EqualFold(endorserEmail(d), v) {
			return false
		}
		if !since.IsZero() {
			t, err := time.Parse(time.RFC3339, str(d, "endorsed"))
			if err != nil || t.Before(since) {
				return false
			}
		}
		return allows(status, st)
	})
	first, last := 1, 20
	if v, err := strconv.Atoi(q.Get("first")); err == nil {
		first = v
	}
	if v, err := strconv.Atoi(q.Get("last")); err == nil {
		last = v
	}
	page := []map[string]any{}
	for i := max(first, 1); i <= min(last, len(found)); i++ {
		page = append(page, found[i-1])
	}
	writeJSON(w, 200, map[string]any{"id": "MachineImage", "count": len(found), "machineImages": page})
}

// getImage answers GET /marketplace/metadata/<id>[/<email>[/<endorsed>]]:
// the newest entry the status filter (default valid) allows, in XML
// (format=xml or Accept: application/xml) or JSON.
func (c *Cloud) getImage(w http.ResponseWriter, r *http.Request, user string, key []string) {
	q := r.URL.Query()
	found := c.images(user, func(d map[string]any, st string) bool {
		return d["identifier"] == key[0] &&
			(len(key) < 2 || strings.EqualFold(endorserEmail(d), key[1])) &&
			(len(key) < 3 || d["endorsed"] == key[2]) &&
			allows(q.Get("status"), st)
	})
	if len(found) == 0 {
		writeErr(w, 404, "not_found", "No Marketplace entry "+strings.Join(key, "/")+" has the status asked for ("+cmp.Or(q.Get("status"), statusValid)+").")
		return
	}
	doc := found[0]
	format := q.Get("format")
	if format == "" && strings.Contains(r.Header.Get("Accept"), "xml") {
		format = "xml"
	}
	if format == "xml" {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(200)
		_, _ = io.WriteString(w, fmt.Sprint(doc["xml"]))
		return
	}
	writeJSON(w, 200, doc)
}

// deprecateImage runs the deprecate action on one entry: its uploader or
// admin, with a reason.
func (c *Cloud) deprecateImage(w http.ResponseWriter, r *http.Request, user string, key []string) {
	if user == "" {
		writeErr(w, 401, "unauthorized", "Log in to deprecate an entry.")
		return
	}
	var doc map[string]any
	for id, d := range c.docs {
		if strings.HasPrefix(id, imagePrefix) && d["identifier"] == key[0] && strings.EqualFold(endorserEmail(d), key[1]) && d["endorsed"] == key[2] && imageVisible(user, d) {
			doc = d
		}
	}
	if doc == nil {
		writeErr(w, 404, "not_found", "No Marketplace entry "+strings.Join(key, "/")+".")
		return
	}
	if user != "admin" && doc["owner"] != user {
		writeErr(w, 403, "forbidden", "Only the uploader of an entry or an administrator may deprecate it.")
		return
	}
	var body struct {
		Reason string `json:"reason"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&body); err != nil || strings.TrimSpace(body.Reason) == "" {
		writeErr(w, 400, "invalid", "Say why the image is deprecated: {\"reason\": \"...\"}.")
		return
	}
	doc["deprecated"], doc["deprecatedBy"], doc["updated"] = body.Reason, user, stamp()
	out := map[string]any{}
	for k, v := range doc {
		out[k] = v
	}
	out["status"] = imageStatus(doc, time.Now())
	writeJSON(w, 200, out)
}

// addDraft stores the unsigned draft entry of a machine's captured root
// disk, as the Marketplace does when vmctl ends a machine started with
// --save, and returns its identifier. The fake has no image bytes: the
// identifier is made from the volume's uuid.
func (c *Cloud) addDraft(owner string, save map[string]any, volume string) string {
	id := metadata.Identifier(sha1.Sum([]byte(volume)))
	str := func(k string) string { s, _ := save[k].(string); return s }
	now := time.Now().UTC().Truncate(time.Second)
	e := &metadata.Entry{
		Identifier: id, Type: metadata.TypeMachine, Title: str("title"), Description: str("comment"),
		Creator: str("author"), Version: str("imageVersion"), Created: metadata.FormatTime(now),
		Valid:       metadata.FormatTime(now.Add(48 * time.Hour)),
		Checksums:   []metadata.Checksum{{Algorithm: metadata.AlgorithmSHA1, Value: fmt.Sprintf("%x", sha1.Sum([]byte(volume)))}},
		Endorsement: metadata.Endorsement{Created: metadata.FormatTime(now), Endorser: metadata.Endorser{Email: str("authorEmail")}},
	}
	doc := imageDoc(e, stamp())
	xml, _ := metadata.Render(e)
	uuid := nameUUID(id + "/draft/" + volume)
	doc["id"], doc["owner"], doc["draft"], doc["volume"] = imagePrefix+uuid, owner, true, "Volume/"+volume
	doc["endorsed"], doc["locations"], doc["xml"] = metadata.FormatTime(now), []string{pdiskScheme + volume}, string(xml)
	c.docs[imagePrefix+uuid] = doc
	return id
}

// resolveTag finds the image a tag names: "email/tag" the endorser's
// newest valid entry with the tag, "tag" the newest valid one when a single
// endorser uses it. It returns the identifier, or the status and message of
// the refusal.
func (c *Cloud) resolveTag(user, ref string) (string, int, string) {
	email, tag, ok := strings.Cut(ref, "/")
	if !ok {
		email, tag = "", ref
	}
	found := c.images(user, func(d map[string]any, st string) bool {
		return st == statusValid && d["tag"] == tag && (email == "" || strings.EqualFold(endorserEmail(d), email))
	})
	var endorsers []string
	for _, d := range found {
		if e := endorserEmail(d); !slices.Contains(endorsers, e) {
			endorsers = append(endorsers, e)
		}
	}
	switch {
	case len(found) == 0:
		return "", 400, "No valid image has tag " + ref + "."
	case len(endorsers) > 1:
		slices.Sort(endorsers)
		return "", 409, fmt.Sprintf("The tag %s is used by several endorsers (%s): give email/%s.", tag, strings.Join(endorsers, ", "), tag)
	}
	return fmt.Sprint(found[0]["identifier"]), 0, ""
}
