// Package machine is the Machine document vmctl owns: its fields as
// stored and as returned through CIMI, its states (the DMTF ones in
// "state", the StratusLab ones in "detailedState"), and the create body
// users send.
package machine

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	machinev1 "stratuslab.dev/proto/stratus/machine/v1"
)

// Kind is the CIMI kind and the name of the store collection.
const Kind = "Machine"

// State is the DMTF CIMI state of a machine.
type State string

// CIMI machine states.
const (
	Creating State = "CREATING"
	Starting State = "STARTING"
	Started  State = "STARTED"
	Stopping State = "STOPPING"
	Stopped  State = "STOPPED"
	Deleting State = "DELETING"
	Deleted  State = "DELETED"
	ErrorS   State = "ERROR"
	Unknown  State = "UNKNOWN"
)

// Detailed is the StratusLab (OpenNebula) state the CLI shows.
type Detailed string

// StratusLab detailed states (REFERENCE.md "Machines").
const (
	Pending  Detailed = "Pending"  // accepted, not yet placed
	Prolog   Detailed = "Prolog"   // placed; disks, addresses and context being prepared
	Boot     Detailed = "Boot"     // the hypervisor is starting the domain
	Running  Detailed = "Running"  // the domain runs
	Shutdown Detailed = "Shutdown" // the guest was asked to power off
	Epilog   Detailed = "Epilog"   // resources being released (and the root disk saved)
	Done     Detailed = "Done"     // gone; every resource released
	Failed   Detailed = "Failed"   // could not start or run; StateMessage says why
	// UnknownD: the guest powered itself off or its host was lost;
	// resources stay allocated until the machine is killed.
	UnknownD Detailed = "Unknown"
	// StoppedD: stopped by a CIMI stop; may be started again.
	StoppedD Detailed = "Stopped"
)

// CIMIState maps a detailed state to the DMTF one.
func CIMIState(d Detailed) State {
	switch d {
	case Pending, Prolog:
		return Creating
	case Boot:
		return Starting
	case Running:
		return Started
	case Shutdown, Epilog:
		return Stopping
	case StoppedD:
		return Stopped
	case Done:
		return Deleted
	case Failed:
		return ErrorS
	}
	return Unknown
}

// Disk roles.
const (
	RoleRoot       = "root"
	RoleSwap       = "swap"
	RoleVolatile   = "volatile"
	RoleContext    = "context"
	RolePersistent = "persistent"
	RoleReadOnly   = "readonly"
)

// Disk is one disk of a machine.
type Disk struct {
	Role string `json:"role"`
	// Volume is the pdisk volume id ("Volume/<uuid>"); none for the
	// context disk and swap, which live beside the domain on its host.
	Volume string `json:"volume,omitempty"`
	// Image is the Marketplace entry a read-only disk is a copy of
	// (--readonly-disk with an identifier or a tag), resolved at create.
	Image *Image `json:"image,omitempty"`
	// Device is the guest device, e.g. "vda".
	Device     string `json:"device,omitempty"`
	SizeMiB    int64  `json:"sizeMiB,omitempty"`
	ReadOnly   bool   `json:"readOnly,omitempty"`
	HotPlugged bool   `json:"hotPlugged,omitempty"`
}

// Interface is one network interface and its lease.
type Interface struct {
	Network string `json:"network"` // "public", "local" or "private"
	IP      string `json:"ip"`
	MAC     string `json:"mac"`
}

// Image says what the root disk is made from: exactly one of a
// Marketplace reference, a volume and a URL; for a reference, the entry
// it resolved to when the machine was created, so that the deploy needs
// no second lookup and the machine shows what it runs.
type Image struct {
	// Marketplace is what the user asked for: a 27-character identifier,
	// "<endorser e-mail>/<tag>" or a tag.
	Marketplace string `json:"marketplace,omitempty"`
	// Volume is a pdisk volume uuid the root disk is copied from.
	Volume string `json:"volume,omitempty"`
	// URL, with Bytes and SHA1, is an image to fetch into the cache.
	URL   string `json:"url,omitempty"`
	Bytes int64  `json:"bytes,omitempty"`
	SHA1  string `json:"sha1,omitempty"`

	// What a Marketplace reference resolved to (Bytes and SHA1 above
	// too): the entry's identifier and CIMI id ("MachineImage/<uuid>"),
	// its http(s) locations in order, the pdisk volume holding it (a
	// "pdisk:<uuid>" location: a draft, a private image), and what the
	// entry says of the image.
	Identifier  string   `json:"identifier,omitempty"`
	Entry       string   `json:"entry,omitempty"`
	Locations   []string `json:"locations,omitempty"`
	FromVolume  string   `json:"fromVolume,omitempty"`
	Format      string   `json:"format,omitempty"`
	Compression string   `json:"compression,omitempty"`
	Kind        string   `json:"kind,omitempty"`
	// Status is the entry's status when the machine was created: valid,
	// draft, or expired or deprecated when the site's policy allows them.
	Status   string `json:"status,omitempty"`
	Endorser string `json:"endorser,omitempty"`
	OS       string `json:"os,omitempty"`
	// OSVersion and OSArch, with OS, describe the image for the draft a
	// --save capture of the machine becomes.
	OSVersion string `json:"osVersion,omitempty"`
	OSArch    string `json:"osArch,omitempty"`
}

// FromMarketplace reports whether img came from a Marketplace entry.
func (img Image) FromMarketplace() bool { return img.Identifier != "" }

// Save asks for the root disk to be captured at shutdown.
type Save struct {
	Title        string `json:"title,omitempty"`
	Comment      string `json:"comment,omitempty"`
	Author       string `json:"author,omitempty"`
	AuthorEmail  string `json:"authorEmail,omitempty"`
	ImageVersion string `json:"imageVersion,omitempty"`
}

// Pair is one contextualisation key and value.
type Pair struct {
	Key   string `json:"key"`
	Value string `json:"value"`
}

// Context is what the machine's context disk carries.
type Context struct {
	// Method is "one" (HEPiX/OpenNebula CD-ROM, the default) or
	// "cloud-init".
	Method string `json:"method,omitempty"`
	SSHKey string `json:"sshKey,omitempty"`
	Pairs  []Pair `json:"pairs,omitempty"`
	// CloudInit is the --cloud-init specification ("mime,file#...") with
	// the files' contents, base64, in Files.
	CloudInit string            `json:"cloudInit,omitempty"`
	Files     map[string]string `json:"files,omitempty"`
	UserData  string            `json:"userData,omitempty"`
}

// Machine is the stored document and, without "_" attributes, the CIMI
// representation.
type Machine struct {
	ID          string          `json:"id"`
	ResourceURI string          `json:"resourceURI,omitempty"`
	Name        string          `json:"name,omitempty"`
	Description string          `json:"description,omitempty"`
	Created     string          `json:"created,omitempty"`
	Updated     string          `json:"updated,omitempty"`
	ACL         json.RawMessage `json:"acl,omitempty"`

	UUID string `json:"uuid"`
	// VMID is the short number users type (stratus-kill-instance 42),
	// allocated in order at creation.
	VMID  int64  `json:"vmId"`
	Owner string `json:"owner"`

	State         State    `json:"state"`
	DetailedState Detailed `json:"detailedState"`
	StateMessage  string   `json:"stateMessage,omitempty"`
	StateChanged  string   `json:"stateChanged,omitempty"`

	// Type is the machine configuration, e.g. "m1.small"; CPU, Memory
	// (KiB, as CIMI counts it) and SwapMiB are what the machine got after
	// overrides.
	Type    string `json:"type"`
	CPU     int    `json:"cpu"`
	Memory  int64  `json:"memory"`
	SwapMiB int64  `json:"swapMiB"`
	// CPUPercent is the share of one CPU the machine used between its
	// agent's last two heartbeats (a busy two-CPU machine shows 200),
	// written when it moves by a few points.
	CPUPercent int `json:"cpuPercent,omitempty"`

	Image      Image       `json:"image"`
	Disks      []Disk      `json:"disks,omitempty"`
	Interfaces []Interface `json:"networkInterfaces,omitempty"`
	// IP is the address users reach it at (the first interface's).
	IP       string `json:"ip,omitempty"`
	Hostname string `json:"hostname,omitempty"`
	// Host is where it runs, "Host/<id>"; admins only.
	Host string `json:"host,omitempty"`

	Context Context `json:"context"`
	Save    *Save   `json:"save,omitempty"`
	// SavedImage is the volume the root disk was saved into at shutdown
	// ("Volume/<uuid>"), SavedIdentifier the Marketplace identifier of
	// the draft entry made of it (empty when none could be made: the
	// state message says why).
	SavedImage      string `json:"savedVolume,omitempty"`
	SavedIdentifier string `json:"savedIdentifier,omitempty"`

	// Command is the id of the command that wrote the document last.
	Command string `json:"_command,omitempty"`
}

// ID returns the CIMI id of the machine with this uuid.
func ID(uuid string) string { return Kind + "/" + uuid }

// Decode reads a stored document.
func Decode(data []byte) (*Machine, error) {
	var m Machine
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("machine: decode: %w", err)
	}
	return &m, nil
}

// Encode writes m as a stored document.
func (m *Machine) Encode() (json.RawMessage, error) { return json.Marshal(m) }

// SetState moves m to d (and the matching CIMI state) at t.
func (m *Machine) SetState(d Detailed, message string, t time.Time) {
	m.DetailedState, m.State, m.StateMessage = d, CIMIState(d), message
	m.StateChanged = t.UTC().Format(time.RFC3339Nano)
}

// Final reports whether d is an end state: nothing runs, nothing is held.
func Final(d Detailed) bool { return d == Done }

// SetACL stores acl in m.
func (m *Machine) SetACL(acl cimi.ACL) {
	data, _ := json.Marshal(acl)
	m.ACL = data
}

// Access returns m's access control list.
func (m *Machine) Access() cimi.ACL {
	var acl cimi.ACL
	if len(m.ACL) == 0 || json.Unmarshal(m.ACL, &acl) != nil {
		return cimi.ACL{Owner: cimi.Owner{Principal: cimi.RoleAdmin, Type: cimi.Role}}
	}
	return acl
}

// CheckUUID refuses anything but a canonical lowercase uuid.
func CheckUUID(s string) error {
	ok := len(s) == 36
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		switch i {
		case 8, 13, 18, 23:
			ok = c == '-'
		default:
			ok = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')
		}
	}
	if !ok {
		return errs.Errorf(errs.Invalid, "%q is not a machine uuid (expected 8-4-4-4-12 lowercase hexadecimal digits).", short(s))
	}
	return nil
}

func short(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return strings.TrimSpace(s)
}

var protoDetailed = map[Detailed]machinev1.DetailedState{
	Pending: machinev1.DetailedState_DETAILED_STATE_PENDING, Prolog: machinev1.DetailedState_DETAILED_STATE_PROLOG,
	Boot: machinev1.DetailedState_DETAILED_STATE_BOOT, Running: machinev1.DetailedState_DETAILED_STATE_RUNNING,
	Shutdown: machinev1.DetailedState_DETAILED_STATE_SHUTDOWN, Epilog: machinev1.DetailedState_DETAILED_STATE_EPILOG,
	Done: machinev1.DetailedState_DETAILED_STATE_DONE, Failed: machinev1.DetailedState_DETAILED_STATE_FAILED,
	UnknownD: machinev1.DetailedState_DETAILED_STATE_UNKNOWN, StoppedD: machinev1.DetailedState_DETAILED_STATE_STOPPED,
}

var protoState = map[State]machinev1.MachineState{
	Creating: machinev1.MachineState_MACHINE_STATE_CREATING, Starting: machinev1.MachineState_MACHINE_STATE_STARTING,
	Started: machinev1.MachineState_MACHINE_STATE_STARTED, Stopping: machinev1.MachineState_MACHINE_STATE_STOPPING,
	Stopped: machinev1.MachineState_MACHINE_STATE_STOPPED, Deleted: machinev1.MachineState_MACHINE_STATE_DELETING,
	ErrorS: machinev1.MachineState_MACHINE_STATE_ERROR,
}

// Proto returns the bus form of m, as billing and monitoring read it.
func (m *Machine) Proto() *machinev1.Machine {
	out := &machinev1.Machine{
		Uuid: m.UUID, Name: m.Name, Description: m.Description, Owner: m.Owner,
		State: protoState[m.State], DetailedState: protoDetailed[m.DetailedState], FailureReason: m.StateMessage,
		Type: m.Type, Cpu: uint32(m.CPU), MemoryMib: uint32(m.Memory >> 10), SwapMib: uint32(m.SwapMiB),
		Hostname: m.Hostname, HostId: strings.TrimPrefix(m.Host, "Host/"),
	}
	for _, n := range m.Interfaces {
		out.NetworkInterfaces = append(out.NetworkInterfaces, &machinev1.NetworkInterface{Ip: n.IP, Mac: n.MAC})
	}
	if t, err := time.Parse(time.RFC3339Nano, m.StateChanged); err == nil {
		out.StateChangedAt = timestamppb.New(t)
	}
	return out
}
