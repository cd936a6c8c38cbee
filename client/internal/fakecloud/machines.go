package fakecloud

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/mail"
	"slices"
	"strings"
	"time"
)

// nextState is where a read moves a machine in the detailed state d on
// to; ok is false for the states that last.
func nextState(d string) (next string, ok bool) {
	next, ok = map[string]string{
		"Pending":  "Prolog",
		"Prolog":   "Boot",
		"Boot":     "Running",
		"Shutdown": "Epilog",
		"Epilog":   "Done",
	}[d]
	return next, ok
}

// dmtfState maps a detailed state to the CIMI one.
func dmtfState(d string) string {
	switch d {
	case "Pending", "Prolog":
		return "CREATING"
	case "Boot":
		return "STARTING"
	case "Running":
		return "STARTED"
	case "Shutdown", "Epilog":
		return "STOPPING"
	case "Stopped":
		return "STOPPED"
	case "Done":
		return "DELETED"
	case "Failed":
		return "ERROR"
	}
	return "UNKNOWN"
}

// addMachineTypes stores the standard StratusLab machine types as
// MachineConfiguration documents {name, cpu, memory (KiB), swapMiB}.
func (c *Cloud) addMachineTypes() {
	for _, t := range []struct {
		name           string
		cpu, ram, swap int64 // CPUs, MiB, MiB
	}{
		{"t1.micro", 1, 512, 512},
		{"m1.small", 1, 1536, 1536},
		{"m1.medium", 1, 3072, 3072},
		{"m1.large", 2, 6144, 6144},
		{"m1.xlarge", 4, 8192, 8192},
		{"c1.medium", 2, 1536, 1536},
		{"c1.xlarge", 4, 6144, 6144},
	} {
		id := "MachineConfiguration/" + t.name
		c.docs[id] = map[string]any{"id": id, "resourceURI": "http://schemas.dmtf.org/cimi/1/MachineConfiguration",
			"name": t.name, "cpu": t.cpu, "memory": t.ram * 1024, "swapMiB": t.swap}
	}
}

// isMachine reports whether doc is a contract machine (not one of the
// generic documents the job tests create).
func isMachine(doc map[string]any) bool {
	_, ok := doc["vmId"]
	return ok && strings.HasPrefix(fmt.Sprint(doc["id"]), "Machine/")
}

// MachineState sets the detailed state (and the DMTF one) of the machine
// with vmID, e.g. to test what describe-instance shows of a Failed one.
// It reports whether there is such a machine.
func (c *Cloud) MachineState(vmID int, detailed, message string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.machineByVMID(int64(vmID))
	if m == nil {
		return false
	}
	setState(m, detailed, message)
	return true
}

// Machine returns a copy of the machine with vmID, or nil.
func (c *Cloud) Machine(vmID int) map[string]any {
	c.mu.Lock()
	defer c.mu.Unlock()
	m := c.machineByVMID(int64(vmID))
	if m == nil {
		return nil
	}
	data, _ := json.Marshal(m)
	var out map[string]any
	_ = json.Unmarshal(data, &out)
	return out
}

func (c *Cloud) machineByVMID(vmID int64) map[string]any {
	for _, d := range c.docs {
		if isMachine(d) && d["vmId"] == vmID {
			return d
		}
	}
	return nil
}

func setState(m map[string]any, detailed, message string) {
	m["detailedState"], m["state"] = detailed, dmtfState(detailed)
	if message != "" {
		m["stateMessage"] = message
	} else {
		delete(m, "stateMessage")
	}
	now := stamp()
	m["stateChanged"], m["updated"] = now, now
}

func stamp() string { return time.Now().UTC().Format("2006-01-02T15:04:05.000000000Z") }

// advance moves a machine that was just read one step on.
func (c *Cloud) advance(m map[string]any) {
	d, _ := m["detailedState"].(string)
	next, ok := nextState(d)
	switch {
	case d == "Running" && powersOff(m):
		setState(m, "Unknown", "the guest stopped by itself (shutoff)")
		return
	case !ok || m["name"] == "stuck":
		return
	case d == "Pending" && m["name"] == "doomed":
		setState(m, "Failed", "no host has room for this machine")
		c.release(m)
		return
	}
	setState(m, next, "")
	if next == "Done" {
		c.release(m)
		if save, ok := m["save"].(map[string]any); ok {
			uuid := newUUID()
			title, _ := save["title"].(string)
			now := stamp()
			c.docs["Volume/"+uuid] = map[string]any{"id": "Volume/" + uuid, "uuid": uuid, "owner": m["owner"], "size": 10.0, "count": 0,
				"visibility": "PRIVATE", "tag": title, "type": "MACHINE_IMAGE_ORIGIN", "state": "AVAILABLE", "created": now, "updated": now}
			m["savedVolume"] = "Volume/" + uuid
			m["savedIdentifier"] = c.addDraft(fmt.Sprint(m["owner"]), save, uuid)
		}
	}
}

// powersOff reports whether the guest of m ends its own run: its user data
// asks cloud-init to power it off, in a cloud-config part of a MIME
// multipart message (base64 or plain) or as the whole user data.
func powersOff(m map[string]any) bool {
	ctx, _ := m["context"].(map[string]any)
	ud, _ := ctx["userData"].(string)
	msg, err := mail.ReadMessage(strings.NewReader(ud))
	if err != nil {
		return strings.Contains(ud, "power_state:")
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || !strings.HasPrefix(mt, "multipart/") {
		return strings.Contains(ud, "power_state:")
	}
	r := multipart.NewReader(msg.Body, params["boundary"])
	for {
		p, err := r.NextRawPart()
		if err != nil {
			return false
		}
		var body io.Reader = p
		if strings.EqualFold(p.Header.Get("Content-Transfer-Encoding"), "base64") {
			body = base64.NewDecoder(base64.StdEncoding, p)
		}
		data, _ := io.ReadAll(body)
		if strings.HasPrefix(p.Header.Get("Content-Type"), "text/cloud-config") && strings.Contains(string(data), "power_state:") {
			return true
		}
	}
}

// release frees the volumes a machine holds.
func (c *Cloud) release(m map[string]any) {
	disks, _ := m["disks"].([]any)
	for _, d := range disks {
		disk, _ := d.(map[string]any)
		if v, ok := c.docs[fmt.Sprint(disk["volume"])]; ok && v["machine"] == m["id"] {
			freeVolume(v)
		}
	}
}

func freeVolume(v map[string]any) {
	delete(v, "machine")
	delete(v, "device")
	v["count"], v["state"] = 0, "AVAILABLE"
}

// machineBody is the create body of the contract.
type machineBody struct {
	Image           json.RawMessage   `json:"image"`
	Type            string            `json:"type"`
	CPU             *int64            `json:"cpu"`
	RAM             *int64            `json:"ram"`
	Swap            *int64            `json:"swap"`
	Name            string            `json:"name"`
	Description     string            `json:"description"`
	SSHKey          string            `json:"sshKey"`
	Context         []pair            `json:"context"`
	ContextMethod   string            `json:"contextMethod"`
	CloudInit       string            `json:"cloudInit"`
	Files           map[string]string `json:"files"`
	UserData        string            `json:"userData"`
	VolatileDisks   []int64           `json:"volatileDisks"`
	PersistentDisks []string          `json:"persistentDisks"`
	ReadonlyDisks   []string          `json:"readonlyDisks"`
	Network         string            `json:"network"`
	Save            map[string]any    `json:"save"`
}

type pair struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

func marketplaceID(s string) bool {
	if len(s) != 27 {
		return false
	}
	for _, c := range []byte(s) {
		if !(isNameByte(c) || c == '-') {
			return false
		}
	}
	return true
}

func uuidLike(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range []byte(s) {
		if i == 8 || i == 13 || i == 18 || i == 23 {
			if c != '-' {
				return false
			}
		} else if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func contextKey(k string) bool {
	if k == "" || k[0] >= '0' && k[0] <= '9' {
		return false
	}
	for _, c := range []byte(k) {
		if !isNameByte(c) {
			return false
		}
	}
	return true
}

// createMachine checks body as the gateway does (400, nothing allocated)
// and creates the machine in Pending.
func (c *Cloud) createMachine(w http.ResponseWriter, user string, raw []byte) {
	var b machineBody
	if err := json.Unmarshal(raw, &b); err != nil {
		writeErr(w, 400, "invalid", "The machine description cannot be read: "+err.Error()+".")
		return
	}
	bad := func(format string, args ...any) { writeErr(w, 400, "invalid", fmt.Sprintf(format, args...)) }
	image := map[string]any{}
	var s string
	var u struct {
		URL   string `json:"url"`
		Bytes int64  `json:"bytes"`
		SHA1  string `json:"sha1"`
	}
	var mp struct {
		Marketplace string `json:"marketplace"`
	}
	switch {
	case json.Unmarshal(b.Image, &s) == nil && marketplaceID(s):
		image["marketplace"] = s
	case json.Unmarshal(b.Image, &s) == nil && uuidLike(s):
		if _, ok := c.docs["Volume/"+s]; !ok {
			bad("The image %s is not a volume of this cloud.", s)
			return
		}
		image["volume"] = s
	case json.Unmarshal(b.Image, &mp) == nil && marketplaceID(mp.Marketplace):
		image["marketplace"] = mp.Marketplace
	case json.Unmarshal(b.Image, &mp) == nil && mp.Marketplace != "":
		// A tag, resolved as the Marketplace does.
		id, status, msg := c.resolveTag(user, mp.Marketplace)
		if status != 0 {
			writeErr(w, status, map[int]string{400: "invalid", 409: "conflict"}[status], msg)
			return
		}
		image["marketplace"], image["tag"] = id, mp.Marketplace
	case json.Unmarshal(b.Image, &u) == nil && u.URL != "":
		if u.Bytes <= 0 || len(u.SHA1) != 40 {
			bad("An image given by URL needs its size in bytes and its SHA-1.")
			return
		}
		image["url"], image["bytes"], image["sha1"] = u.URL, u.Bytes, u.SHA1
	default:
		bad("The image must be a Marketplace id, a volume uuid, {marketplace: id or tag} or {url, bytes, sha1}.")
		return
	}
	if b.Type == "" {
		b.Type = "m1.small"
	}
	t, ok := c.docs["MachineConfiguration/"+b.Type]
	if !ok {
		bad("There is no machine type %s: see stratus run-instance --list-types.", b.Type)
		return
	}
	fcpu, _ := number(t["cpu"])
	fmem, _ := number(t["memory"])
	fswap, _ := number(t["swapMiB"])
	cpu, mem, swap := int64(fcpu), int64(fmem), int64(fswap)
	if b.CPU != nil {
		if *b.CPU < 1 || *b.CPU > 128 {
			bad("A machine has 1 to 128 CPUs, not %d.", *b.CPU)
			return
		}
		cpu = *b.CPU
	}
	if b.RAM != nil {
		if *b.RAM < 64 || *b.RAM > 1<<20 {
			bad("A machine has 64 MiB to 1 TiB of RAM, not %d MiB.", *b.RAM)
			return
		}
		mem = *b.RAM * 1024
	}
	if b.Swap != nil {
		if *b.Swap < 0 || *b.Swap > 1<<20 {
			bad("Swap is 0 to 1 TiB, not %d MiB.", *b.Swap)
			return
		}
		swap = *b.Swap
	}
	for _, p := range b.Context {
		if !contextKey(p.Key) {
			bad("The context key %q is not a name (letters, digits and _).", p.Key)
			return
		}
	}
	switch b.ContextMethod {
	case "", "one", "cloud-init":
	default:
		bad("The context method is one or cloud-init, not %q.", b.ContextMethod)
		return
	}
	if b.Network == "" {
		b.Network = "public"
	}
	if !slices.Contains([]string{"public", "local", "private"}, b.Network) {
		bad("The network is public, local or private, not %q.", b.Network)
		return
	}
	for _, v := range b.PersistentDisks {
		vol, ok := c.docs["Volume/"+v]
		if !ok || !visible(user, vol) {
			bad("There is no volume %s.", v)
			return
		}
		if m, _ := vol["machine"].(string); m != "" {
			writeErr(w, 409, "conflict", fmt.Sprintf("Volume %s is attached to machine %s; detach it first.", v, strings.TrimPrefix(m, "Machine/")))
			return
		}
	}

	c.vmSeq++
	vmID := c.vmSeq
	uuid := newUUID()
	id := "Machine/" + uuid
	n := vmID%250 + 1
	ip := map[string]string{"public": "192.0.2.", "local": "10.1.0.", "private": "172.16.0."}[b.Network] + fmt.Sprint(n)
	name := b.Name
	if name == "" {
		name = fmt.Sprintf("one-%d", vmID)
	}
	letter := 'a'
	device := func() string { d := "vd" + string(letter); letter++; return d }
	disks := []any{map[string]any{"role": "root", "device": device(), "sizeMiB": 10240}}
	if swap > 0 {
		disks = append(disks, map[string]any{"role": "swap", "device": device(), "sizeMiB": swap})
	}
	for _, g := range b.VolatileDisks {
		disks = append(disks, map[string]any{"role": "volatile", "device": device(), "sizeMiB": g * 1024})
	}
	for _, v := range b.PersistentDisks {
		d := device()
		disks = append(disks, map[string]any{"role": "persistent", "volume": "Volume/" + v, "device": d})
		vol := c.docs["Volume/"+v]
		vol["machine"], vol["device"], vol["count"], vol["state"] = id, d, 1, "IN_USE"
	}
	for _, v := range b.ReadonlyDisks {
		disks = append(disks, map[string]any{"role": "readonly", "volume": "Volume/" + v, "device": device(), "readOnly": true})
	}
	disks = append(disks, map[string]any{"role": "context", "device": "sr0", "readOnly": true})
	pairs := []any{}
	for _, p := range b.Context {
		pairs = append(pairs, map[string]any{"key": p.Key, "value": p.Value})
	}
	method := b.ContextMethod
	if method == "" {
		method = "one"
	}
	ctx := map[string]any{"method": method, "pairs": pairs}
	for k, v := range map[string]string{"sshKey": b.SSHKey, "cloudInit": b.CloudInit, "userData": b.UserData} {
		if v != "" {
			ctx[k] = v
		}
	}
	if len(b.Files) > 0 {
		ctx["files"] = b.Files
	}
	now := stamp()
	doc := map[string]any{
		"id": id, "resourceURI": "http://schemas.dmtf.org/cimi/1/Machine", "uuid": uuid, "vmId": vmID,
		"name": name, "owner": user, "type": b.Type, "cpu": cpu, "memory": mem, "swapMiB": swap,
		"image": image, "disks": disks, "context": ctx,
		"ip": ip, "host": "Host/node-1", "created": now,
	}
	mac := fmt.Sprintf("0a:0a:00:00:%02x:%02x", vmID>>8&0xff, vmID&0xff)
	doc["networkInterfaces"] = []any{map[string]any{"network": b.Network, "ip": ip, "mac": mac}}
	if b.Network == "public" {
		doc["hostname"] = fmt.Sprintf("vm-%d.example.org", vmID)
	}
	if b.Description != "" {
		doc["description"] = b.Description
	}
	if b.Save != nil {
		doc["save"] = b.Save
	}
	setState(doc, "Pending", "")
	c.docs[id] = doc
	w.Header().Set("Location", "/cimi/"+id)
	writeJSON(w, 201, map[string]any{"status": 201, "message": "created", "resource-id": id})
}

// machine serves a contract machine: GET, DELETE (kill) and actions.
func (c *Cloud) machine(w http.ResponseWriter, r *http.Request, user string, m map[string]any, verb string) {
	if !visible(user, m) {
		writeErr(w, 404, "not_found", fmt.Sprint(m["id"])+" does not exist or you may not see it.")
		return
	}
	state, _ := m["detailedState"].(string)
	vm := m["vmId"]
	switch {
	case verb == "" && r.Method == http.MethodGet:
		writeJSON(w, 200, m)
		c.advance(m)
	case verb == "" && r.Method == http.MethodDelete:
		if state == "Done" {
			writeErr(w, 409, "conflict", fmt.Sprintf("Machine %v is already Done.", vm))
			return
		}
		setState(m, "Done", "")
		c.release(m)
		writeJSON(w, 200, map[string]any{"status": 200, "message": fmt.Sprint(m["id"]) + " killed", "resource-id": m["id"]})
	case verb != "" && r.Method == http.MethodPost:
		c.machineAction(w, r, m, verb)
	default:
		writeErr(w, 405, "invalid", "Not an operation of this resource.")
	}
}

func (c *Cloud) machineAction(w http.ResponseWriter, r *http.Request, m map[string]any, verb string) {
	var act map[string]any
	if err := json.NewDecoder(r.Body).Decode(&act); err != nil {
		writeErr(w, 400, "invalid", "The action body is not a JSON object.")
		return
	}
	if a, ok := act["action"]; ok && a != "http://schemas.dmtf.org/cimi/1/action/"+verb {
		writeErr(w, 400, "invalid", fmt.Sprintf("The action document names %v, not %s.", a, verb))
		return
	}
	state, _ := m["detailedState"].(string)
	vm := m["vmId"]
	conflict := func(format string, args ...any) { writeErr(w, 409, "conflict", fmt.Sprintf(format, args...)) }
	need := func(want string) bool {
		if state != want {
			conflict("Machine %v is %s, not %s.", vm, state, want)
			return false
		}
		return true
	}
	switch verb {
	case "stop":
		if !need("Running") {
			return
		}
		setState(m, "Stopped", "")
	case "start":
		if !need("Stopped") {
			return
		}
		setState(m, "Boot", "")
	case "restart":
		if !need("Running") {
			return
		}
		setState(m, "Boot", "")
	case "shutdown":
		if state != "Stopped" && state != "Unknown" && !need("Running") {
			return
		}
		if save, ok := act["save"].(map[string]any); ok {
			m["save"] = save
		}
		setState(m, "Shutdown", "")
	case "attach_volume", "detach_volume":
		if !need("Running") {
			return
		}
		uuid, _ := act["volume"].(string)
		vol, ok := c.docs["Volume/"+uuid]
		if !ok || !visible(fmt.Sprint(m["owner"]), vol) {
			writeErr(w, 404, "not_found", "Volume/"+uuid+" does not exist or you may not see it.")
			return
		}
		disks, _ := m["disks"].([]any)
		at := slices.IndexFunc(disks, func(d any) bool { return d.(map[string]any)["volume"] == "Volume/"+uuid })
		if verb == "attach_volume" {
			if holder, _ := vol["machine"].(string); holder != "" {
				conflict("Volume %s is attached to machine %s; detach it first.", uuid, strings.TrimPrefix(holder, "Machine/"))
				return
			}
			used := map[string]bool{}
			for _, d := range disks {
				used[fmt.Sprint(d.(map[string]any)["device"])] = true
			}
			dev := "vda"
			for l := 'a'; used[dev]; l++ {
				dev = "vd" + string(l+1)
			}
			m["disks"] = append(disks, map[string]any{"role": "persistent", "volume": "Volume/" + uuid, "device": dev, "hotPlugged": true})
			vol["machine"], vol["device"], vol["count"], vol["state"] = m["id"], dev, 1, "IN_USE"
			break
		}
		switch {
		case at < 0:
			conflict("Volume %s is not attached to machine %v.", uuid, vm)
			return
		case disks[at].(map[string]any)["hotPlugged"] != true:
			conflict("Disk have not been hot-plugged")
			return
		}
		m["disks"] = slices.Delete(disks, at, at+1)
		freeVolume(vol)
	default:
		writeErr(w, 404, "not_found", "A machine has no action "+verb+".")
		return
	}
	job := c.newJob(fmt.Sprint(m["id"]), false)
	w.Header().Set("CIMI-Job-URI", job)
	writeJSON(w, 202, map[string]any{"status": 202, "message": "accepted", "job-id": job})
}
