package main

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"stratuslab.dev/client/metadata"
)

// What the machine commands show of Machine documents, and how they read
// what users type: machine ids, images, context pairs, cloud-init parts
// and SSH keys. The commands themselves are in cmd_machines.go.

// machineKind is the CIMI collection of virtual machines.
const machineKind = "Machine"

// machineConfigKind is the collection of machine types.
const machineConfigKind = "MachineConfiguration"

// defaultMachineType is the type of a machine started without -t.
const defaultMachineType = "m1.small"

// listSplit separates the items of --context and --cloud-init, as in the
// original client.
const listSplit = "#"

// machine is what the commands show of a Machine document.
type machine struct {
	ID            string      `json:"id"`
	UUID          string      `json:"uuid"`
	VMID          int64       `json:"vmId"`
	Name          string      `json:"name"`
	Owner         string      `json:"owner"`
	State         string      `json:"state"`
	DetailedState string      `json:"detailedState"`
	StateMessage  string      `json:"stateMessage"`
	StateChanged  string      `json:"stateChanged"`
	Type          string      `json:"type"`
	CPU           int64       `json:"cpu"`
	Memory        int64       `json:"memory"` // KiB
	SwapMiB       int64       `json:"swapMiB"`
	CPUPercent    json.Number `json:"cpuPercent"`
	Image         struct {
		Marketplace string `json:"marketplace"`
		Volume      string `json:"volume"`
		URL         string `json:"url"`
		Bytes       int64  `json:"bytes"`
		SHA1        string `json:"sha1"`
	} `json:"image"`
	Disks []struct {
		Role       string `json:"role"`
		Volume     string `json:"volume"`
		Device     string `json:"device"`
		SizeMiB    int64  `json:"sizeMiB"`
		ReadOnly   bool   `json:"readOnly"`
		HotPlugged bool   `json:"hotPlugged"`
	} `json:"disks"`
	Interfaces []struct {
		Network string `json:"network"`
		IP      string `json:"ip"`
		MAC     string `json:"mac"`
	} `json:"networkInterfaces"`
	IP       string `json:"ip"`
	Hostname string `json:"hostname"`
	Host     string `json:"host"`
	Context  struct {
		Method    string `json:"method"`
		SSHKey    string `json:"sshKey"`
		Pairs     []pair `json:"pairs"`
		CloudInit string `json:"cloudInit"`
	} `json:"context"`
	Save *struct {
		Title string `json:"title"`
	} `json:"save"`
	SavedVolume     string `json:"savedVolume"`
	SavedImage      string `json:"savedImage"`      // the volume, as the Marketplace contract names it
	SavedIdentifier string `json:"savedIdentifier"` // the draft Marketplace entry of the saved disk
	Created         string `json:"created"`
}

func (m machine) uuid() string {
	if m.UUID != "" {
		return m.UUID
	}
	return strings.TrimPrefix(m.ID, machineKind+"/")
}

// address is where users reach the machine: its ip, else its first
// interface's.
func (m machine) address() string {
	if m.IP != "" || len(m.Interfaces) == 0 {
		return m.IP
	}
	return m.Interfaces[0].IP
}

// network names the network of the machine's address, "public" unless
// the cloud says otherwise.
func (m machine) network() string {
	if len(m.Interfaces) > 0 && m.Interfaces[0].Network != "" {
		return m.Interfaces[0].Network
	}
	return "public"
}

// state is the StratusLab state, or the CIMI one when the cloud gave no
// other.
func (m machine) state() string {
	switch {
	case m.DetailedState != "":
		return m.DetailedState
	case m.State != "":
		return m.State
	}
	return "Unknown"
}

// disk returns the device of the volume uuid among the machine's disks.
func (m machine) disk(uuid string) (string, bool) {
	for _, d := range m.Disks {
		if strings.TrimPrefix(d.Volume, volumeKind+"/") == uuid {
			return strings.TrimPrefix(d.Device, "/dev/"), d.Device != ""
		}
	}
	return "", false
}

func decodeMachine(raw json.RawMessage) (machine, error) {
	var m machine
	if err := json.Unmarshal(raw, &m); err != nil {
		return m, fmt.Errorf("the cloud sent a machine that cannot be read: %w", err)
	}
	return m, nil
}

// column is one column of the describe-instance table: its label, its
// width before the values widen it, and its value.
type column struct {
	label string
	width int
	value func(machine) string
}

// machineColumns are the columns of describe-instance, as the original
// client laid them out; wide (-v) adds type, ip and uuid before the name.
func machineColumns(wide bool) []column {
	cols := []column{
		{"id", 4, func(m machine) string { return strconv.FormatInt(m.VMID, 10) }},
		{"state", 10, machine.state},
		{"vcpu", 5, func(m machine) string { return strconv.FormatInt(m.CPU, 10) }},
		{"memory", 10, func(m machine) string { return strconv.FormatInt(m.Memory, 10) }},
		{"cpu%", 5, func(m machine) string { return percent(m.CPUPercent) }},
		{"host/ip", 24, func(m machine) string { return cmpOr(m.Hostname, m.address()) }},
	}
	if wide {
		cols = append(cols,
			column{"type", 10, func(m machine) string { return m.Type }},
			column{"ip", 16, machine.address},
			column{"uuid", 8, machine.uuid})
	}
	return append(cols, column{"name", 0, func(m machine) string { return m.Name }})
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// percent shows a CPU load as a whole number; 0 when the cloud gives none.
func percent(n json.Number) string {
	f, err := n.Float64()
	if err != nil {
		return "0"
	}
	return strconv.FormatFloat(f, 'f', 0, 64)
}

// writeMachineTable prints the describe-instance table: a header, even
// with no machine, then one line a machine. Every column but the last is
// left-aligned in its width, which grows to one more than its longest
// value when a value fills it; a machine's failure reason follows its
// line, indented by the width of the id column.
func writeMachineTable(w io.Writer, ms []machine, wide bool) {
	cols := machineColumns(wide)
	last := len(cols) - 1
	for i := range cols[:last] {
		for _, m := range ms {
			if n := len(cols[i].value(m)); n >= cols[i].width {
				cols[i].width = n + 1
			}
		}
	}
	var b strings.Builder
	for _, c := range cols[:last] {
		fmt.Fprintf(&b, "%-*s", c.width, c.label)
	}
	b.WriteString(cols[last].label + "\n")
	for _, m := range ms {
		for _, c := range cols[:last] {
			fmt.Fprintf(&b, "%-*s", c.width, c.value(m))
		}
		b.WriteString(cols[last].value(m) + "\n")
		if msg := strings.TrimSpace(m.StateMessage); msg != "" {
			b.WriteString(strings.Repeat(" ", cols[0].width) + msg + "\n")
		}
	}
	_, _ = io.WriteString(w, b.String())
}

// writeMachineDetail prints what -vv adds: a ":: MACHINE <vmId>" line and
// "key: value" lines indented by 8 spaces, as describe-volumes does for
// disks. Times are shown in loc.
func writeMachineDetail(w io.Writer, m machine, loc *time.Location) {
	fmt.Fprintf(w, ":: MACHINE %d %s\n", m.VMID, m.uuid())
	line := func(k, format string, args ...any) {
		fmt.Fprintf(w, "        %s: %s\n", k, fmt.Sprintf(format, args...))
	}
	line("name", "%s", m.Name)
	if m.Owner != "" {
		line("owner", "%s", m.Owner)
	}
	state := m.state()
	if m.StateChanged != "" {
		state += " since " + localTime(m.StateChanged, loc)
	}
	line("state", "%s", state)
	if m.StateMessage != "" {
		line("message", "%s", m.StateMessage)
	}
	line("type", "%s: %d CPU, %d MiB RAM, %d MiB swap", cmpOr(m.Type, "custom"), m.CPU, m.Memory/1024, m.SwapMiB)
	switch img := m.Image; {
	case img.Marketplace != "":
		line("image", "Marketplace %s", img.Marketplace)
	case img.Volume != "":
		line("image", "disk %s", strings.TrimPrefix(img.Volume, volumeKind+"/"))
	case img.URL != "":
		line("image", "%s (%d bytes, SHA-1 %s)", img.URL, img.Bytes, img.SHA1)
	}
	for _, n := range m.Interfaces {
		text := n.Network + " " + n.IP
		if n.MAC != "" {
			text += " mac " + n.MAC
		}
		line("network", "%s", text)
	}
	if m.Hostname != "" {
		line("hostname", "%s", m.Hostname)
	}
	for _, d := range m.Disks {
		text := d.Role
		if d.Volume != "" {
			text += " " + strings.TrimPrefix(d.Volume, volumeKind+"/")
		}
		if d.SizeMiB > 0 {
			text += fmt.Sprintf(" %d MiB", d.SizeMiB)
		}
		if d.ReadOnly {
			text += " read-only"
		}
		if d.HotPlugged {
			text += " hot-plugged"
		}
		line("disk "+cmpOr(d.Device, "?"), "%s", text)
	}
	ctx := cmpOr(m.Context.Method, "one")
	if m.Context.SSHKey != "" {
		ctx += ", SSH key"
	}
	if len(m.Context.Pairs) > 0 {
		keys := make([]string, len(m.Context.Pairs))
		for i, p := range m.Context.Pairs {
			keys[i] = p.Key
		}
		ctx += ", pairs " + strings.Join(keys, " ")
	}
	if m.Context.CloudInit != "" {
		ctx += ", cloud-init " + m.Context.CloudInit
	}
	line("context", "%s", ctx)
	if m.Save != nil {
		line("save", "%q", m.Save.Title)
	}
	if v := cmpOr(m.SavedVolume, m.SavedImage); v != "" {
		line("saved disk", "%s", strings.TrimPrefix(v, volumeKind+"/"))
	}
	if m.SavedIdentifier != "" {
		line("saved image", "%s", m.SavedIdentifier)
	}
	if m.Host != "" {
		line("host", "%s", m.Host)
	}
	if m.Created != "" {
		line("created", "%s", localTime(m.Created, loc))
	}
}

// machineRef is a machine as a user names it: its vm ID or its uuid.
type machineRef struct {
	arg  string
	vmID int64  // when named by number
	uuid string // when named by uuid
}

// parseMachineRef reads a machine argument: a vm ID (the number
// describe-instance shows) or a uuid, bare or as "Machine/<uuid>".
func parseMachineRef(arg string) (machineRef, error) {
	s := strings.TrimSpace(arg)
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 && s[0] != '+' {
		return machineRef{arg: s, vmID: n}, nil
	}
	u := strings.ToLower(strings.TrimPrefix(s, machineKind+"/"))
	if validUUID(u) {
		return machineRef{arg: s, uuid: u, vmID: -1}, nil
	}
	return machineRef{}, usageError{fmt.Errorf("%q is not a machine: give its vm ID (the number stratus describe-instance shows, e.g. 42) or its uuid", arg)}
}

func parseMachineRefs(args []string) ([]machineRef, error) {
	var refs []machineRef
	for _, a := range args {
		r, err := parseMachineRef(a)
		if err != nil {
			return nil, err
		}
		if !slices.ContainsFunc(refs, func(o machineRef) bool { return o.vmID == r.vmID && o.uuid == r.uuid }) {
			refs = append(refs, r)
		}
	}
	return refs, nil
}

// filter selects the machine in a CIMI $filter.
func (r machineRef) filter() string {
	if r.uuid != "" {
		return "uuid=" + cimiString(r.uuid)
	}
	return "vmId=" + strconv.FormatInt(r.vmID, 10)
}

// matches reports whether m is the machine r names.
func (r machineRef) matches(m machine) bool {
	if r.uuid != "" {
		return m.uuid() == r.uuid
	}
	return m.VMID == r.vmID
}

// String names the machine as the user did.
func (r machineRef) String() string { return r.arg }

// imageRef is the IMAGE of run-instance: exactly one of a Marketplace id,
// a Marketplace tag (email/tag or tag) for the cloud to resolve, a disk
// uuid, a URL (with its size and SHA-1) or a tag to look up among the
// user's disks first.
type imageRef struct {
	marketplace string
	marketTag   string
	volume      string
	url         string
	bytes       int64
	sha1        string
	tag         string
}

// isMarketplaceID reports whether s has the form of a Marketplace image
// id: 27 letters, digits, '-' and '_'.
func isMarketplaceID(s string) bool {
	if len(s) != 27 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// idHint explains a tag that may be a mistyped Marketplace id.
func idHint(tag string) string {
	if n := len(tag); n > 20 && n < 34 && !strings.ContainsAny(tag, ".:/ ") {
		return fmt.Sprintf("; a Marketplace image id has 27 characters, %q has %d", tag, n)
	}
	return ""
}

// parseImage reads the IMAGE argument. An http(s) URL needs sha1 and
// bytes (given, bytesSet); anything that is no id, uuid or URL is taken as
// the tag of one of the user's disks.
func parseImage(arg, sha1 string, bytes int64, bytesSet bool) (imageRef, error) {
	s := strings.TrimSpace(arg)
	isURL := strings.HasPrefix(strings.ToLower(s), "http://") || strings.HasPrefix(strings.ToLower(s), "https://")
	if !isURL && (sha1 != "" || bytesSet) {
		return imageRef{}, usageError{errors.New("--sha1 and --bytes describe an image given by URL; leave them out for a Marketplace id, disk uuid or tag")}
	}
	switch {
	case s == "":
		return imageRef{}, usageError{errors.New("give the image to start: a Marketplace image id (27 characters), a disk uuid, a disk tag or an http(s) URL")}
	case isMarketplaceID(s):
		return imageRef{marketplace: s}, nil
	case validUUID(strings.ToLower(strings.TrimPrefix(s, volumeKind+"/"))):
		return imageRef{volume: strings.ToLower(strings.TrimPrefix(s, volumeKind+"/"))}, nil
	case strings.HasPrefix(s, volumeKind+"/"):
		_, err := diskUUID(s)
		return imageRef{}, err
	case isURL:
		u, err := url.Parse(s)
		if err != nil || u.Host == "" {
			return imageRef{}, usageError{fmt.Errorf("image %q is not a URL one can download from", arg)}
		}
		h := strings.ToLower(strings.TrimSpace(sha1))
		if len(h) != 40 || strings.Trim(h, "0123456789abcdef") != "" {
			return imageRef{}, usageError{fmt.Errorf("an image given by URL needs its SHA-1 checksum: --sha1 with 40 hexadecimal digits (sha1sum prints it), not %q", sha1)}
		}
		if !bytesSet || bytes < 1 {
			return imageRef{}, usageError{errors.New("an image given by URL needs its exact size: --bytes N (stat -c %s FILE prints it)")}
		}
		return imageRef{url: s, sha1: h, bytes: bytes}, nil
	case strings.Contains(s, "://"):
		return imageRef{}, usageError{fmt.Errorf("image %q: only http and https URLs can be started", arg)}
	case strings.ContainsAny(s, " \t\r\n"):
		return imageRef{}, usageError{fmt.Errorf("image %q is not a Marketplace id (27 letters, digits, - and _), a disk uuid, a disk tag or an http(s) URL", arg)}
	}
	if email, tag, ok := strings.Cut(s, "/"); ok && strings.Contains(email, "@") {
		if !metadata.ValidEmail(email) || !metadata.ValidTag(tag) {
			return imageRef{}, usageError{fmt.Errorf("image %q: an endorser's tag is e-mail/tag, the tag of letters, digits, '.', '-' and '_'", arg)}
		}
		return imageRef{marketTag: s}, nil
	}
	return imageRef{tag: s}, nil
}

// body is the image as the create body carries it.
func (i imageRef) body() any {
	switch {
	case i.marketplace != "":
		return i.marketplace
	case i.marketTag != "":
		// The shape vmctl reads for a Marketplace image, with a tag in
		// place of the identifier (services/marketplace/CONTRACT.md,
		// "Image tags").
		return map[string]any{"marketplace": i.marketTag}
	case i.volume != "":
		return i.volume
	}
	return map[string]any{"url": i.url, "bytes": i.bytes, "sha1": i.sha1}
}

// pair is one context key and value.
type pair struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// validContextKey accepts the names a context file can define: letters,
// digits and '_', not starting with a digit (they become shell variables
// in the machine's context.sh).
func validContextKey(k string) bool {
	if k == "" || k[0] >= '0' && k[0] <= '9' {
		return false
	}
	for _, c := range []byte(k) {
		if c != '_' && !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// parsePair reads one KEY=VALUE; where names it in errors (e.g.
// `--context "X"`). Spaces around the key and the value are dropped.
func parsePair(s, where string) (pair, error) {
	k, v, ok := strings.Cut(s, "=")
	k, v = strings.TrimSpace(k), strings.TrimSpace(v)
	switch {
	case !ok:
		return pair{}, usageError{fmt.Errorf("%s: a context pair is KEY=VALUE, e.g. HOSTNAME=web1; %q has no '='", where, s)}
	case !validContextKey(k):
		return pair{}, usageError{fmt.Errorf("%s: the key %q is not a name: use letters, digits and _, not starting with a digit", where, k)}
	case strings.ContainsAny(v, "\r\n"):
		return pair{}, usageError{fmt.Errorf("%s: the value of %s holds a line break; a context value is one line", where, k)}
	}
	return pair{Key: k, Value: v}, nil
}

// parseContextArgs reads the --context arguments: pairs separated by '#'.
func parseContextArgs(args []string) ([]pair, error) {
	var out []pair
	for _, a := range args {
		for _, item := range strings.Split(a, listSplit) {
			if strings.TrimSpace(item) == "" {
				continue
			}
			p, err := parsePair(item, fmt.Sprintf("--context %q", item))
			if err != nil {
				return nil, err
			}
			out = append(out, p)
		}
	}
	return out, nil
}

// parseContextFile reads a context file: one KEY=VALUE a line; blank
// lines and lines starting with '#' are skipped.
func parseContextFile(name string, data []byte) ([]pair, error) {
	var out []pair
	for i, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		if l == "" || strings.HasPrefix(l, "#") {
			continue
		}
		p, err := parsePair(l, fmt.Sprintf("--context-file %s line %d", name, i+1))
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// mergePairs keeps each key once, where it first appears, with the value
// it was last given.
func mergePairs(lists ...[]pair) []pair {
	var out []pair
	for _, l := range lists {
		for _, p := range l {
			if i := slices.IndexFunc(out, func(o pair) bool { return o.Key == p.Key }); i >= 0 {
				out[i].Value = p.Value
				continue
			}
			out = append(out, p)
		}
	}
	return out
}

// writeContext writes pairs as a context file --context-file reads.
func writeContext(w io.Writer, pairs []pair) {
	var b strings.Builder
	for _, p := range pairs {
		b.WriteString(p.Key + "=" + p.Value + "\n")
	}
	_, _ = io.WriteString(w, b.String())
}

// maxCloudInitFile bounds each --cloud-init file: the cloud refuses user
// data beyond 16 KiB once compressed, so much larger files are mistakes.
const maxCloudInitFile = 1 << 20

// parseCloudInit reads --cloud-init 'MIME,FILE#MIME,FILE': each MIME is a
// subtype (cloud-config, x-shellscript) or the pseudo-type ssh (a public
// key) or none (the file as the user data, alone). It returns the
// specification as the cloud takes it and each file's content, base64,
// by the name written in the specification.
func parseCloudInit(spec string, read func(string) ([]byte, error)) (string, map[string]string, error) {
	var parts []string
	files := map[string]string{}
	for _, item := range strings.Split(spec, listSplit) {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		fields := strings.Split(item, ",")
		if len(fields) != 2 {
			return "", nil, usageError{fmt.Errorf("--cloud-init %q: each part is MIME,FILE, e.g. cloud-config,config.yaml or ssh,key.pub", item)}
		}
		mime, file := strings.TrimSpace(fields[0]), strings.TrimSpace(fields[1])
		switch {
		case mime == "" || file == "":
			return "", nil, usageError{fmt.Errorf("--cloud-init %q: each part is MIME,FILE, e.g. cloud-config,config.yaml", item)}
		case strings.Contains(mime, "/"):
			return "", nil, usageError{fmt.Errorf("--cloud-init %q: give the MIME subtype only, e.g. x-shellscript for text/x-shellscript", item)}
		case strings.Trim(strings.ToLower(mime), "abcdefghijklmnopqrstuvwxyz0123456789.+-") != "":
			return "", nil, usageError{fmt.Errorf("--cloud-init %q: %q is not a MIME subtype", item, mime)}
		}
		if _, seen := files[file]; !seen {
			data, err := read(file)
			if err != nil {
				return "", nil, fmt.Errorf("--cloud-init: cannot read %s: %w", file, err)
			}
			if len(data) > maxCloudInitFile {
				return "", nil, fmt.Errorf("--cloud-init: %s has %d bytes; cloud-init data is limited to 16 KiB once compressed", file, len(data))
			}
			files[file] = base64.StdEncoding.EncodeToString(data)
		}
		parts = append(parts, mime+","+file)
	}
	if len(parts) == 0 {
		return "", nil, usageError{errors.New("--cloud-init is empty: give MIME,FILE parts separated by #, e.g. cloud-config,config.yaml#ssh,key.pub")}
	}
	return strings.Join(parts, listSplit), files, nil
}

// readFileLimited reads a file users name, refusing ones too large to be
// what they meant.
func readFileLimited(name string, limit int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s is larger than %d bytes", name, limit)
	}
	return data, nil
}

// readPublicKeys reads the public SSH keys of a file, one a line; lines
// starting "Comment:" (SSH2-format keys) are skipped, as the original
// client did. A private key is refused: it must not leave the user's
// computer.
func readPublicKeys(path string) ([]string, error) {
	data, err := readFileLimited(path, 64<<10)
	if err != nil {
		return nil, err
	}
	if strings.Contains(string(data), "PRIVATE KEY") {
		return nil, fmt.Errorf("%s is a private key: give the public one (usually the same name ending in .pub)", path)
	}
	var keys []string
	for _, l := range strings.Split(string(data), "\n") {
		l = strings.TrimSpace(l)
		if l != "" && !strings.HasPrefix(l, "Comment:") {
			keys = append(keys, l)
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%s holds no key", path)
	}
	return keys, nil
}

// expandHome turns a leading ~/ into home, for paths from the
// configuration file, where no shell expands them.
func expandHome(path, home string) string {
	if rest, ok := strings.CutPrefix(path, "~/"); ok && home != "" {
		return filepath.Join(home, rest)
	}
	return path
}

// machineType is one machine type as --list-types shows it.
type machineType struct {
	Name      string `json:"name"`
	CPU       int64  `json:"cpu"`
	Memory    int64  `json:"memory"` // KiB
	MemoryMiB int64  `json:"memoryMiB,omitempty"`
	SwapMiB   int64  `json:"swapMiB"`
}

// ramMiB is the type's RAM, from memory (KiB) or memoryMiB.
func (t machineType) ramMiB() int64 {
	if t.Memory > 0 {
		return t.Memory / 1024
	}
	return t.MemoryMiB
}

// standardTypes are the StratusLab machine types, shown when the cloud
// does not publish its own.
func standardTypes() []machineType {
	types := []machineType{
		{Name: "t1.micro", CPU: 1, Memory: 512 * 1024, SwapMiB: 512},
		{Name: "m1.small", CPU: 1, Memory: 1536 * 1024, SwapMiB: 1536},
		{Name: "m1.medium", CPU: 1, Memory: 3072 * 1024, SwapMiB: 3072},
		{Name: "m1.large", CPU: 2, Memory: 6144 * 1024, SwapMiB: 6144},
		{Name: "m1.xlarge", CPU: 4, Memory: 8192 * 1024, SwapMiB: 8192},
		{Name: "c1.medium", CPU: 2, Memory: 1536 * 1024, SwapMiB: 1536},
		{Name: "c1.xlarge", CPU: 4, Memory: 6144 * 1024, SwapMiB: 6144},
	}
	return types
}

// writeTypes prints the machine types by name, as the original client's
// --list-types did, a '*' marking the type that would be started.
func writeTypes(w io.Writer, types []machineType, selected string) {
	types = slices.Clone(types)
	slices.SortFunc(types, func(a, b machineType) int { return strings.Compare(a.Name, b.Name) })
	width := 10
	for _, t := range types {
		width = max(width, len(t.Name))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "  %-*s %10s %10s %10s\n", width, "Type", "CPU", "RAM", "SWAP")
	for _, t := range types {
		flag := " "
		if t.Name == selected {
			flag = "*"
		}
		fmt.Fprintf(&b, "%s %-*s %10s %10s %10s\n", flag, width, t.Name,
			fmt.Sprintf("%d CPU", t.CPU), fmt.Sprintf("%d MB", t.ramMiB()), fmt.Sprintf("%d MB", t.SwapMiB))
	}
	_, _ = io.WriteString(w, b.String())
}

// title capitalizes a network name for " Public ip: ...".
func title(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// writeStartBanner prints the heading the original client printed when
// starting machines.
func writeStartBanner(w io.Writer, n int) {
	const action = "Starting machine(s)"
	rule := " " + strings.Repeat(":", len(action)+6) + "\n"
	label := "machine"
	if n > 1 {
		label = "machines"
	}
	fmt.Fprintf(w, "\n%s :: %s ::\n%s :: Starting %d %s\n", rule, action, rule, n, label)
}

// writeStarted prints one started machine: its number in this run, its vm
// ID and its address.
func writeStarted(w io.Writer, n int, m machine) {
	fmt.Fprintf(w, " :: Machine %d (vm ID: %d)\n %s ip: %s\n", n, m.VMID, title(m.network()), m.address())
}
