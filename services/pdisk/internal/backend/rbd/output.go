package rbd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"
)

// The rbd tool's JSON output (--format json), as much of it as the backend
// reads. Field names are the tool's, from its ls, info, du, snap ls,
// children and image-meta list commands.

// parentSpec names the snapshot a clone was made from.
type parentSpec struct {
	Pool      string `json:"pool"`
	Namespace string `json:"pool_namespace"`
	Image     string `json:"image"`
	Snapshot  string `json:"snapshot"`
}

// lsEntry is one element of rbd ls -l: an image, or one of its snapshots
// when Snapshot is set.
type lsEntry struct {
	Image     string      `json:"image"`
	Size      int64       `json:"size"`
	Snapshot  string      `json:"snapshot"`
	Protected string      `json:"protected"`
	Parent    *parentSpec `json:"parent"`
}

// imageInfo is rbd info of an image.
type imageInfo struct {
	Name   string      `json:"name"`
	Size   int64       `json:"size"`
	Parent *parentSpec `json:"parent"`
}

// duImage is one image of rbd du --merge-snapshots: UsedSize counts the
// image with its snapshots, not its parent.
type duImage struct {
	Name     string `json:"name"`
	Snapshot string `json:"snapshot"`
	UsedSize int64  `json:"used_size"`
}

// snapInfo is one element of rbd snap ls.
type snapInfo struct {
	Name      string `json:"name"`
	Protected string `json:"protected"`
}

// child is one element of rbd children.
type child struct {
	Pool      string `json:"pool"`
	Namespace string `json:"pool_namespace"`
	Image     string `json:"image"`
}

// decode reads the JSON that an rbd command printed into v, naming the
// command in errors.
func decode(what string, out []byte, v any) error {
	if err := json.Unmarshal(out, v); err != nil {
		return fmt.Errorf("rbd %s printed something that is not its JSON output: %w", what, err)
	}
	return nil
}

// parseUsage reads rbd du --format json --merge-snapshots into used bytes
// by image name.
func parseUsage(out []byte) (map[string]int64, error) {
	var doc struct {
		Images []duImage `json:"images"`
	}
	if err := decode("du", out, &doc); err != nil {
		return nil, err
	}
	used := map[string]int64{}
	for _, im := range doc.Images {
		if im.Snapshot == "" {
			used[im.Name] += im.UsedSize
		}
	}
	return used, nil
}

// createdKey is the image metadata key holding the time the image appeared
// under its id, RFC 3339 with nanoseconds. rbd's own create_timestamp says
// when the temporary that became the image was created, which for an
// import is long before the image was published.
const createdKey = "pdisk.created"

// parseCreated reads rbd image-meta list --format json, which prints an
// object of keys and values, or nothing at all for an image without
// metadata. ok is false when the image has no createdKey.
func parseCreated(out []byte) (t time.Time, ok bool, err error) {
	if len(bytes.TrimSpace(out)) == 0 {
		return time.Time{}, false, nil
	}
	var meta map[string]string
	if err := decode("image-meta list", out, &meta); err != nil {
		return time.Time{}, false, err
	}
	v, found := meta[createdKey]
	if !found {
		return time.Time{}, false, nil
	}
	t, err = time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, false, fmt.Errorf("image metadata %s = %q: %w", createdKey, v, err)
	}
	return t.UTC(), true, nil
}
