package lvm

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// lvsFields are the lvs columns the backend reads, in lvs -o syntax.
const lvsFields = "lv_name,lv_size,origin,lv_time,lv_tags,lv_active,lv_device_open"

// lv is one row of lvs output.
type lv struct {
	name   string
	size   int64 // bytes
	origin string
	// created is when the volume appeared under its name: the later of
	// lv_time and the time in a createdTag.
	created time.Time
	active  bool
	open    bool
}

// parseReport reads the JSON report of lvs --reportformat json:
// {"report": [{"lv": [{"lv_name": "...", ...}]}]}, every value a string.
func parseReport(out []byte) ([]map[string]string, error) {
	var doc struct {
		Report []struct {
			LV []map[string]string `json:"lv"`
		} `json:"report"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return nil, fmt.Errorf("lvs printed something that is not its JSON report: %w", err)
	}
	var rows []map[string]string
	for _, r := range doc.Report {
		rows = append(rows, r.LV...)
	}
	return rows, nil
}

// parseLVs reads the report of lvs --reportformat json --units b
// --nosuffix -o lvsFields. A trailing "B" on sizes (--units b without
// --nosuffix) is accepted too.
func parseLVs(out []byte) ([]lv, error) {
	rows, err := parseReport(out)
	if err != nil {
		return nil, err
	}
	lvs := make([]lv, 0, len(rows))
	for _, row := range rows {
		size, err := strconv.ParseInt(strings.TrimSuffix(row["lv_size"], "B"), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("lvs reported logical volume %q with size %q: %w", row["lv_name"], row["lv_size"], err)
		}
		l := lv{
			name:   row["lv_name"],
			size:   size,
			origin: row["origin"],
			active: row["lv_active"] == "active",
			open:   row["lv_device_open"] == "open",
		}
		// lv_time is empty for volumes made by old lvm2 versions; such a
		// volume gets its created time from its tag, or has none.
		if t, err := time.Parse("2006-01-02 15:04:05 -0700", row["lv_time"]); err == nil {
			// lv_time counts whole seconds, and is read before lvcreate
			// commits: the next second is never before the volume existed.
			l.created = t.Add(time.Second).UTC()
		}
		for _, tag := range strings.Split(row["lv_tags"], ",") {
			if t, ok := parseCreatedTag(tag); ok && t.After(l.created) {
				l.created = t
			}
		}
		lvs = append(lvs, l)
	}
	return lvs, nil
}

// createdTagPrefix starts the tag that records when a volume made under a
// temporary name was published, since lv_time records when the temporary
// was created, long before for an import. lvm2 tags allow letters, digits
// and "_+.-/=!:&#".
const createdTagPrefix = "pdisk_created_"

// createdTag returns the tag recording t, in Unix nanoseconds.
func createdTag(t time.Time) string {
	return createdTagPrefix + strconv.FormatInt(t.UnixNano(), 10)
}

func parseCreatedTag(tag string) (time.Time, bool) {
	ns, ok := strings.CutPrefix(tag, createdTagPrefix)
	if !ok {
		return time.Time{}, false
	}
	n, err := strconv.ParseInt(ns, 10, 64)
	if err != nil || n <= 0 {
		return time.Time{}, false
	}
	return time.Unix(0, n).UTC(), true
}

// dmName returns the device-mapper name LVM gives logical volume name in
// volume group vg: both joined by a hyphen, with the hyphens inside each
// doubled (lvm(8), "/dev/mapper/VG-LV").
func dmName(vg, name string) string {
	return strings.ReplaceAll(vg, "-", "--") + "-" + strings.ReplaceAll(name, "-", "--")
}

// parseThinStatus reads dmsetup status --target thin: one line per active
// thin device, "<name>: <start> <length> thin <mapped sectors> <highest
// mapped sector>" (the kernel's thin-provisioning status format), and
// returns the bytes each device has mapped. Other lines ("No devices
// found", a thin device in "Fail" mode) are skipped.
func parseThinStatus(out []byte) map[string]int64 {
	mapped := map[string]int64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		name, status, ok := strings.Cut(sc.Text(), ": ")
		f := strings.Fields(status)
		if !ok || len(f) < 4 || f[2] != "thin" {
			continue
		}
		sectors, err := strconv.ParseInt(f[3], 10, 64)
		if err != nil || sectors < 0 || sectors > math.MaxInt64/512 {
			continue
		}
		mapped[name] += sectors * 512
	}
	return mapped
}
