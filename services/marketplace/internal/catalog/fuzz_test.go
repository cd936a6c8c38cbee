package catalog_test

import (
	"testing"

	"stratuslab.dev/client/metadata"
	"stratuslab.dev/services/marketplace/internal/catalog"
)

// FuzzParseReference: whatever a user types, a reference is refused or
// names exactly one thing, reads back the same from its String, and never
// mistakes an identifier for a tag.
//
//	go test -run '^$' -fuzz FuzzParseReference ./internal/catalog/
func FuzzParseReference(f *testing.F) {
	for _, s := range []string{
		"BEE8-MMAw-Lk_IgsEExAy3d9R8h", "debian-12", "images@example.org/debian-12", "a@b/c", "/", "x/", "@/t",
		"0b6e2f4c-3d6a-4a39-9d55-0c1f1c6f2a10", "images@example.org/BEE8-MMAw-Lk_IgsEExAy3d9R8h", " debian ", "é", "a/b/c",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ref, err := catalog.ParseReference(s)
		if err != nil {
			return
		}
		switch {
		case ref.Identifier != "":
			if ref.Tag != "" || ref.Email != "" || !metadata.ValidIdentifier(ref.Identifier) {
				t.Fatalf("%q: %+v", s, ref)
			}
		case !metadata.ValidTag(ref.Tag) || (ref.Email != "" && !metadata.ValidEmail(ref.Email)):
			t.Fatalf("%q: %+v", s, ref)
		}
		again, err := catalog.ParseReference(ref.String())
		if err != nil || again != ref {
			t.Fatalf("%q: %+v reads back as %+v, %v", s, ref, again, err)
		}
	})
}
