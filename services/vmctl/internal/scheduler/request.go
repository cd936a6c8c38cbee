package scheduler

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode"

	"stratuslab.dev/platform/errs"
	"stratuslab.dev/services/vmctl/internal/addresses"
	"stratuslab.dev/services/vmctl/internal/contextdisk"
	"stratuslab.dev/services/vmctl/internal/machine"
)

// request is a Machine create body, decoded and checked (CIMI.md).
type request struct {
	Image           json.RawMessage   `json:"image"`
	Type            string            `json:"type"`
	CPU             *int              `json:"cpu"`
	RAM             *int              `json:"ram"`
	Swap            *int              `json:"swap"`
	Name            string            `json:"name"`
	Description     string            `json:"description"`
	SSHKey          string            `json:"sshKey"`
	Context         []machine.Pair    `json:"context"`
	ContextMethod   string            `json:"contextMethod"`
	CloudInit       string            `json:"cloudInit"`
	Files           map[string]string `json:"files"`
	UserData        string            `json:"userData"`
	VolatileDisks   []int64           `json:"volatileDisks"`
	PersistentDisks []string          `json:"persistentDisks"`
	ReadonlyDisks   []string          `json:"readonlyDisks"`
	Network         string            `json:"network"`
	Save            *machine.Save     `json:"save"`

	// Set by the gateway or CIMI clients; ignored.
	ResourceURI string         `json:"resourceURI"`
	Properties  map[string]any `json:"properties"`
}

var sha1Hex = regexp.MustCompile(`^[0-9a-f]{40}$`)

// Limits of a create body.
const (
	maxDisks     = 16
	maxName      = 256
	maxDescr     = 4096
	maxVolatile  = 1024 // GiB
	maxSSHKeyLen = 16 << 10
)

// decodeRequest reads a create body strictly: an unknown attribute is a
// mistake the user should hear about (a misspelt "volatileDisk" would
// otherwise start a machine without its disk).
func decodeRequest(body []byte) (*request, error) {
	dec := json.NewDecoder(strings.NewReader(string(body)))
	dec.DisallowUnknownFields()
	var r request
	if err := dec.Decode(&r); err != nil {
		return nil, errs.Errorf(errs.Invalid, "The machine request is not valid: %s.", decodeProblem(err))
	}
	return &r, nil
}

// decodeProblem says what is wrong with a body in the user's terms: the
// attribute and what it should hold, not Go's types.
func decodeProblem(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		attr := te.Field
		if attr == "" {
			return "the body must be a JSON object"
		}
		return fmt.Sprintf("%s must be %s, not a %s", attr, expected(attr), te.Value)
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	if rest, ok := strings.CutPrefix(msg, "unknown field "); ok {
		return "there is no attribute " + rest
	}
	return msg
}

// expected describes what an attribute of the create body holds.
func expected(attr string) string {
	switch attr {
	case "cpu", "ram", "swap":
		return "a whole number"
	case "volatileDisks":
		return "a list of sizes in GiB (whole numbers)"
	case "persistentDisks":
		return "a list of volume uuids"
	case "readonlyDisks":
		return "a list of volume uuids, Marketplace ids or image tags"
	case "context":
		return `a list of {"key", "value"} pairs`
	case "files":
		return "an object of file names to base64 contents"
	case "save":
		return "an object (title, comment, author, authorEmail, version)"
	case "image":
		return `a string or {"url", "bytes", "sha1"}`
	}
	if strings.HasPrefix(attr, "context") {
		return `a list of {"key", "value"} pairs`
	}
	if strings.HasPrefix(attr, "save") {
		return "an object (title, comment, author, authorEmail, version)"
	}
	return "a string"
}

// imageBody is the object form of the image attribute.
type imageBody struct {
	Marketplace string `json:"marketplace"`
	Volume      string `json:"volume"`
	URL         string `json:"url"`
	Bytes       int64  `json:"bytes"`
	SHA1        string `json:"sha1"`
}

// maxReference bounds a Marketplace reference (an e-mail and a tag).
const maxReference = 512

// image reads the image attribute: a volume uuid, a Marketplace reference
// (identifier, "<e-mail>/<tag>" or tag), or an image URL with its size and
// SHA-1. A string is read as a volume uuid, else a URL (refused: it needs
// its size and SHA-1), else a Marketplace reference, which the Marketplace
// checks and resolves.
func (r *request) image() (machine.Image, error) {
	var img machine.Image
	if len(r.Image) == 0 || string(r.Image) == "null" {
		return img, errs.Errorf(errs.Invalid, "A machine needs an image: a Marketplace id or tag, a volume uuid, or {\"url\", \"bytes\", \"sha1\"}.")
	}
	var s string
	if json.Unmarshal(r.Image, &s) == nil {
		s = strings.TrimSpace(s)
		switch {
		case machine.CheckUUID(s) == nil:
			img.Volume = s
		case strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://"):
			return img, errs.Errorf(errs.Invalid, "An image URL comes with its size and SHA-1: give {\"url\", \"bytes\", \"sha1\"}, or the image's Marketplace id.")
		default:
			ref, err := reference("image", s)
			if err != nil {
				return img, err
			}
			img.Marketplace = ref
		}
		return img, nil
	}
	var b imageBody
	dec := json.NewDecoder(bytes.NewReader(r.Image))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil {
		if rest, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return img, errs.Errorf(errs.Invalid, "The image has no attribute %s: it names one of marketplace, volume and url (with bytes and sha1).", rest)
		}
		return img, errs.Errorf(errs.Invalid, "The image must be a string or {\"url\", \"bytes\", \"sha1\"}.")
	}
	img = machine.Image{Marketplace: b.Marketplace, Volume: b.Volume, URL: b.URL, Bytes: b.Bytes, SHA1: b.SHA1}
	switch n := btoi(img.Marketplace != "") + btoi(img.Volume != "") + btoi(img.URL != ""); {
	case n != 1:
		return img, errs.Errorf(errs.Invalid, "The image names exactly one of marketplace, volume and url.")
	case img.Volume != "":
		if machine.CheckUUID(img.Volume) != nil {
			return img, errs.Errorf(errs.Invalid, "The image volume %q is not a volume uuid (8-4-4-4-12 lowercase hexadecimal digits).", short(img.Volume))
		}
	case img.Marketplace != "":
		if img.Bytes != 0 || img.SHA1 != "" {
			return img, errs.Errorf(errs.Invalid, "A Marketplace image comes with its size and SHA-1 from its entry: give only \"marketplace\".")
		}
		ref, err := reference("image", img.Marketplace)
		if err != nil {
			return img, err
		}
		img.Marketplace = ref
	default:
		if !strings.HasPrefix(img.URL, "http://") && !strings.HasPrefix(img.URL, "https://") {
			return img, errs.Errorf(errs.Invalid, "An image URL is http:// or https://, not %q.", short(img.URL))
		}
		img.SHA1 = strings.ToLower(img.SHA1)
		if !sha1Hex.MatchString(img.SHA1) || img.Bytes <= 0 {
			return img, errs.Errorf(errs.Invalid, "An image URL comes with its size (bytes > 0) and SHA-1 (40 hexadecimal digits).")
		}
	}
	return img, nil
}

// reference checks the shape of a Marketplace reference given for what
// (the image, a read-only disk) before the Marketplace reads it: not
// empty, one word of bounded length. What it names, and whether it is a
// well-formed identifier, e-mail or tag, the Marketplace says.
func reference(what, s string) (string, error) {
	s = strings.TrimSpace(s)
	switch {
	case s == "":
		return "", errs.Errorf(errs.Invalid, "The %s is empty: give a Marketplace id or tag, or a volume uuid.", what)
	case len(s) > maxReference || strings.ContainsFunc(s, unicode.IsSpace):
		return "", errs.Errorf(errs.Invalid, "The %s %q is neither a volume uuid, a Marketplace id (27 characters) nor an image tag.", what, short(s))
	case machine.CheckUUID(strings.ToLower(s)) == nil:
		return "", errs.Errorf(errs.Invalid, "The %s %q looks like a volume uuid: write it in lower case.", what, s)
	}
	return s, nil
}

// network returns the network asked for; public by default.
func (r *request) network() (addresses.Network, error) {
	switch r.Network {
	case "", "public":
		return addresses.Public, nil
	case "local":
		return addresses.Local, nil
	case "private":
		return addresses.Private, nil
	}
	return "", errs.Errorf(errs.Invalid, "The network is public, local or private, not %q.", short(r.Network))
}

// disks checks the extra disks; img is the machine's image.
func (r *request) disks(img machine.Image) error {
	if len(r.VolatileDisks)+len(r.PersistentDisks)+len(r.ReadonlyDisks) > maxDisks {
		return errs.Errorf(errs.Invalid, "A machine has at most %d extra disks.", maxDisks)
	}
	for _, g := range r.VolatileDisks {
		if g < 1 || g > maxVolatile {
			return errs.Errorf(errs.Invalid, "A volatile disk is 1 to %d GiB, not %d.", maxVolatile, g)
		}
	}
	for _, u := range r.PersistentDisks {
		if machine.CheckUUID(u) != nil {
			return errs.Errorf(errs.Invalid, "The persistent disk %q is not a volume uuid (8-4-4-4-12 lowercase hexadecimal digits).", short(u))
		}
	}
	for i, id := range r.ReadonlyDisks {
		if machine.CheckUUID(id) == nil {
			continue
		}
		ref, err := reference("read-only disk", id)
		if err != nil {
			return err
		}
		r.ReadonlyDisks[i] = ref
	}
	// One volume on two devices would be written through one and read
	// stale through the other.
	// (A Marketplace image given twice is two copies: harmless.)
	all := append([]string{}, r.PersistentDisks...)
	for _, id := range r.ReadonlyDisks {
		if machine.CheckUUID(id) == nil {
			all = append(all, id)
		}
	}
	if img.Volume != "" {
		all = append(all, img.Volume)
	}
	if dup := duplicate(all); dup != "" {
		return errs.Errorf(errs.Invalid, "The volume %s is given twice: a volume is one disk of a machine.", dup)
	}
	return nil
}

// contextSpec checks the contextualisation and returns it as the machine
// keeps it and as contextdisk builds it.
func (r *request) contextSpec(net addresses.Lease, hostname, uuid string) (machine.Context, contextdisk.Spec, error) {
	mc := machine.Context{Method: r.ContextMethod, SSHKey: r.SSHKey, Pairs: r.Context, CloudInit: r.CloudInit, Files: r.Files, UserData: r.UserData}
	if len(r.SSHKey) > maxSSHKeyLen {
		return mc, contextdisk.Spec{}, errs.Errorf(errs.Invalid, "The SSH key is longer than %d bytes.", maxSSHKeyLen)
	}
	spec, err := diskSpec(mc, net, hostname, uuid)
	if err != nil {
		return mc, spec, err
	}
	if err := contextdisk.Validate(spec); err != nil {
		return mc, spec, err
	}
	return mc, spec, nil
}

// diskSpec turns what a machine keeps of its context into what the agent
// writes on its context disk.
func diskSpec(mc machine.Context, net addresses.Lease, hostname, uuid string) (contextdisk.Spec, error) {
	spec := contextdisk.Spec{
		Method: mc.Method, MachineID: uuid, Hostname: hostname, SSHKey: mc.SSHKey, UserData: []byte(mc.UserData),
		Network: contextdisk.Network{IP: net.IP, MAC: net.MAC, Gateway: net.Gateway, Netmask: net.Netmask, DNS: net.DNS},
	}
	if spec.Method == "" {
		spec.Method = contextdisk.MethodOne
	}
	for _, p := range mc.Pairs {
		spec.Pairs = append(spec.Pairs, contextdisk.Pair{Key: p.Key, Value: p.Value})
	}
	if mc.CloudInit != "" {
		parts, err := contextdisk.ParseCloudInit(mc.CloudInit, func(name string) ([]byte, error) {
			enc, ok := mc.Files[name]
			if !ok {
				return nil, fmt.Errorf("the request carries no file %q", name)
			}
			return base64.StdEncoding.DecodeString(enc)
		})
		if err != nil {
			return spec, err
		}
		spec.CloudInit = parts
	}
	return spec, nil
}

func duplicate(ss []string) string {
	seen := map[string]bool{}
	for _, s := range ss {
		if seen[s] {
			return s
		}
		seen[s] = true
	}
	return ""
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func short(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
