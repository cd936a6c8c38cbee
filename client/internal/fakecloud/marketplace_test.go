package fakecloud

import (
	"encoding/base64"
	"testing"
)

func TestPowersOff(t *testing.T) {
	t.Parallel()
	cfg := "#cloud-config\npower_state:\n  mode: poweroff\n"
	multipart := func(cte, body string) string {
		return "Content-Type: multipart/mixed; boundary=\"B\"\r\nMIME-Version: 1.0\r\n\r\n--B\r\nContent-Type: text/x-shellscript\r\n\r\necho power_state:\r\n" +
			"--B\r\nContent-Type: text/cloud-config\r\n" + cte + "\r\n" + body + "\r\n--B--\r\n"
	}
	for _, tc := range []struct {
		name, userData string
		want           bool
	}{
		{"none", "", false},
		{"plain cloud-config", cfg, true},
		{"base64 part", multipart("Content-Transfer-Encoding: base64\r\n", base64.StdEncoding.EncodeToString([]byte(cfg))), true},
		{"8-bit part", multipart("", cfg), true},
		{"only in a script", multipart("", "#cloud-config\nruncmd: [ls]\n"), false},
	} {
		m := map[string]any{"context": map[string]any{"userData": tc.userData}}
		if got := powersOff(m); got != tc.want {
			t.Errorf("%s: powersOff = %v", tc.name, got)
		}
	}
}
