package fakecloud

import (
	"cmp"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Users known to the fake cloud: username → password. "admin" has the
// ADMIN role; "user" and "other" are two plain users.
const (
	AdminPassword = "admin-secret"
	UserPassword  = "user-secret"
	OtherPassword = "other-secret"
)

// Cloud is the fake cloud's state. Create one with New and serve it with
// httptest.
//
// Volumes behave as the real gateway's: uuid ids, owned by their creator,
// seen by their owner, by everyone when PUBLIC and by admin; deleting
// another user's disk is refused (403 "Not enough rights to delete disk.")
// and so is deleting an attached one (409). A volume created with the tag
// "slow" takes a job (202, no Location) and exists once the job succeeds.
//
// Machines follow the issue 5 contract (services/vmctl/CIMI.md). A create
// body with an "image" makes a machine: 201 with its Location, in state
// Pending with its vmId (1, 2, ...) and address already allocated. Each
// read of a machine (GET or listing) answers its current state and then
// moves it one step on: Pending → Prolog → Boot → Running, and after a
// shutdown Shutdown → Epilog → Done. Tests thus see every state in order
// without sleeping. A machine named "doomed" fails instead of reaching
// Prolog (stateMessage "no host has room for this machine"); one named
// "stuck" stays Pending.
//
// DELETE kills: the machine is Done at once, its volumes are released, and
// the document stays. Actions: stop, start, restart, shutdown (with an
// optional "save"), attach_volume and detach_volume {"volume": "<uuid>"};
// each answers 202 with a job. An attached volume appears in the machine's
// disks with its device (vdX, the next free letter) and hotPlugged true;
// detaching a disk given at launch fails with 409 "Disk have not been
// hot-plugged", as the original did.
//
// The standard machine types are served as MachineConfiguration documents
// {name, cpu, memory (KiB), swapMiB}, "m1.small" the default.
//
// A machine whose user data holds a cloud-config power_state (as stratus
// create-image sends) powers itself off once Running: the next read shows
// it Unknown, "the guest stopped by itself", as vmctl shows such a guest.
// shutdown is accepted from Running, Stopped and Unknown, as vmctl does.
// When a machine with "save" reaches Done, its captured volume and an
// unsigned draft Marketplace entry appear, and the machine gets
// savedVolume and savedIdentifier.
//
// The Marketplace routes under /marketplace/metadata (upload, search, one
// entry as XML or JSON, deprecate) follow services/marketplace/CONTRACT.md;
// see marketplace.go.
//
// A Machine body without "image" keeps the fake's older generic behaviour
// (202 and a job; "doomed" makes the job fail), which the job tests use.
type Cloud struct {
	mu       sync.Mutex
	docs     map[string]map[string]any // id → document
	pending  map[string]map[string]any // job id → the volume it creates
	seq      int
	tokens   map[string]string // token → username
	jobPolls map[string]int    // job id → reads so far
	vmSeq    int64             // the last vmId given
	requests []string          // "METHOD path" of each request served
}

// kinds maps entry-point attributes to collection kinds.
func kinds() [][2]string {
	return [][2]string{
		{"serviceMessages", "ServiceMessage"},
		{"serviceConfigurations", "ServiceConfiguration"},
		{"users", "User"},
		{"jobs", "Job"},
		{"events", "Event"},
		{"machines", "Machine"},
		{"machineConfigurations", "MachineConfiguration"},
		{"volumes", "Volume"},
	}
}

// New returns a fake cloud holding only the standard machine types.
func New() *Cloud {
	c := &Cloud{docs: map[string]map[string]any{}, pending: map[string]map[string]any{}, tokens: map[string]string{}, jobPolls: map[string]int{}}
	c.addMachineTypes()
	return c
}

// Requests returns "METHOD path" of every request served so far.
func (c *Cloud) Requests() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.requests)
}

// Put stores a document directly, e.g. to prepare a test.
func (c *Cloud) Put(id string, doc map[string]any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	doc["id"] = id
	c.docs[id] = doc
}

func writeErr(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"status": status, "code": code, "message": msg})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// who authenticates r: "" for anonymous, or an error already written.
func (c *Cloud) who(w http.ResponseWriter, r *http.Request) (string, bool) {
	if ck, err := r.Cookie("stratus_session"); err == nil {
		if u, ok := c.tokens[ck.Value]; ok {
			return u, true
		}
	}
	if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
		if u, ok := c.tokens[tok]; ok {
			return u, true
		}
		writeErr(w, 401, "unauthorized", "Your session has ended or the token is not valid: log in again.")
		return "", false
	}
	if u, p, ok := r.BasicAuth(); ok {
		if check(u, p) {
			return u, true
		}
		writeErr(w, 401, "unauthorized", "The username or password is wrong.")
		return "", false
	}
	if r.TLS != nil && len(r.TLS.PeerCertificates) > 0 {
		return "cert:" + r.TLS.PeerCertificates[0].Subject.CommonName, true
	}
	return "", true
}

func check(u, p string) bool {
	return (u == "admin" && p == AdminPassword) || (u == "user" && p == UserPassword) || (u == "other" && p == OtherPassword)
}

// ServeHTTP implements the contract.
func (c *Cloud) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.requests = append(c.requests, r.Method+" "+r.URL.Path)
	w.Header().Set("CIMI-Specification-Version", "2.0.0")
	if mp, ok := strings.CutPrefix(r.URL.Path, "/marketplace/"); ok {
		if user, ok := c.who(w, r); ok {
			c.marketplace(w, r, user, mp)
		}
		return
	}
	path, ok := strings.CutPrefix(r.URL.Path, "/cimi/")
	if !ok {
		writeErr(w, 404, "not_found", "Nothing here: the API is under /cimi/.")
		return
	}
	user, ok := c.who(w, r)
	if !ok {
		return
	}
	switch {
	case path == "cloudEntryPoint" && r.Method == http.MethodGet:
		cep := map[string]any{"id": "CloudEntryPoint", "resourceURI": "http://schemas.dmtf.org/cimi/1/CloudEntryPoint",
			"baseURI": "http://" + r.Host + "/cimi/", "created": "2026-01-01T00:00:00Z", "updated": "2026-01-01T00:00:00Z"}
		for _, k := range kinds() {
			cep[k[0]] = map[string]string{"href": k[1]}
		}
		writeJSON(w, 200, cep)
	case path == "login" && r.Method == http.MethodPost:
		var cred struct{ Username, Password string }
		if err := json.NewDecoder(r.Body).Decode(&cred); err != nil {
			writeErr(w, 400, "invalid", "The login body is not JSON.")
			return
		}
		if !check(cred.Username, cred.Password) {
			writeErr(w, 401, "unauthorized", "The username or password is wrong.")
			return
		}
		c.seq++
		tok := fmt.Sprintf("tok-%d", c.seq)
		c.tokens[tok] = cred.Username
		http.SetCookie(w, &http.Cookie{Name: "stratus_session", Value: tok})
		writeJSON(w, 200, map[string]any{"identity": cred.Username, "roles": roles(cred.Username), "expires": "2030-01-01T00:00:00Z", "token": tok})
	case path == "logout" && r.Method == http.MethodPost:
		if tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer "); ok {
			delete(c.tokens, tok)
		}
		writeJSON(w, 200, map[string]any{"status": 200, "message": "logged out"})
	case path == "authn" && r.Method == http.MethodGet:
		if user == "" {
			writeErr(w, 401, "unauthorized", "You are not logged in.")
			return
		}
		writeJSON(w, 200, map[string]any{"identity": user, "roles": roles(user), "method": "password"})
	default:
		if user == "" {
			writeErr(w, 401, "unauthorized", "Log in first.")
			return
		}
		c.resource(w, r, user, path)
	}
}

func roles(u string) []string {
	if u == "admin" {
		return []string{"ADMIN", "USER"}
	}
	return []string{"USER"}
}

func kindOf(name string) bool {
	for _, k := range kinds() {
		if k[1] == name {
			return true
		}
	}
	return false
}

func (c *Cloud) resource(w http.ResponseWriter, r *http.Request, user, path string) {
	parts := strings.Split(path, "/")
	if !kindOf(parts[0]) {
		writeErr(w, 404, "not_found", "There is no collection "+parts[0]+".")
		return
	}
	kind := parts[0]
	switch {
	case len(parts) == 1 && r.Method == http.MethodGet:
		c.query(w, r, user, kind)
	case len(parts) == 1 && r.Method == http.MethodPost:
		if r.Header.Get("Content-Type") != "application/json" {
			writeErr(w, 415, "unsupported_media_type", "Send JSON.")
			return
		}
		var doc map[string]any
		if err := json.NewDecoder(io.LimitReader(r.Body, 1<<20)).Decode(&doc); err != nil {
			writeErr(w, 400, "invalid", "The body is not a JSON object.")
			return
		}
		if doc["name"] == "conflict" {
			writeErr(w, 409, "conflict", "A resource with this name exists.")
			return
		}
		if kind == "Volume" {
			c.createVolume(w, user, doc)
			return
		}
		if _, ok := doc["image"]; ok && kind == "Machine" {
			raw, _ := json.Marshal(doc)
			c.createMachine(w, user, raw)
			return
		}
		c.seq++
		id := fmt.Sprintf("%s/%d", kind, c.seq)
		doc["id"] = id
		c.docs[id] = doc
		w.Header().Set("Location", "/cimi/"+id)
		status := 201
		if kind == "Machine" {
			// Machines take time: the answer is a job.
			status = 202
			job := c.newJob(id, doc["name"] == "doomed")
			w.Header().Set("CIMI-Job-URI", job)
			writeJSON(w, status, map[string]any{"status": status, "message": "accepted", "resource-id": id, "job-id": job})
			return
		}
		writeJSON(w, status, map[string]any{"status": status, "message": "created", "resource-id": id})
	case len(parts) == 2 && isMachine(c.docs[kind+"/"+parts[1]]):
		c.machine(w, r, user, c.docs[kind+"/"+parts[1]], "")
	case len(parts) == 3 && isMachine(c.docs[kind+"/"+parts[1]]):
		c.machine(w, r, user, c.docs[kind+"/"+parts[1]], parts[2])
	case len(parts) == 2:
		c.one(w, r, user, kind+"/"+parts[1])
	case len(parts) == 3 && r.Method == http.MethodPost:
		id := kind + "/" + parts[1]
		if _, ok := c.docs[id]; !ok {
			writeErr(w, 404, "not_found", id+" does not exist.")
			return
		}
		var act map[string]any
		if err := json.NewDecoder(r.Body).Decode(&act); err != nil || act["action"] != "http://schemas.dmtf.org/cimi/1/action/"+parts[2] {
			writeErr(w, 400, "invalid", "The action document is wrong.")
			return
		}
		job := c.newJob(id, false)
		w.Header().Set("CIMI-Job-URI", job)
		writeJSON(w, 202, map[string]any{"status": 202, "message": "accepted", "job-id": job})
	default:
		writeErr(w, 405, "invalid", "Not an operation of this resource.")
	}
}

// newJob records a job that reaches its end on its third read.
func (c *Cloud) newJob(target string, fail bool) string {
	c.seq++
	id := fmt.Sprintf("Job/%d", c.seq)
	j := map[string]any{"id": id, "state": "QUEUED", "progress": 0, "targetResource": map[string]string{"href": target}}
	if fail {
		j["fail"] = true
	}
	c.docs[id] = j
	return id
}

func (c *Cloud) one(w http.ResponseWriter, r *http.Request, user, id string) {
	doc, ok := c.docs[id]
	// pdisk refuses a change to another user's disk (403) even when that
	// user may not see it.
	if ok && strings.HasPrefix(id, "Volume/") && r.Method != http.MethodGet && !c.volumeWrite(w, r, user, doc) {
		return
	}
	if !ok || !visible(user, doc) {
		writeErr(w, 404, "not_found", id+" does not exist or you may not see it.")
		return
	}
	switch r.Method {
	case http.MethodGet:
		if strings.HasPrefix(id, "Job/") {
			c.jobPolls[id]++
			switch n := c.jobPolls[id]; {
			case n >= 3 && doc["fail"] == true:
				doc["state"], doc["progress"], doc["statusMessage"], doc["returnCode"] = "FAILED", 100, "no host has room for this machine", 1
			case n >= 3:
				doc["state"], doc["progress"], doc["statusMessage"] = "SUCCESS", 100, "done"
				if v, ok := c.pending[id]; ok {
					delete(c.pending, id)
					c.docs[v["id"].(string)] = v
				}
			default:
				doc["state"], doc["progress"] = "RUNNING", n*30
			}
		}
		writeJSON(w, 200, doc)
	case http.MethodPut:
		var nd map[string]any
		if err := json.NewDecoder(r.Body).Decode(&nd); err != nil {
			writeErr(w, 400, "invalid", "The body is not a JSON object.")
			return
		}
		if sel := r.URL.Query().Get("$select"); sel != "" {
			// Replace only the selected attributes, as the gateway does.
			next := map[string]any{}
			for k, v := range doc {
				next[k] = v
			}
			for _, a := range strings.Split(sel, ",") {
				if v, ok := nd[a]; ok {
					next[a] = v
				} else {
					delete(next, a)
				}
			}
			nd = next
		}
		nd["id"] = id
		if strings.HasPrefix(id, "Volume/") {
			// Only these attributes are the user's; the rest stays.
			next := map[string]any{}
			for k, v := range doc {
				next[k] = v
			}
			for _, a := range []string{"tag", "name", "description", "visibility"} {
				if v, ok := nd[a]; ok {
					next[a] = v
				} else {
					delete(next, a)
				}
			}
			if v := next["visibility"]; v != "PUBLIC" && v != "PRIVATE" {
				writeErr(w, 400, "invalid", "The visibility must be PUBLIC or PRIVATE.")
				return
			}
			nd = next
		}
		c.docs[id] = nd
		writeJSON(w, 200, nd)
	case http.MethodDelete:
		delete(c.docs, id)
		writeJSON(w, 200, map[string]any{"status": 200, "message": id + " deleted", "resource-id": id})
	default:
		writeErr(w, 405, "invalid", "Not an operation of this resource.")
	}
}

// query supports $filter (see Match; several are and-ed), $orderby,
// $first/$last (1-based, inclusive) and $select; without $orderby
// documents are in id order.
func (c *Cloud) query(w http.ResponseWriter, r *http.Request, user, kind string) {
	q := r.URL.Query()
	for _, f := range q["$filter"] {
		if _, err := Match(f, nil); err != nil {
			writeErr(w, 400, "bad_filter", "The filter "+f+" cannot be read: "+err.Error()+".")
			return
		}
	}
	var ids []string
	for id, d := range c.docs {
		if !strings.HasPrefix(id, kind+"/") || !visible(user, d) {
			continue
		}
		ok := true
		for _, f := range q["$filter"] {
			m, _ := Match(f, d)
			ok = ok && m
		}
		if ok {
			ids = append(ids, id)
		}
	}
	slices.SortFunc(ids, func(a, b string) int {
		na, _ := strconv.Atoi(strings.TrimPrefix(a, kind+"/"))
		nb, _ := strconv.Atoi(strings.TrimPrefix(b, kind+"/"))
		return cmp.Or(na-nb, strings.Compare(a, b))
	})
	if ob := q.Get("$orderby"); ob != "" {
		slices.SortStableFunc(ids, func(a, b string) int {
			for _, key := range strings.Split(ob, ",") {
				attr, dir, _ := strings.Cut(key, ":")
				n := compareValues(c.docs[a][attr], c.docs[b][attr])
				if dir == "desc" {
					n = -n
				}
				if n != 0 {
					return n
				}
			}
			return 0
		})
	}
	count := len(ids)
	first, last := 1, count
	if v, err := strconv.Atoi(q.Get("$first")); err == nil {
		first = v
	}
	if v, err := strconv.Atoi(q.Get("$last")); err == nil {
		last = min(v, count)
	}
	var page []map[string]any
	for i := first; i <= last && i >= 1; i++ {
		d := c.docs[ids[i-1]]
		if sel := q.Get("$select"); sel != "" {
			s := map[string]any{"id": d["id"]}
			for _, a := range strings.Split(sel, ",") {
				if v, ok := d[a]; ok {
					s[a] = v
				}
			}
			d = s
		}
		page = append(page, d)
	}
	attr := ""
	for _, k := range kinds() {
		if k[1] == kind {
			attr = k[0]
		}
	}
	out := map[string]any{"id": kind, "resourceURI": "http://schemas.dmtf.org/cimi/1/" + kind + "Collection", "count": count,
		"operations": []map[string]string{{"rel": "add", "href": kind}}}
	if len(page) > 0 {
		out[attr] = page
	}
	writeJSON(w, 200, out)
	for _, d := range page {
		if m := c.docs[fmt.Sprint(d["id"])]; isMachine(m) {
			c.advance(m)
		}
	}
}

// compareValues orders two attribute values: numbers as numbers, anything
// else by its text.
func compareValues(a, b any) int {
	fa, aok := number(a)
	fb, bok := number(b)
	if aok && bok {
		return cmp.Compare(fa, fb)
	}
	return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
}

// number reads a document's number, decoded from JSON or stored by the
// fake itself.
func number(v any) (float64, bool) {
	switch n := v.(type) {
	case float64:
		return n, true
	case int:
		return float64(n), true
	case int64:
		return float64(n), true
	}
	return 0, false
}

// visible says whether user may see doc: a volume is its owner's, admin's
// and, when PUBLIC, everyone's; a machine its owner's and admin's; other
// documents are everyone's.
func visible(user string, doc map[string]any) bool {
	id, _ := doc["id"].(string)
	switch {
	case user == "admin":
		return true
	case strings.HasPrefix(id, "Volume/"):
		return doc["owner"] == user || doc["visibility"] == "PUBLIC"
	case isMachine(doc):
		return doc["owner"] == user
	}
	return true
}

// volumeWrite checks that user may change or delete the volume doc, as
// pdisk does, and writes the refusal when not.
func (c *Cloud) volumeWrite(w http.ResponseWriter, r *http.Request, user string, doc map[string]any) bool {
	if user != "admin" && doc["owner"] != user {
		op := "update"
		if r.Method == http.MethodDelete {
			op = "delete"
		}
		writeErr(w, 403, "forbidden", "Not enough rights to "+op+" disk.")
		return false
	}
	if m, _ := doc["machine"].(string); r.Method == http.MethodDelete && m != "" {
		writeErr(w, 409, "conflict", fmt.Sprintf("Volume %s is attached to machine %s; detach it (or end the machine) first.", doc["uuid"], strings.TrimPrefix(m, "Machine/")))
		return false
	}
	return true
}

// createVolume makes a volume from the plain create body {"size", "tag",
// "visibility", "description"}.
func (c *Cloud) createVolume(w http.ResponseWriter, user string, body map[string]any) {
	size, ok := body["size"].(float64)
	if !ok || size != float64(int64(size)) || size < 1 || size > 1024 {
		writeErr(w, 400, "invalid", "The size must be a whole number of GiB from 1 to 1024.")
		return
	}
	vis := "PRIVATE"
	if v, ok := body["visibility"]; ok {
		if v != "PUBLIC" && v != "PRIVATE" {
			writeErr(w, 400, "invalid", "The visibility must be PUBLIC or PRIVATE.")
			return
		}
		vis = v.(string)
	}
	uuid := newUUID()
	id := "Volume/" + uuid
	now := time.Now().UTC().Format("2006-01-02T15:04:05.000000000Z") // fixed width: sorts as text
	doc := map[string]any{
		"id": id, "resourceURI": "http://schemas.dmtf.org/cimi/1/Volume", "uuid": uuid,
		"owner": user, "size": size, "capacity": size * (1 << 20), "visibility": vis, "count": 0,
		"type": "DATA_IMAGE_RAW_READ_WRITE", "state": "AVAILABLE", "created": now, "updated": now,
	}
	for _, a := range []string{"tag", "description", "name"} {
		if v, ok := body[a].(string); ok {
			doc[a] = v
		}
	}
	if doc["tag"] == "slow" {
		job := c.newJob(id, false)
		c.pending[job] = doc
		w.Header().Set("CIMI-Job-URI", job)
		writeJSON(w, 202, map[string]any{"status": 202, "message": "accepted", "job-id": job})
		return
	}
	c.docs[id] = doc
	w.Header().Set("Location", "/cimi/"+id)
	writeJSON(w, 201, map[string]any{"status": 201, "message": "created", "resource-id": id})
}

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
