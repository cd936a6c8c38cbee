package fakecloud

import "testing"

func TestMatch(t *testing.T) {
	t.Parallel()
	doc := map[string]any{"tag": "it's", "size": 2.0, "count": 0, "visibility": "PUBLIC", "path": `C:\dir`,
		"created": "2026-01-02T03:04:05.5Z", "volatile": false}
	for _, tc := range []struct {
		filter string
		want   bool
		bad    bool
	}{
		{`tag='it''s'`, true, false},
		{`tag="it's"`, true, false},
		{`tag='it\'s'`, true, false},
		{`tag='it'`, false, false},
		{`path='C:\dir'`, true, false},
		{`path='C:\\dir'`, true, false},
		{`size=2`, true, false},
		{`size='2'`, false, false},
		{`size>=2 and size<3`, true, false},
		{`size>2 OR count=0`, true, false},
		{`tag='x' or tag='y' and size=2`, false, false},
		{`(tag='x' or tag='it''s') and size=2`, true, false},
		{`tag!='x'`, true, false},
		{`missing=null`, true, false},
		{`volatile=false`, true, false},
		{`created>2026-01-02`, true, false},
		{`created<2026-01-02T03:04:05Z`, false, false},
		{`name`, false, true},
		{`tag='open`, false, true},
		{`(size=2`, false, true},
		{`size=2 tag='x'`, false, true},
		{`size=two`, false, true},
	} {
		got, err := Match(tc.filter, doc)
		if (err != nil) != tc.bad || got != tc.want {
			t.Errorf("Match(%q) = %v, %v; want %v, error %v", tc.filter, got, err, tc.want, tc.bad)
		}
	}
}
