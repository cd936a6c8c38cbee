package webui

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/url"
	"strconv"
	"strings"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/services/cimi/internal/api"
)

// Machine: the virtual machines of vmctl (services/vmctl/internal/machine).

// machineView shows machines as stratus-describe-instance does (vm id,
// state, type, CPUs, memory, address, name), runs them with the options of
// stratus-run-instance, and offers their actions on their pages: stop,
// start, restart, shutdown, kill, attaching and detaching volumes.
func machineView() kindView {
	// The StratusLab states vmctl gives detailedState.
	states := []string{"Pending", "Prolog", "Boot", "Running", "Shutdown", "Epilog", "Done", "Failed", "Unknown", "Stopped"}
	return kindView{
		Columns: []column{
			{Head: "vmId", Attr: "vmId", Cell: func(d api.Document) cell {
				id := text(d["id"])
				n := text(d["vmId"])
				if n == "" {
					n = localOf(id)
				}
				return cell{Text: n, Ref: id}
			}},
			attrColumn("name"),
			{Head: "state", Attr: "detailedState", Cell: func(d api.Document) cell {
				return cell{Text: text(d["detailedState"]), Note: text(d["state"])}
			}},
			attrColumn("type"),
			attrColumn("cpu"),
			{Head: "memory", Attr: "memory", Cell: func(d api.Document) cell { return cell{Text: memory(d["memory"])} }},
			attrColumn("ip"),
			attrColumn("hostname"),
			attrColumn("owner"),
			attrColumn("created"),
		},
		Quick: []quickFilter{
			{Name: "detailedState", Label: "state", Options: states},
			{Name: "type", Label: "type"},
			{Name: "name", Label: "name"},
		},
		// The create body of the Machine contract: the options of
		// stratus-run-instance a person sets most.
		Create: []field{
			{Name: "image", Label: "image", Type: fieldText, Required: true, Trim: true, MaxLen: 4096,
				Placeholder: "Marketplace id or volume uuid"},
			{Name: "type", Label: "type", Type: fieldSelect, Choices: machineTypes, Default: "m1.small"},
			{Name: "cpu", Label: "CPUs", Type: fieldNumber, Min: 1},
			{Name: "ram", Label: "RAM (MiB)", Type: fieldNumber, Min: 1},
			{Name: "swap", Label: "swap (MiB)", Type: fieldNumber},
			{Name: "name", Label: "name", Type: fieldText, Trim: true, MaxLen: 256, Placeholder: "one-<vm id>"},
			{Name: "sshKey", Label: "SSH public key", Type: fieldTextarea, Trim: true, Placeholder: "ssh-ed25519 AAAA… user@host"},
			{Name: "context", Label: "context pairs", Type: fieldPairs, Placeholder: "KEY=value, one a line"},
			{Name: "network", Label: "network", Type: fieldChoice, Options: []string{"public", "local", "private"}},
			{Name: "volatileDisk", Attr: "volatileDisks", List: true, Label: "volatile disk (GiB)", Type: fieldNumber, Min: 1},
			{Name: "persistentDisk", Attr: "persistentDisks", List: true, Label: "persistent disk", Type: fieldText, Trim: true,
				MaxLen: 64, Placeholder: "volume uuid"},
		},
		Details:    machineDetails,
		AddVerb:    "run",
		DeleteVerb: "kill",
		DeleteWarning: "The machine is destroyed at once, without shutting its system down: what its volatile disks " +
			"hold is lost, its address and volumes are released. This cannot be undone.",
		ActionParams: map[string]string{"attach_volume": "volume", "detach_volume": "volume"},
		ActionForms: []actionForm{{ID: "attach", Action: "attach_volume", Param: "volume", Label: "attach a volume",
			Placeholder: "volume uuid", Submit: "attach"}},
		// A Done machine stays a while to be read (describe-instance shows
		// Done); vmctl refuses to kill it again, and it holds nothing to
		// stop, start or detach.
		Ended: func(d api.Document) bool { return text(d["detailedState"]) == "Done" },
	}
}

// machineType is one machine configuration: CPUs, RAM and swap.
type machineType struct {
	Name            string
	CPU             int64
	RAMMiB, SwapMiB int64
}

// standardTypes are the machine types of StratusLab (REFERENCE.md
// "Machines"), offered when the cloud has no MachineConfiguration
// collection.
func standardTypes() []machineType {
	return []machineType{
		{"t1.micro", 1, 512, 512},
		{"m1.small", 1, 1536, 1536},
		{"m1.medium", 1, 3072, 3072},
		{"m1.large", 2, 6144, 6144},
		{"m1.xlarge", 4, 8192, 8192},
		{"c1.medium", 2, 1536, 1536},
		{"c1.xlarge", 4, 6144, 6144},
	}
}

// machineTypes are the options of the type select box: the cloud's
// MachineConfiguration documents when it has some the caller may read,
// else the standard types, as stratus-run-instance --list-types does.
func machineTypes(ctx context.Context, res api.Resources, who cimi.Identity) []option {
	types := standardTypes()
	if _, ok := res.Kind("MachineConfiguration"); ok {
		c, err := res.Query(ctx, who, "MachineConfiguration", url.Values{"$first": {"1"}, "$last": {"100"}})
		if err == nil {
			var read []machineType
			for _, d := range c.Docs {
				name, _ := d["name"].(string)
				if name == "" {
					continue
				}
				t := machineType{Name: name}
				t.CPU, _ = integer(d["cpu"])
				if kib, ok := integer(d["memory"]); ok {
					t.RAMMiB = kib / 1024
				}
				t.SwapMiB, _ = integer(d["swapMiB"])
				read = append(read, t)
			}
			if len(read) > 0 {
				types = read
			}
		}
	}
	out := make([]option, 0, len(types))
	for _, t := range types {
		cpus := "CPU"
		if t.CPU != 1 {
			cpus = "CPUs"
		}
		label := fmt.Sprintf("%s: %d %s, %s RAM", t.Name, t.CPU, cpus, sizeMiB(t.RAMMiB))
		if t.SwapMiB > 0 {
			label += ", " + sizeMiB(t.SwapMiB) + " swap"
		}
		out = append(out, option{Value: t.Name, Label: label})
	}
	return out
}

// integer reads a whole number of a decoded document.
func integer(v any) (int64, bool) {
	switch n := v.(type) {
	case float64:
		if n == math.Trunc(n) && math.Abs(n) < 1<<53 {
			return int64(n), true
		}
	case json.Number:
		i, err := n.Int64()
		return i, err == nil
	case int:
		return int64(n), true
	case int64:
		return n, true
	}
	return 0, false
}

// sizeMiB shows a size in MiB as people read it: "512 MiB", "1.5 GiB".
func sizeMiB(n int64) string {
	// Whole quarters of a GiB read well; the others stay in MiB.
	if n < 1024 || n%256 != 0 {
		return strconv.FormatInt(n, 10) + " MiB"
	}
	return strconv.FormatFloat(float64(n)/1024, 'f', -1, 64) + " GiB"
}

// memory shows a machine's memory, which CIMI counts in KiB.
func memory(v any) string {
	kib, ok := integer(v)
	if !ok {
		return text(v)
	}
	if kib%1024 != 0 {
		return strconv.FormatInt(kib, 10) + " KiB"
	}
	return sizeMiB(kib / 1024)
}

// offers reports whether the document's operations offer the action verb.
func offers(d api.Document, verb string) bool {
	return hasOp(operations(d), cimi.ActionURI(verb))
}

// machineDetails lays out what a person looks for on a machine's page.
func machineDetails(res api.Resources, d api.Document) ([]attr, []string) {
	var rows []attr
	add := func(name, value string) {
		rows = append(rows, attr{Name: name, Value: value})
	}
	add("vmId", text(d["vmId"]))
	add("uuid", text(d["uuid"]))
	add("name", text(d["name"]))
	if s := text(d["description"]); s != "" {
		add("description", s)
	}
	rows = append(rows, attr{Name: "state", Value: text(d["detailedState"]), Note: text(d["state"])})
	if m := text(d["stateMessage"]); m != "" {
		add("state message", m)
	}
	add("state changed", text(d["stateChanged"]))
	add("type", text(d["type"]))
	add("cpu", text(d["cpu"]))
	add("memory", memory(d["memory"]))
	swap := text(d["swapMiB"])
	if n, ok := integer(d["swapMiB"]); ok {
		swap = sizeMiB(n)
	}
	add("swap", swap)
	rows = append(rows, image(res, d["image"]))
	add("ip", text(d["ip"]))
	add("hostname", text(d["hostname"]))
	if h := text(d["host"]); h != "" {
		rows = append(rows, attr{Name: "host", Value: h, Link: linkTo(res, h)})
	}
	add("owner", text(d["owner"]))
	rows = append(rows, interfaces(d["networkInterfaces"]), disks(res, d))
	cx, _ := d["context"].(map[string]any)
	if k := text(cx["sshKey"]); k != "" {
		add("ssh key", k)
	}
	rows = append(rows, contextItems(cx))
	if v := text(d["savedVolume"]); v != "" {
		ref := v
		if !strings.HasPrefix(ref, "Volume/") {
			ref = "Volume/" + ref
		}
		rows = append(rows, attr{Name: "saved volume", Value: v, Link: linkTo(res, ref)})
	}
	return rows, []string{"vmId", "uuid", "name", "description", "state", "detailedState", "stateMessage", "stateChanged",
		"type", "cpu", "memory", "swapMiB", "image", "ip", "hostname", "host", "owner", "networkInterfaces", "disks",
		"context", "savedVolume"}
}

// image says what a machine's root disk was made from.
func image(res api.Resources, v any) attr {
	a := attr{Name: "image"}
	im, _ := v.(map[string]any)
	switch {
	case text(im["marketplace"]) != "":
		a.Value, a.Note = text(im["marketplace"]), "Marketplace"
	case text(im["volume"]) != "":
		vol := text(im["volume"])
		ref := vol
		if !strings.HasPrefix(ref, "Volume/") {
			ref = "Volume/" + vol
		}
		a.Value, a.Link, a.Note = localOf(ref), linkTo(res, ref), "volume"
	case text(im["url"]) != "":
		a.Value = text(im["url"])
		var about []string
		if b := text(im["bytes"]); b != "" {
			about = append(about, b+" bytes")
		}
		if s := text(im["sha1"]); s != "" {
			about = append(about, "SHA-1 "+s)
		}
		a.Note = strings.Join(about, ", ")
	default:
		a.Value = text(v)
	}
	return a
}

// records reads a list of JSON objects of a document.
func records(v any) []map[string]any {
	list, _ := v.([]any)
	out := make([]map[string]any, 0, len(list))
	for _, e := range list {
		if m, ok := e.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

// interfaces lays out a machine's network interfaces; rows are "nic-<n>"
// from 0, in the machine's order (eth0 first).
func interfaces(v any) attr {
	a := attr{Name: "interfaces", Value: "none"}
	nics := records(v)
	if len(nics) == 0 {
		return a
	}
	t := &table{Heads: []string{"network", "ip", "mac"}}
	for i, n := range nics {
		t.Rows = append(t.Rows, tableRow{ID: fmt.Sprintf("nic-%d", i),
			Cells: []cellView{{Text: text(n["network"])}, {Text: text(n["ip"])}, {Text: text(n["mac"])}}})
	}
	a.Value, a.Table = "", t
	return a
}

// disks lays out a machine's disks, rows "disk-<device>"; a hot-plugged
// volume has a "detach-<uuid>" button when the machine offers
// detach_volume (those attached at launch stay until the machine ends).
func disks(res api.Resources, d api.Document) attr {
	a := attr{Name: "disks", Value: "none"}
	ds := records(d["disks"])
	if len(ds) == 0 {
		return a
	}
	detach := offers(d, "detach_volume")
	t := &table{Heads: []string{"device", "role", "volume", "size", "access", "attached"}, Actions: detach}
	for i, disk := range ds {
		dev := text(disk["device"])
		r := tableRow{ID: fmt.Sprintf("disk-%d", i)}
		if dev != "" {
			r.ID = "disk-" + dev
		}
		vol := text(disk["volume"])
		vc := cellView{Text: localOf(vol), Link: linkTo(res, vol)}
		if vol == "" {
			vc.Text = "—"
		}
		size := ""
		if n, ok := integer(disk["sizeMiB"]); ok && n > 0 {
			size = sizeMiB(n)
		}
		access := "read-write"
		if ro, _ := disk["readOnly"].(bool); ro {
			access = "read-only"
		}
		hot, _ := disk["hotPlugged"].(bool)
		attached := "at launch"
		if hot {
			attached = "hot-plugged"
		}
		r.Cells = []cellView{{Text: dev}, {Text: text(disk["role"])}, vc, {Text: size}, {Text: access}, {Text: attached}}
		if detach && hot && vol != "" {
			u := localOf(vol)
			r.Button = &actionButton{ID: "detach-" + u, Text: "detach", Action: "detach_volume", Param: "volume", Value: u}
		}
		t.Rows = append(t.Rows, r)
	}
	a.Value, a.Table = "", t
	return a
}

// contextItems lists what a machine's context disk carries beside the
// SSH key: the method, the pairs as KEY=value, the cloud-init parts and
// the size of the user data (which may be large and binary).
func contextItems(cx map[string]any) attr {
	a := attr{Name: "context", Value: "none"}
	if m := text(cx["method"]); m != "" {
		a.Items = append(a.Items, item{Text: "method " + m})
	}
	for _, p := range records(cx["pairs"]) {
		a.Items = append(a.Items, item{Text: text(p["key"]) + "=" + text(p["value"])})
	}
	if c := text(cx["cloudInit"]); c != "" {
		a.Items = append(a.Items, item{Text: "cloud-init " + c})
	}
	if files, ok := cx["files"].(map[string]any); ok && len(files) > 0 {
		a.Items = append(a.Items, item{Text: fmt.Sprintf("%d files", len(files))})
	}
	if u := text(cx["userData"]); u != "" {
		a.Items = append(a.Items, item{Text: fmt.Sprintf("user data, %d bytes", len(u))})
	}
	if len(a.Items) > 0 {
		a.Value = ""
	}
	return a
}
