package scheduler_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/uuid"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/store"
	"stratuslab.dev/services/vmctl/internal/machine"
	"stratuslab.dev/services/vmctl/internal/scheduler"
)

// Values of create bodies.
var (
	vol1        = "0b8f2c3e-4d5a-4b6c-8d7e-9f0a1b2c3d4e"
	vol2        = "1b8f2c3e-4d5a-4b6c-8d7e-9f0a1b2c3d4e"
	marketID    = "KhGzWhB9ZZv5ZkLSZqm6pkWx7ZF" // 27 characters
	sha1        = strings.Repeat("a1", 20)
	cloudConfig = base64.StdEncoding.EncodeToString([]byte("#cloud-config\nruncmd:\n - echo hi\n"))
)

// randomText is n bytes of text that gzip cannot shrink much.
func randomText(t *testing.T, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)[:n]
}

// bodyOf is body as the resource framework hands it to the New hook: a
// JSON object decoded with json.Number.
func bodyOf(t *testing.T, body string) map[string]any {
	t.Helper()
	var doc map[string]any
	dec := json.NewDecoder(strings.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("test body %s: %v", body, err)
	}
	return doc
}

// createCase is one create body and what vmctl makes of it.
type createCase struct {
	name string
	body string
	// code is the refusal (none: accepted); msg are parts of its message.
	code errs.Code
	msg  []string
	// check looks at an accepted machine.
	check func(m *machine.Machine) error
}

// createCases cover every attribute of the create body (CIMI.md).
func createCases(t *testing.T) []createCase {
	img := `"image":"` + vol1 + `"`
	j := func(s ...string) string { return "{" + strings.Join(append([]string{img}, s...), ",") + "}" }
	size := func(cpu int, memKiB, swap int64) func(m *machine.Machine) error {
		return func(m *machine.Machine) error {
			if m.CPU != cpu || m.Memory != memKiB || m.SwapMiB != swap {
				return fmt.Errorf("cpu %d memory %d KiB swap %d MiB, want %d, %d, %d", m.CPU, m.Memory, m.SwapMiB, cpu, memKiB, swap)
			}
			return nil
		}
	}
	ok := func(*machine.Machine) error { return nil }
	return []createCase{
		// type and overrides
		{name: "default type", body: j(), check: func(m *machine.Machine) error {
			if m.Type != "m1.small" {
				return fmt.Errorf("type %q", m.Type)
			}
			return size(1, 1572864, 1536)(m)
		}},
		{name: "t1.micro", body: j(`"type":"t1.micro"`), check: size(1, 512<<10, 512)},
		{name: "c1.xlarge", body: j(`"type":"c1.xlarge"`), check: size(4, 6144<<10, 6144)},
		{name: "unknown type", body: j(`"type":"m1.huge"`), code: errs.Invalid, msg: []string{`Unknown machine type "m1.huge"`, "m1.small", "--list-types"}},
		{name: "type of another case", body: j(`"type":"M1.SMALL"`), code: errs.Invalid, msg: []string{"Unknown machine type"}},
		{name: "type not a string", body: j(`"type":1`), code: errs.Invalid, msg: []string{"type"}},
		{name: "cpu override", body: j(`"cpu":2`), check: size(2, 1572864, 1536)},
		{name: "cpu null is no override", body: j(`"cpu":null`), check: size(1, 1572864, 1536)},
		{name: "cpu 0", body: j(`"cpu":0`), code: errs.Invalid, msg: []string{"1 to 128 CPUs, not 0"}},
		{name: "cpu negative", body: j(`"cpu":-2`), code: errs.Invalid, msg: []string{"not -2"}},
		{name: "cpu 129", body: j(`"cpu":129`), code: errs.Invalid, msg: []string{"not 129"}},
		{name: "cpu huge", body: j(`"cpu":99999999999`), code: errs.Invalid, msg: []string{"not 99999999999"}},
		{name: "cpu beyond int64", body: j(`"cpu":1e30`), code: errs.Invalid, msg: []string{"cpu"}},
		{name: "cpu a float", body: j(`"cpu":1.5`), code: errs.Invalid, msg: []string{"cpu"}},
		{name: "cpu a string", body: j(`"cpu":"2"`), code: errs.Invalid, msg: []string{"cpu"}},
		{name: "cpu more than any host", body: j(`"cpu":8`), code: errs.Invalid, msg: []string{"No host of this cloud can ever take a machine of 8 CPU"}},
		{name: "ram override", body: j(`"ram":2048`), check: size(1, 2048<<10, 1536)},
		{name: "ram minimum", body: j(`"ram":64`), check: size(1, 64<<10, 1536)},
		{name: "ram 0", body: j(`"ram":0`), code: errs.Invalid, msg: []string{"64 MiB to 1048576 MiB", "not 0 MiB"}},
		{name: "ram negative", body: j(`"ram":-1024`), code: errs.Invalid, msg: []string{"not -1024 MiB"}},
		{name: "ram in GiB by mistake", body: j(`"ram":4`), code: errs.Invalid, msg: []string{"not 4 MiB"}},
		{name: "ram beyond 1 TiB", body: j(`"ram":2097152`), code: errs.Invalid, msg: []string{"not 2097152 MiB"}},
		{name: "ram beyond any host", body: j(`"ram":8193`), code: errs.Invalid, msg: []string{"8193 MiB", "choose a smaller type"}},
		{name: "ram all of the host", body: j(`"ram":8192`), check: size(1, 8192<<10, 1536)},
		{name: "ram a float", body: j(`"ram":1024.5`), code: errs.Invalid, msg: []string{"ram"}},
		{name: "ram a string", body: j(`"ram":"2G"`), code: errs.Invalid, msg: []string{"ram"}},
		{name: "swap 0", body: j(`"swap":0`), check: func(m *machine.Machine) error {
			for _, d := range m.Disks {
				if d.Role == machine.RoleSwap {
					return fmt.Errorf("a machine without swap has a swap disk: %+v", m.Disks)
				}
			}
			return size(1, 1572864, 0)(m)
		}},
		{name: "swap override", body: j(`"swap":4096`), check: size(1, 1572864, 4096)},
		{name: "swap negative", body: j(`"swap":-1`), code: errs.Invalid, msg: []string{"swap is 0 to", "not -1 MiB"}},
		{name: "swap beyond 1 TiB", body: j(`"swap":1048577`), code: errs.Invalid, msg: []string{"not 1048577 MiB"}},
		{name: "swap a float", body: j(`"swap":0.5`), code: errs.Invalid, msg: []string{"swap"}},

		// image
		{name: "image missing", body: `{}`, code: errs.Invalid, msg: []string{"A machine needs an image"}},
		{name: "image null", body: `{"image":null}`, code: errs.Invalid, msg: []string{"A machine needs an image"}},
		{name: "image empty", body: `{"image":""}`, code: errs.Invalid, msg: []string{"The image is empty", "Marketplace id or tag, or a volume uuid"}},
		{name: "image volume uuid", body: `{"image":"` + vol1 + `"}`, check: func(m *machine.Machine) error {
			if m.Image.Volume != vol1 || m.Disks[0].Role != machine.RoleRoot || m.Disks[0].Volume != "Volume/"+vol1 || m.Disks[0].Device != "vda" {
				return fmt.Errorf("image %+v disks %+v", m.Image, m.Disks)
			}
			return nil
		}},
		{name: "image volume object", body: `{"image":{"volume":"` + vol1 + `"}}`, check: func(m *machine.Machine) error {
			if m.Image.Volume != vol1 {
				return fmt.Errorf("image %+v", m.Image)
			}
			return nil
		}},
		{name: "image volume uuid upper case", body: `{"image":"` + strings.ToUpper(vol1) + `"}`, code: errs.Invalid, msg: []string{"looks like a volume uuid", "lower case"}},
		{name: "image volume object bad uuid", body: `{"image":{"volume":"42"}}`, code: errs.Invalid, msg: []string{`"42"`}},
		{name: "image Marketplace id", body: `{"image":"` + marketID + `"}`, check: isDebian(marketID)},
		{name: "image Marketplace object", body: `{"image":{"marketplace":"` + marketID + `"}}`, check: isDebian(marketID)},
		{name: "image Marketplace tag", body: `{"image":"debian-12"}`, check: isDebian("debian-12")},
		{name: "image Marketplace tag object", body: `{"image":{"marketplace":"debian-12"}}`, check: isDebian("debian-12")},
		{name: "image endorser's tag", body: `{"image":"Images@Example.org/debian-12"}`, check: isDebian("Images@Example.org/debian-12")},
		{name: "image Marketplace id with spaces around", body: `{"image":"  ` + marketID + ` "}`, check: isDebian(marketID)},
		{name: "image Marketplace object with a SHA-1", body: `{"image":{"marketplace":"` + marketID + `","sha1":"` + sha1 + `"}}`, code: errs.Invalid, msg: []string{"from its entry", `only "marketplace"`}},
		{name: "image unknown tag", body: `{"image":{"marketplace":"short"}}`, code: errs.Invalid, msg: []string{"No valid image has tag short."}},
		{name: "image 26 characters", body: `{"image":"` + marketID[1:] + `"}`, code: errs.Invalid, msg: []string{"No valid image has tag " + marketID[1:]}},
		{name: "image unknown identifier", body: `{"image":"` + strings.Repeat("A", 27) + `"}`, code: errs.Invalid, msg: []string{"No Marketplace entry has identifier " + strings.Repeat("A", 27)}},
		{name: "image expired", body: `{"image":"` + expiredID + `"}`, code: errs.Invalid, msg: []string{"Image " + expiredID + " expired on 2020-01-02T03:04:05Z."}},
		{name: "image tag of an expired entry", body: `{"image":"old"}`, code: errs.Invalid, msg: []string{"expired on 2020-01-02"}},
		{name: "image deprecated", body: `{"image":"` + deprecatedID + `"}`, code: errs.Invalid, msg: []string{"is deprecated: CVE-2024-0001: use debian-12"}},
		{name: "image tag of two endorsers", body: `{"image":"shared"}`, code: errs.Conflict, msg: []string{"several endorsers (a@example.org, b@example.org)", "a@example.org/shared"}},
		{name: "image endorser's shared tag", body: `{"image":"b@example.org/shared"}`, check: func(m *machine.Machine) error {
			if m.Image.Endorser != "b@example.org" || m.Image.Marketplace != "b@example.org/shared" {
				return fmt.Errorf("image %+v", m.Image)
			}
			return nil
		}},
		{name: "image in vmdk", body: `{"image":"` + vmdkID + `"}`, code: errs.Invalid, msg: []string{"vmdk image", "raw and qcow2"}},
		{name: "image compressed with xz", body: `{"image":"` + xzID + `"}`, code: errs.Invalid, msg: []string{"compressed with xz", "gzip and bzip2"}},
		{name: "image bob's draft", body: `{"image":"` + bobDraftID + `"}`, code: errs.Invalid, msg: []string{"No Marketplace entry has identifier " + bobDraftID}},
		{name: "image alice's draft", body: `{"image":"` + aliceDraftID + `"}`, check: func(m *machine.Machine) error {
			if m.Image.Identifier != aliceDraftID || m.Image.FromVolume != aliceDraftVolume || len(m.Image.Locations) != 0 || m.Image.Status != "draft" ||
				m.Disks[0].Volume == "" || m.Disks[0].Volume == "Volume/"+aliceDraftVolume {
				return fmt.Errorf("image %+v root %+v", m.Image, m.Disks[0])
			}
			return nil
		}},
		{name: "image URL as a string", body: `{"image":"https://example.org/a.qcow2"}`, code: errs.Invalid, msg: []string{"comes with its size and SHA-1", `"url", "bytes", "sha1"`}},
		{name: "image with a space inside", body: `{"image":"debian 12"}`, code: errs.Invalid, msg: []string{`"debian 12" is neither a volume uuid`}},
		{name: "image URL", body: `{"image":{"url":"https://example.org/a.qcow2","bytes":1048576,"sha1":"` + sha1 + `"}}`, check: func(m *machine.Machine) error {
			if m.Image.URL != "https://example.org/a.qcow2" || m.Image.Bytes != 1048576 || m.Image.SHA1 != sha1 || !strings.HasPrefix(m.Disks[0].Volume, "Volume/") {
				return fmt.Errorf("image %+v root %+v", m.Image, m.Disks[0])
			}
			return nil
		}},
		{name: "image URL http", body: `{"image":{"url":"http://example.org/a.img","bytes":1,"sha1":"` + sha1 + `"}}`, check: ok},
		{name: "image URL SHA-1 upper case", body: `{"image":{"url":"https://example.org/a","bytes":1,"sha1":"` + strings.ToUpper(sha1) + `"}}`, check: func(m *machine.Machine) error {
			if m.Image.SHA1 != sha1 {
				return fmt.Errorf("sha1 %q, want it in lower case", m.Image.SHA1)
			}
			return nil
		}},
		{name: "image URL short SHA-1", body: `{"image":{"url":"https://example.org/a","bytes":1,"sha1":"` + sha1[1:] + `"}}`, code: errs.Invalid, msg: []string{"SHA-1 (40 hexadecimal digits)"}},
		{name: "image URL SHA-1 not hex", body: `{"image":{"url":"https://example.org/a","bytes":1,"sha1":"` + strings.Repeat("g", 40) + `"}}`, code: errs.Invalid, msg: []string{"SHA-1"}},
		{name: "image URL no SHA-1", body: `{"image":{"url":"https://example.org/a","bytes":1}}`, code: errs.Invalid, msg: []string{"SHA-1"}},
		{name: "image URL no size", body: `{"image":{"url":"https://example.org/a","sha1":"` + sha1 + `"}}`, code: errs.Invalid, msg: []string{"bytes > 0"}},
		{name: "image URL negative size", body: `{"image":{"url":"https://example.org/a","bytes":-5,"sha1":"` + sha1 + `"}}`, code: errs.Invalid, msg: []string{"bytes > 0"}},
		{name: "image URL ftp", body: `{"image":{"url":"ftp://example.org/a","bytes":1,"sha1":"` + sha1 + `"}}`, code: errs.Invalid, msg: []string{"http:// or https://", "ftp://example.org/a"}},
		{name: "image URL a path", body: `{"image":{"url":"/etc/passwd","bytes":1,"sha1":"` + sha1 + `"}}`, code: errs.Invalid, msg: []string{"http:// or https://"}},
		{name: "image URL file", body: `{"image":{"url":"file:///etc/passwd","bytes":1,"sha1":"` + sha1 + `"}}`, code: errs.Invalid, msg: []string{"http:// or https://"}},
		{name: "image URL and volume", body: `{"image":{"url":"https://example.org/a","bytes":1,"sha1":"` + sha1 + `","volume":"` + vol1 + `"}}`, code: errs.Invalid, msg: []string{"exactly one of marketplace, volume and url"}},
		{name: "image empty object", body: `{"image":{}}`, code: errs.Invalid, msg: []string{"exactly one of"}},
		{name: "image a number", body: `{"image":42}`, code: errs.Invalid, msg: []string{"must be a string or"}},
		{name: "image a list", body: `{"image":["` + vol1 + `"]}`, code: errs.Invalid, msg: []string{"must be a string or"}},

		// context
		{name: "context pairs", body: j(`"context":[{"key":"ROLE","value":"web"},{"key":"DB_URL","value":"pg://a=b#c"}]`), check: func(m *machine.Machine) error {
			if len(m.Context.Pairs) != 2 || m.Context.Pairs[1] != (machine.Pair{Key: "DB_URL", Value: "pg://a=b#c"}) {
				return fmt.Errorf("pairs %+v", m.Context.Pairs)
			}
			return nil
		}},
		{name: "context empty value", body: j(`"context":[{"key":"EMPTY","value":""}]`), check: ok},
		{name: "context empty key", body: j(`"context":[{"key":"","value":"x"}]`), code: errs.Invalid, msg: []string{"empty key"}},
		{name: "context key with a digit first", body: j(`"context":[{"key":"1ROLE","value":"x"}]`), code: errs.Invalid, msg: []string{`"1ROLE" is not a shell variable name`}},
		{name: "context key with a dash", body: j(`"context":[{"key":"MY-ROLE","value":"x"}]`), code: errs.Invalid, msg: []string{"not a shell variable name"}},
		{name: "context key KEY=value", body: j(`"context":[{"key":"ROLE=web","value":""}]`), code: errs.Invalid, msg: []string{"not a shell variable name"}},
		{name: "context key with a space", body: j(`"context":[{"key":"ROLE ","value":"x"}]`), code: errs.Invalid, msg: []string{"not a shell variable name"}},
		{name: "context reserved key", body: j(`"context":[{"key":"PATH","value":"/tmp"}]`), code: errs.Invalid, msg: []string{`"PATH"`, "reserves"}},
		{name: "context key the disk sets", body: j(`"context":[{"key":"ETH0_IP","value":"1.2.3.4"}]`), code: errs.Invalid, msg: []string{`"ETH0_IP"`, "sets itself"}},
		{name: "context key twice", body: j(`"context":[{"key":"A","value":"1"},{"key":"A","value":"2"}]`), code: errs.Invalid, msg: []string{`"A" is given twice`}},
		{name: "context key too long", body: j(`"context":[{"key":"` + strings.Repeat("K", 129) + `","value":"x"}]`), code: errs.Invalid, msg: []string{"longer than 128"}},
		{name: "context value with NUL", body: j(`"context":[{"key":"A","value":"a\u0000b"}]`), code: errs.Invalid, msg: []string{"NUL"}},
		{name: "context pairs too large", body: j(`"context":[{"key":"A","value":"` + strings.Repeat("v", 40000) + `"},{"key":"B","value":"` + strings.Repeat("v", 40000) + `"}]`),
			code: errs.Invalid, msg: []string{"more than the 65536 allowed"}},
		{name: "context as KEY=value strings", body: j(`"context":["ROLE=web"]`), code: errs.Invalid, msg: []string{"context"}},
		{name: "context as one string", body: j(`"context":"ROLE=web#A=1"`), code: errs.Invalid, msg: []string{"context"}},
		{name: "context pair with another attribute", body: j(`"context":[{"key":"A","value":"1","secret":true}]`), code: errs.Invalid, msg: []string{`"secret"`}},
		{name: "context method one", body: j(`"contextMethod":"one"`), check: ok},
		{name: "context method cloud-init", body: j(`"contextMethod":"cloud-init"`), check: func(m *machine.Machine) error {
			if m.Context.Method != "cloud-init" {
				return fmt.Errorf("method %q", m.Context.Method)
			}
			return nil
		}},
		{name: "context method unknown", body: j(`"contextMethod":"hepix"`), code: errs.Invalid, msg: []string{`"hepix" is unknown`}},
		{name: "ssh key", body: j(`"sshKey":"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA alice@host"`), check: func(m *machine.Machine) error {
			if !strings.HasPrefix(m.Context.SSHKey, "ssh-ed25519 ") {
				return fmt.Errorf("key %q", m.Context.SSHKey)
			}
			return nil
		}},
		{name: "ssh key too long", body: j(`"sshKey":"` + strings.Repeat("A", 16<<10+1) + `"`), code: errs.Invalid, msg: []string{"SSH key is longer than 16384 bytes"}},
		{name: "ssh key with a control character", body: j(`"sshKey":"ssh-rsa AAAA\u0007"`), code: errs.Invalid, msg: []string{"control character"}},

		// user data and cloud-init
		{name: "user data", body: j(`"userData":"#!/bin/sh\necho hi\n"`), check: func(m *machine.Machine) error {
			if m.Context.UserData != "#!/bin/sh\necho hi\n" {
				return fmt.Errorf("user data %q", m.Context.UserData)
			}
			return nil
		}},
		{name: "user data large but compressible", body: j(`"userData":"` + strings.Repeat("a", 100000) + `"`), check: ok},
		{name: "user data oversized", body: j(`"userData":"` + randomText(t, 24<<10) + `"`), code: errs.Invalid, msg: []string{"compressed, more than the 16384 allowed"}},
		{name: "cloud-init file", body: j(`"contextMethod":"cloud-init","cloudInit":"text/cloud-config,config.yaml","files":{"config.yaml":"` + cloudConfig + `"}`),
			check: func(m *machine.Machine) error {
				if m.Context.CloudInit != "text/cloud-config,config.yaml" || m.Context.Files["config.yaml"] != cloudConfig {
					return fmt.Errorf("context %+v", m.Context)
				}
				return nil
			}},
		{name: "cloud-init two parts and a key", body: j(`"cloudInit":"text/cloud-config,a.yaml#text/x-shellscript,b.sh#ssh,id.pub","files":{"a.yaml":"` + cloudConfig +
			`","b.sh":"` + base64.StdEncoding.EncodeToString([]byte("#!/bin/sh\n")) + `","id.pub":"` + base64.StdEncoding.EncodeToString([]byte("ssh-rsa AAAA bob@x\n")) + `"}`), check: ok},
		{name: "cloud-init file missing", body: j(`"cloudInit":"text/cloud-config,config.yaml"`), code: errs.Invalid, msg: []string{`"config.yaml"`, "carries no file"}},
		{name: "cloud-init file not base64", body: j(`"cloudInit":"text/cloud-config,c.yaml","files":{"c.yaml":"not base64!"}`), code: errs.Invalid, msg: []string{`Cannot read the cloud-init file "c.yaml"`}},
		{name: "cloud-init bad type", body: j(`"cloudInit":"cloud-conf,c.yaml","files":{"c.yaml":"` + cloudConfig + `"}`), code: errs.Invalid, msg: []string{`"cloud-conf" is unknown`}},
		{name: "cloud-init no file", body: j(`"cloudInit":"text/cloud-config"`), code: errs.Invalid, msg: []string{"is not TYPE,FILE"}},
		{name: "cloud-init two literal files", body: j(`"cloudInit":"none,a#none,b","files":{"a":"YQ==","b":"Yg=="}`), code: errs.Invalid, msg: []string{"Only one cloud-init file"}},
		{name: "cloud-init and user data", body: j(`"userData":"x","cloudInit":"text/cloud-config,c.yaml","files":{"c.yaml":"` + cloudConfig + `"}`), code: errs.Invalid, msg: []string{"either raw or as cloud-init files"}},
		{name: "cloud-init oversized", body: j(`"cloudInit":"text/x-shellscript,big.sh","files":{"big.sh":"` + base64.StdEncoding.EncodeToString([]byte(randomText(t, 20<<10))) + `"}`),
			code: errs.Invalid, msg: []string{"more than the 16384 allowed"}},

		// disks
		{name: "volatile disk", body: j(`"volatileDisks":[10]`), check: func(m *machine.Machine) error {
			for _, d := range m.Disks {
				if d.Role == machine.RoleVolatile && d.SizeMiB == 10240 && strings.HasPrefix(d.Volume, "Volume/") && d.Device != "vda" {
					return nil
				}
			}
			return fmt.Errorf("disks %+v", m.Disks)
		}},
		{name: "volatile disk 1024 GiB", body: j(`"volatileDisks":[1024]`), check: ok},
		{name: "volatile disk 0", body: j(`"volatileDisks":[0]`), code: errs.Invalid, msg: []string{"1 to 1024 GiB, not 0"}},
		{name: "volatile disk negative", body: j(`"volatileDisks":[-1]`), code: errs.Invalid, msg: []string{"not -1"}},
		{name: "volatile disk too large", body: j(`"volatileDisks":[1025]`), code: errs.Invalid, msg: []string{"not 1025"}},
		{name: "volatile disk a float", body: j(`"volatileDisks":[1.5]`), code: errs.Invalid, msg: []string{"volatileDisks"}},
		{name: "volatile disk a string", body: j(`"volatileDisks":["10G"]`), code: errs.Invalid, msg: []string{"volatileDisks"}},
		{name: "volatile disks not a list", body: j(`"volatileDisks":10`), code: errs.Invalid, msg: []string{"volatileDisks"}},
		{name: "persistent disk", body: j(`"persistentDisks":["` + vol2 + `"]`), check: func(m *machine.Machine) error {
			for _, d := range m.Disks {
				if d.Role == machine.RolePersistent && d.Volume == "Volume/"+vol2 && !d.ReadOnly && !d.HotPlugged {
					return nil
				}
			}
			return fmt.Errorf("disks %+v", m.Disks)
		}},
		{name: "persistent disk bad uuid", body: j(`"persistentDisks":["Volume/` + vol2 + `"]`), code: errs.Invalid, msg: []string{"8-4-4-4-12"}},
		{name: "persistent disk twice", body: j(`"persistentDisks":["` + vol2 + `","` + vol2 + `"]`), code: errs.Invalid, msg: []string{vol2 + " is given twice"}},
		{name: "read-only disk", body: j(`"readonlyDisks":["` + vol2 + `"]`), check: func(m *machine.Machine) error {
			for _, d := range m.Disks {
				if d.Role == machine.RoleReadOnly && d.Volume == "Volume/"+vol2 && d.ReadOnly {
					return nil
				}
			}
			return fmt.Errorf("disks %+v", m.Disks)
		}},
		{name: "read-only disk bad id", body: j(`"readonlyDisks":["not an id"]`), code: errs.Invalid, msg: []string{`read-only disk "not an id" is neither a volume uuid`}},
		{name: "read-only disks from the Marketplace", body: j(`"readonlyDisks":["` + marketID + `","` + vol2 + `","debian-12"]`), check: func(m *machine.Machine) error {
			var ro []machine.Disk
			for _, d := range m.Disks {
				if d.Role == machine.RoleReadOnly {
					ro = append(ro, d)
				}
			}
			if len(ro) != 3 || ro[1].Volume != "Volume/"+vol2 || ro[1].Image != nil {
				return fmt.Errorf("read-only disks %+v", ro)
			}
			for _, d := range []machine.Disk{ro[0], ro[2]} {
				if d.Image == nil || d.Image.Identifier != marketID || !d.ReadOnly || !strings.HasPrefix(d.Volume, "Volume/") {
					return fmt.Errorf("read-only disk from the Marketplace: %+v (image %+v)", d, d.Image)
				}
			}
			if ro[0].Volume == ro[2].Volume {
				return fmt.Errorf("two copies of one image share volume %s", ro[0].Volume)
			}
			return nil
		}},
		{name: "read-only disk expired", body: j(`"readonlyDisks":["` + expiredID + `"]`), code: errs.Invalid, msg: []string{"The read-only disk " + expiredID + ": Image " + expiredID + " expired on"}},
		{name: "read-only disk unknown", body: j(`"readonlyDisks":["no-such-tag"]`), code: errs.Invalid, msg: []string{"The read-only disk no-such-tag: No valid image has tag no-such-tag."}},
		{name: "sixteen extra disks", body: j(`"volatileDisks":[1,1,1,1,1,1],"persistentDisks":[` + uuids(5) + `],"readonlyDisks":[` + uuids(5) + `]`),
			check: func(m *machine.Machine) error {
				seen := map[string]bool{}
				for _, d := range m.Disks {
					if seen[d.Device] || !strings.HasPrefix(d.Device, "vd") || len(d.Device) != 3 {
						return fmt.Errorf("device %q given twice or not vdX: %+v", d.Device, m.Disks)
					}
					seen[d.Device] = true
				}
				return nil
			}},
		{name: "seventeen extra disks", body: j(`"volatileDisks":[1,1,1,1,1,1,1],"persistentDisks":[` + uuids(5) + `],"readonlyDisks":[` + uuids(5) + `]`),
			code: errs.Invalid, msg: []string{"at most 16 extra disks"}},

		// network
		{name: "network default public", body: j(), check: func(m *machine.Machine) error {
			if m.Interfaces[0].Network != "public" || !strings.HasPrefix(m.IP, "10.1.0.") {
				return fmt.Errorf("interfaces %+v", m.Interfaces)
			}
			return nil
		}},
		{name: "network local", body: j(`"network":"local"`), check: func(m *machine.Machine) error {
			if len(m.Interfaces) != 1 || m.Interfaces[0].Network != "local" || !strings.HasPrefix(m.IP, "10.2.0.") || !strings.HasSuffix(m.Hostname, ".local.example.org") {
				return fmt.Errorf("interfaces %+v hostname %q", m.Interfaces, m.Hostname)
			}
			return nil
		}},
		{name: "network upper case", body: j(`"network":"PUBLIC"`), code: errs.Invalid, msg: []string{`public, local or private, not "PUBLIC"`}},
		{name: "network unknown", body: j(`"network":"dmz"`), code: errs.Invalid, msg: []string{`not "dmz"`}},

		// name, description, save
		{name: "name", body: j(`"name":"web-1","description":"the front end"`), check: func(m *machine.Machine) error {
			if m.Name != "web-1" || m.Description != "the front end" {
				return fmt.Errorf("name %q description %q", m.Name, m.Description)
			}
			return nil
		}},
		{name: "default name", body: j(), check: func(m *machine.Machine) error {
			if m.Name != fmt.Sprintf("one-%d", m.VMID) || m.VMID < 1 {
				return fmt.Errorf("name %q vmId %d", m.Name, m.VMID)
			}
			return nil
		}},
		{name: "name 256 bytes", body: j(`"name":"` + strings.Repeat("n", 256) + `"`), check: ok},
		{name: "name 257 bytes", body: j(`"name":"` + strings.Repeat("n", 257) + `"`), code: errs.Invalid, msg: []string{"name is at most 256 bytes"}},
		{name: "description 4096 bytes", body: j(`"description":"` + strings.Repeat("d", 4096) + `"`), check: ok},
		{name: "description 4097 bytes", body: j(`"description":"` + strings.Repeat("d", 4097) + `"`), code: errs.Invalid, msg: []string{"description 4096"}},
		{name: "name not a string", body: j(`"name":42`), code: errs.Invalid, msg: []string{"name"}},
		{name: "save", body: j(`"save":{"title":"t","comment":"c","author":"a","authorEmail":"a@example.org","imageVersion":"1.0"}`), check: func(m *machine.Machine) error {
			if m.Save == nil || *m.Save != (machine.Save{Title: "t", Comment: "c", Author: "a", AuthorEmail: "a@example.org", ImageVersion: "1.0"}) {
				return fmt.Errorf("save %+v", m.Save)
			}
			return nil
		}},
		{name: "save with a misspelt attribute", body: j(`"save":{"titel":"t"}`), code: errs.Invalid, msg: []string{`"titel"`}},

		// attributes the body may not have
		{name: "misspelt attribute", body: j(`"volatileDisk":[10]`), code: errs.Invalid, msg: []string{`no attribute "volatileDisk"`}},
		{name: "attribute of the machine", body: j(`"host":"Host/h1"`), code: errs.Invalid, msg: []string{`"host"`}},
		{name: "vmId chosen by the user", body: j(`"vmId":7`), code: errs.Invalid, msg: []string{`"vmId"`}},
		{name: "CIMI attributes a client sends", body: j(`"resourceURI":"http://schemas.dmtf.org/cimi/2/MachineCreate","properties":{"a":"b"}`), check: ok},
	}
}

// isDebian checks a machine made from debian-12 of images@example.org,
// asked for as ref: the entry it resolved to is recorded, and its root
// disk is a volume pdisk will make.
func isDebian(ref string) func(m *machine.Machine) error {
	return func(m *machine.Machine) error {
		img := m.Image
		if img.Marketplace != ref || img.Identifier != marketID || img.SHA1 != debianSHA1 || img.Bytes != 2<<30 ||
			!slices.Equal(img.Locations, debianLocations) || img.Format != "qcow2" || img.Compression != "gz" || img.Kind != "machine" ||
			img.Status != "valid" || img.Endorser != "images@example.org" || img.OS != "Debian" || img.OSVersion != "12" || img.OSArch != "x86_64" ||
			!strings.HasPrefix(img.Entry, "MachineImage/") || img.Volume != "" || img.URL != "" || img.FromVolume != "" {
			return fmt.Errorf("image %+v", img)
		}
		if root := m.Disks[0]; root.Role != machine.RoleRoot || !strings.HasPrefix(root.Volume, "Volume/") || root.Device != "vda" {
			return fmt.Errorf("root disk %+v", root)
		}
		return nil
	}
}

// uuids returns n new uuids as JSON strings, comma separated.
func uuids(n int) string {
	var out []string
	for range n {
		out = append(out, `"`+uuid.NewString()+`"`)
	}
	return strings.Join(out, ",")
}

// TestCreateBody runs every create body of createCases through the
// Machine kind's New hook: a refusal is an invalid error saying what is
// wrong and allocates nothing (no number, no address); an accepted body
// becomes a Pending machine.
func TestCreateBody(t *testing.T) {
	t.Parallel()
	e := newEnv(t, options{noAgent: true})
	kind := e.sched.Kind()
	who := cimi.Identity{User: "alice", Roles: []string{cimi.RoleUser}}
	for _, tc := range createCases(t) {
		t.Run(tc.name, func(t *testing.T) {
			id := uuid.NewString()
			next := e.nextVMID(t)
			doc, err := kind.New(e.ctx, who, machine.ID(id), bodyOf(t, tc.body))
			if tc.code != "" {
				wantCode(t, "create", err, tc.code, tc.msg...)
				if n := e.nextVMID(t); n != next {
					t.Errorf("the refused create took a number: the counter went from %d to %d", next, n)
				}
				if l := e.leasesOf(id); len(l) != 0 {
					t.Errorf("the refused create leased %+v", l)
				}
				return
			}
			if err != nil {
				t.Fatalf("create refused: %v (%s)", err, errs.MessageOf(err))
			}
			defer func() { _ = e.leases.Release(e.ctx, id) }()
			data, _ := json.Marshal(doc)
			m, err := machine.Decode(data)
			if err != nil {
				t.Fatal(err)
			}
			if m.UUID != id || m.Owner != "alice" || m.DetailedState != machine.Pending || m.State != machine.Creating || m.VMID != next {
				t.Errorf("new machine: uuid %q owner %q state %s/%s vmId %d (counter said %d)", m.UUID, m.Owner, m.DetailedState, m.State, m.VMID, next)
			}
			if l := e.leasesOf(id); len(l) != 1 || l[0].IP != m.IP || m.IP == "" {
				t.Errorf("leases %+v, machine ip %q", l, m.IP)
			}
			if err := tc.check(m); err != nil {
				t.Error(err)
			}
		})
	}
}

// nextVMID returns the number the next machine will get.
func (e *env) nextVMID(t *testing.T) int64 {
	t.Helper()
	doc, err := e.counters.Get(e.ctx, scheduler.CounterKind+"/vmid")
	if errors.Is(err, store.ErrNotFound) {
		return 1
	}
	if err != nil {
		t.Fatal(err)
	}
	var c struct {
		Next int64 `json:"next"`
	}
	if err := json.Unmarshal(doc.Body, &c); err != nil {
		t.Fatal(err)
	}
	return c.Next
}
