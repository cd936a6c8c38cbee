package tgt

import (
	"strconv"
	"strings"
)

// target is what tgtadm --mode target --op show says about one target.
type target struct {
	tid  int
	name string
	// luns maps logical unit numbers to their backing store path ("None"
	// for the controller, LUN 0).
	luns map[int]string
	// acl lists the initiator addresses and names allowed to log in.
	acl []string
}

// parseShow reads the output of tgtadm --mode target --op show. Its layout
// is indentation: "Target <tid>: <name>" at the margin, sections such as
// "LUN information:" indented by four spaces, their entries by eight or
// more. Lines it does not understand are skipped, so a newer tgt that adds
// attributes still parses.
func parseShow(out string) []target {
	var (
		targets []target
		t       *target
		section string
		lun     = -1
	)
	for _, line := range strings.Split(out, "\n") {
		text := strings.TrimSpace(line)
		indent := len(line) - len(strings.TrimLeft(line, " \t"))
		switch {
		case text == "":
		case indent == 0:
			rest, ok := strings.CutPrefix(text, "Target ")
			if !ok {
				t = nil
				continue
			}
			num, name, ok := strings.Cut(rest, ": ")
			tid, err := strconv.Atoi(num)
			if !ok || err != nil || tid <= 0 {
				t = nil
				continue
			}
			targets = append(targets, target{tid: tid, name: name, luns: map[int]string{}})
			t, section, lun = &targets[len(targets)-1], "", -1
		case t == nil:
		case indent <= 4:
			section = text
		case section == "LUN information:":
			if v, ok := strings.CutPrefix(text, "LUN: "); ok {
				n, err := strconv.Atoi(v)
				if err != nil {
					n = -1
				}
				lun = n
			} else if v, ok := strings.CutPrefix(text, "Backing store path: "); ok && lun >= 0 {
				t.luns[lun] = v
			}
		case section == "ACL information:":
			t.acl = append(t.acl, text)
		}
	}
	return targets
}
