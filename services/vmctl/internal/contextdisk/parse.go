package contextdisk

import (
	"path/filepath"
	"strings"

	"stratuslab.dev/platform/errs"
)

// ParsePairs parses the --context option, "KEY=VALUE#KEY2=VALUE2", into
// pairs in their order. Empty segments (a trailing #) are skipped; a value
// may hold '=' but not '#'. Errors are errs.Invalid and name the pair.
func ParsePairs(s string) ([]Pair, error) {
	var pairs []Pair
	seen := map[string]bool{}
	for _, seg := range strings.Split(s, "#") {
		if seg == "" {
			continue
		}
		k, v, ok := strings.Cut(seg, "=")
		if !ok {
			return nil, errs.Errorf(errs.Invalid, "The context pair %q has no '=': write KEY=VALUE, pairs separated by '#'.", seg)
		}
		if err := checkKey(k); err != nil {
			return nil, err
		}
		if seen[k] {
			return nil, errs.Errorf(errs.Invalid, "The context key %q is given twice: give each key once.", k)
		}
		seen[k] = true
		if err := checkValue("the context key "+k, v); err != nil {
			return nil, err
		}
		pairs = append(pairs, Pair{Key: k, Value: v})
	}
	return pairs, nil
}

// bareCloudInitTypes are the subtypes of cloud-init's text/* part types,
// accepted without their "text/".
var bareCloudInitTypes = map[string]bool{
	"cloud-config": true, "x-shellscript": true, "x-shellscript-per-boot": true, "x-shellscript-per-instance": true,
	"x-shellscript-per-once": true, "cloud-boothook": true, "x-include-url": true, "x-include-once-url": true,
	"part-handler": true, "cloud-config-archive": true, "jinja2": true, "upstart-job": true, "cloud-config-jsonp": true,
}

// ParseCloudInit parses the --cloud-init option, "TYPE,FILE#TYPE,FILE",
// reading each FILE with read. TYPE is a MIME type such as
// text/cloud-config or text/x-shellscript, or a pseudo type: PartSSH for a
// public key file, PartNone for one file that is the whole user data. The
// parts are checked as Build checks them, including the 16 KiB limit on
// the compressed user data. Errors are errs.Invalid.
func ParseCloudInit(spec string, read func(name string) ([]byte, error)) ([]Part, error) {
	var parts []Part
	for _, seg := range strings.Split(spec, "#") {
		if seg == "" {
			continue
		}
		typ, file, ok := strings.Cut(seg, ",")
		if !ok || typ == "" || file == "" {
			return nil, errs.Errorf(errs.Invalid, "The cloud-init entry %q is not TYPE,FILE: write for instance text/cloud-config,config.yaml, entries separated by '#'.", seg)
		}
		if bareCloudInitTypes[typ] {
			// The user guide writes the subtype alone, as in
			// "x-shellscript,run-httpd.sh": cloud-init's types are text/*.
			typ = "text/" + typ
		}
		if err := checkPartType(typ); err != nil {
			return nil, err
		}
		content, err := read(file)
		if err != nil {
			return nil, errs.Errorf(errs.Invalid, "Cannot read the cloud-init file %q: %w", file, err)
		}
		parts = append(parts, Part{MIME: typ, Name: filepath.Base(file), Content: content})
	}
	if _, _, _, err := userData(parts, nil); err != nil {
		return nil, err
	}
	return parts, nil
}
