package contextdisk

import (
	"bytes"
	"reflect"
	"strings"
	"testing"

	"stratuslab.dev/platform/errs"
)

// FuzzParsePairs checks that any --context string either parses into pairs
// that Build accepts and that print back to the same pairs, or is refused
// with an invalid error.
func FuzzParsePairs(f *testing.F) {
	for _, s := range []string{"", "A=1", "A=1#B=2", "A", "=", "#", "A==#B=", "PATH=x", "K=日本#L=$x`y`\"z\""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		pairs, err := ParsePairs(s)
		if err != nil {
			if errs.CodeOf(err) != errs.Invalid {
				t.Fatalf("ParsePairs(%q) = %v, not an invalid error", s, err)
			}
			return
		}
		var parts []string
		for _, p := range pairs {
			parts = append(parts, p.Key+"="+p.Value)
		}
		again, err := ParsePairs(strings.Join(parts, "#"))
		if err != nil || !reflect.DeepEqual(again, pairs) {
			t.Fatalf("pairs %q printed and parsed again give %q, %v", pairs, again, err)
		}
		if err := Validate(Spec{Pairs: pairs}); err != nil && len(s) <= maxPairBytes {
			t.Fatalf("Validate refuses pairs ParsePairs accepted: %v", err)
		}
	})
}

// FuzzBuild checks that Build never panics, fails only with invalid
// errors, and gives the same bytes for the same Spec.
func FuzzBuild(f *testing.F) {
	f.Add(false, "", "host", "ssh-rsa AAAA u@h", "K", "v", []byte("#cloud-config\n"), "10.0.0.2", "255.255.255.0", "text/cloud-config")
	f.Add(true, "i-1", "h.example.org", "", "A_1", "$'\"`\\\n", []byte{}, "", "", "ssh")
	f.Add(true, "", "", "k\x00", "1", "\xff", []byte{0, 1, 2}, "1.2.3.4", "0.0.0.0", "none")
	f.Fuzz(func(t *testing.T, cloudInit bool, id, host, key, k, v string, data []byte, ip, mask, mime string) {
		s := Spec{MachineID: id, Hostname: host, SSHKey: key, Pairs: []Pair{{k, v}},
			Network: Network{IP: ip, Netmask: mask}}
		if cloudInit {
			s.Method = MethodCloudInit
		}
		if len(data)%2 == 0 {
			s.UserData = data
		} else {
			s.CloudInit = []Part{{MIME: mime, Name: "f", Content: data}}
		}
		img, err := Build(s)
		verr := Validate(s)
		if err != nil {
			if errs.CodeOf(err) != errs.Invalid {
				t.Fatalf("Build = %v, not an invalid error", err)
			}
			if verr == nil || verr.Error() != err.Error() {
				t.Fatalf("Build = %v but Validate = %v", err, verr)
			}
			return
		}
		if verr != nil {
			t.Fatalf("Build accepts what Validate refuses: %v", verr)
		}
		if len(img)%sectorSize != 0 || len(img) < minImageSize {
			t.Fatalf("image of %d bytes", len(img))
		}
		again, _ := Build(s)
		if !bytes.Equal(img, again) {
			t.Fatal("two builds of the same Spec differ")
		}
	})
}
