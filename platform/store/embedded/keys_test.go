package embedded

import (
	"errors"
	"regexp"
	"strings"
	"testing"

	"stratuslab.dev/platform/store"
)

// validKey is the KV key syntax of the NATS client.
var validKey = regexp.MustCompile(`^[-/_=.a-zA-Z0-9]+$`)

func checkKey(t *testing.T, id string) {
	t.Helper()
	key := encodeKey(id)
	if !validKey.MatchString(key) || strings.HasPrefix(key, ".") || strings.HasSuffix(key, ".") || strings.Contains(key, "..") {
		t.Fatalf("encodeKey(%q) = %q, not a valid KV key", id, key)
	}
	back, err := decodeKey(key)
	if err != nil || back != id {
		t.Fatalf("decodeKey(encodeKey(%q)) = %q, %v", id, back, err)
	}
}

func TestKeys(t *testing.T) {
	t.Parallel()
	tests := []struct{ id, key string }{
		{"Volume/8d0f-12", "Volume/8d0f-12"},
		{"User/alice@example.org", "User/alice_40example_2Eorg"},
		{"a_b", "a_5Fb"},
		{"..", "_2E_2E"},
		{"x=1", "x=1"},
		{"é", "_C3_A9"},
		{"a b*>", "a_20b_2A_3E"},
	}
	for _, tt := range tests {
		if got := encodeKey(tt.id); got != tt.key {
			t.Errorf("encodeKey(%q) = %q, want %q", tt.id, got, tt.key)
		}
		checkKey(t, tt.id)
	}
	for _, bad := range []string{"_", "a_4", "a_zz", "_4g"} {
		if _, err := decodeKey(bad); !errors.Is(err, store.ErrInvalid) {
			t.Errorf("decodeKey(%q) = %v, want ErrInvalid", bad, err)
		}
	}
}

func FuzzKeys(f *testing.F) {
	for _, s := range []string{"User/alice@example.org", "..", "_5F", "\x00", "名前"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, id string) {
		if id == "" {
			return
		}
		checkKey(t, id)
	})
}
