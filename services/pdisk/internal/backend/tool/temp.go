package tool

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"strings"
	"time"

	"stratuslab.dev/services/pdisk/internal/backend"
)

// TempPrefix starts the name of every temporary volume. Such names are not
// uuids, so List never returns them.
const TempPrefix = "pdisk-tmp-"

// TempName returns a fresh name under which a volume for id is made before
// it is renamed to id: "pdisk-tmp-<unix seconds>-<8 random hex>-<id>". The
// time lets a reconciler remove temporaries left by a crash once they are
// old enough to belong to no running operation, without asking the storage
// for creation times; the id says which volume was being made.
func TempName(id string, now time.Time) string {
	var r [4]byte
	_, _ = rand.Read(r[:])
	return TempPrefix + strconv.FormatInt(now.Unix(), 10) + "-" + hex.EncodeToString(r[:]) + "-" + id
}

// ParseTemp reads a name made by TempName; ok is false for any other name.
func ParseTemp(name string) (id string, made time.Time, ok bool) {
	rest, found := strings.CutPrefix(name, TempPrefix)
	if !found {
		return "", time.Time{}, false
	}
	secs, rest, found := strings.Cut(rest, "-")
	if !found {
		return "", time.Time{}, false
	}
	unix, err := strconv.ParseInt(secs, 10, 64)
	if err != nil || unix < 0 || len(rest) != 8+1+36 || rest[8] != '-' {
		return "", time.Time{}, false
	}
	if _, err := hex.DecodeString(rest[:8]); err != nil || strings.ToLower(rest[:8]) != rest[:8] {
		return "", time.Time{}, false
	}
	id = rest[9:]
	if !backend.ValidID(id) {
		return "", time.Time{}, false
	}
	return id, time.Unix(unix, 0), true
}
