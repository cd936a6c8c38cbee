package hosts

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"slices"
	"strings"
	"time"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
)

// Kind is the CIMI kind of host documents and the name of their store
// collection.
const Kind = "Host"

// Host states.
const (
	// Available: the agent is heart-beating; the host takes machines
	// unless it is in maintenance.
	Available = "AVAILABLE"
	// Unavailable: the agent stopped heart-beating; its machines are shown
	// Unknown until it comes back.
	Unavailable = "UNAVAILABLE"
)

// MaxIDLength bounds host ids, in bytes.
const MaxIDLength = 200

// Reservation is what one machine holds on its host.
type Reservation struct {
	CPU       int   `json:"cpu"`
	MemoryMiB int64 `json:"memoryMiB"`
}

// Host is a VM host as its document stores it. Fields have no omitempty:
// every modelled attribute is always written, so that a write replaces all
// of them and keeps only attributes this package does not know (see
// Registry.encode).
type Host struct {
	// ID is the host's own id, e.g. "node-3"; its document is "Host/node-3".
	ID          string    `json:"-"`
	Name        string    `json:"name"`
	Description string    `json:"description"`
	Created     time.Time `json:"created"`
	Updated     time.Time `json:"updated"`
	ACL         cimi.ACL  `json:"acl"`

	// Facts the agent reports when it starts.
	Hostname   string `json:"hostname"`
	LibvirtURI string `json:"libvirtURI"`
	CPUs       int    `json:"cpus"`
	MemoryMiB  int64  `json:"memoryMiB"`
	// Versions of the software on the host, for administrators.
	LibvirtVersion    string `json:"libvirtVersion"`
	Hypervisor        string `json:"hypervisor"`
	HypervisorVersion string `json:"hypervisorVersion"`
	AgentVersion      string `json:"agentVersion"`

	// AllocatedCPUs and AllocatedMemoryMiB are the sums of Reservations,
	// kept in the document for listings and queries.
	AllocatedCPUs      int   `json:"allocatedCPUs"`
	AllocatedMemoryMiB int64 `json:"allocatedMemoryMiB"`
	// Reservations maps each machine placed here (its uuid) to what it
	// holds, so that reserving and releasing are idempotent.
	Reservations map[string]Reservation `json:"reservations"`

	// Load the agent reports at every heartbeat. FreeCPUPercent counts 100
	// per idle core, as load.txt does.
	FreeCPUPercent  int       `json:"freeCPUPercent"`
	FreeMemoryMiB   int64     `json:"freeMemoryMiB"`
	RunningMachines int       `json:"runningMachines"`
	LastHeartbeat   time.Time `json:"lastHeartbeat"`

	// Maintenance is set by administrators: no new machines come here.
	Maintenance  bool   `json:"maintenance"`
	State        string `json:"state"`
	StateMessage string `json:"stateMessage"`
}

// DocumentID returns the store and CIMI id of the host with this id.
func DocumentID(id string) string { return Kind + "/" + id }

// ACL is the access control list of every host document: owned by the
// ::ADMIN role, so that nobody else sees hosts through CIMI.
func ACL() cimi.ACL {
	return cimi.ACL{Owner: cimi.Owner{Principal: cimi.RoleAdmin, Type: cimi.Role}}
}

// ValidID returns an errs.Invalid error unless id can name a host: 1 to
// MaxIDLength ASCII letters, digits, '.', '-' and '_' (a host name, an
// address), which print in tables and sit in a CIMI id unescaped.
func ValidID(id string) error {
	if id == "" || len(id) > MaxIDLength {
		return errs.Errorf(errs.Invalid, "A host id has 1 to %d characters; %q has %d.", MaxIDLength, short(id), len(id))
	}
	for _, c := range []byte(id) {
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' || c == '_'
		if !ok {
			return errs.Errorf(errs.Invalid, "The host id %q may hold only letters, digits, '.', '-' and '_'.", short(id))
		}
	}
	return nil
}

// clone returns a copy of h that shares nothing mutable with it.
func (h *Host) clone() *Host {
	c := *h
	c.Reservations = maps.Clone(h.Reservations)
	c.ACL.Rules = slices.Clone(h.ACL.Rules)
	return &c
}

// reserve records machine's reservation and the new totals.
func (h *Host) reserve(machine string, cpu int, memMiB int64) {
	if h.Reservations == nil {
		h.Reservations = map[string]Reservation{}
	}
	h.Reservations[machine] = Reservation{CPU: cpu, MemoryMiB: memMiB}
	h.total()
}

// release forgets machine's reservation; it reports whether there was one.
func (h *Host) release(machine string) bool {
	if _, ok := h.Reservations[machine]; !ok {
		return false
	}
	delete(h.Reservations, machine)
	h.total()
	return true
}

// total derives the allocated amounts from the reservations, so that the
// two can never drift apart.
func (h *Host) total() {
	h.AllocatedCPUs, h.AllocatedMemoryMiB = 0, 0
	for _, r := range h.Reservations {
		h.AllocatedCPUs += r.CPU
		h.AllocatedMemoryMiB += r.MemoryMiB
	}
}

// limits returns how much the host may promise: its capacity times the
// over-commit ratios, rounded down.
func (h *Host) limits(cpuRatio, memRatio float64) (cpu int, memMiB int64) {
	return int(scale(float64(h.CPUs), cpuRatio)), int64(scale(float64(h.MemoryMiB), memRatio))
}

// scale multiplies and rounds down, forgiving the rounding error of ratios
// such as 1.1 that binary floating point cannot hold exactly.
func scale(n, ratio float64) float64 {
	return math.Floor(n*ratio + 1e-9)
}

// fits reports whether a machine of cpu and memMiB fits in what is left
// below the limits.
func (h *Host) fits(cpu int, memMiB int64, cpuRatio, memRatio float64) bool {
	maxCPU, maxMem := h.limits(cpuRatio, memRatio)
	return h.AllocatedCPUs+cpu <= maxCPU && h.AllocatedMemoryMiB+memMiB <= maxMem
}

// load is the larger of the CPU and memory shares of the limits the host
// would have promised with cpu and memMiB more: what spreading minimises.
func (h *Host) load(cpu int, memMiB int64, cpuRatio, memRatio float64) float64 {
	maxCPU, maxMem := h.limits(cpuRatio, memRatio)
	return max(float64(h.AllocatedCPUs+cpu)/float64(max(maxCPU, 1)),
		float64(h.AllocatedMemoryMiB+memMiB)/float64(max(maxMem, 1)))
}

// document is a host as stored: the CIMI common attributes the store and
// CIMI need around the Host fields.
type document struct {
	ID          string `json:"id"`
	ResourceURI string `json:"resourceURI"`
	Host
}

// decode reads a stored host document with id docID. It returns the
// attributes it does not model, to be written back unchanged.
func decode(docID string, body []byte) (*Host, map[string]json.RawMessage, error) {
	id, ok := strings.CutPrefix(docID, Kind+"/")
	if !ok {
		return nil, nil, fmt.Errorf("host document %q: not a %s id", docID, Kind)
	}
	var d document
	if err := json.Unmarshal(body, &d); err != nil {
		return nil, nil, fmt.Errorf("host document %q: %w", docID, err)
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(body, &all); err != nil {
		return nil, nil, fmt.Errorf("host document %q: %w", docID, err)
	}
	for k := range all {
		if knownAttr(k) {
			delete(all, k)
		}
	}
	h := d.Host
	h.ID = id
	if len(all) == 0 {
		all = nil
	}
	return &h, all, nil
}

// encode writes h as a stored document, with the attributes extra that
// another writer added (a "_command" of the CIMI layer, a property).
func encode(h *Host, extra map[string]json.RawMessage) (json.RawMessage, error) {
	d := document{ID: DocumentID(h.ID), ResourceURI: cimi.ResourceURI(Kind), Host: *h}
	if d.Reservations == nil {
		d.Reservations = map[string]Reservation{}
	}
	body, err := json.Marshal(d)
	if err != nil || len(extra) == 0 {
		return body, err
	}
	var all map[string]json.RawMessage
	if err := json.Unmarshal(body, &all); err != nil {
		return nil, err
	}
	for k, v := range extra {
		if _, ok := all[k]; !ok {
			all[k] = v
		}
	}
	return json.Marshal(all)
}

// knownAttr reports whether attr is one document models. The list is the
// JSON names of document's fields, which TestKnownAttributes checks.
func knownAttr(attr string) bool {
	switch attr {
	case "id", "resourceURI", "name", "description", "created", "updated", "acl",
		"hostname", "libvirtURI", "cpus", "memoryMiB",
		"libvirtVersion", "hypervisor", "hypervisorVersion", "agentVersion",
		"allocatedCPUs", "allocatedMemoryMiB", "reservations",
		"freeCPUPercent", "freeMemoryMiB", "runningMachines", "lastHeartbeat",
		"maintenance", "state", "stateMessage":
		return true
	}
	return false
}

// short keeps error messages readable when input is garbage.
func short(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
