package sdk

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
)

// tracer writes the -v/-vv/-vvv view of each exchange. A nil tracer writes
// nothing.
type tracer struct {
	mu    sync.Mutex
	w     io.Writer
	level int
}

// secretHeader tells the headers never written, whatever the level.
func secretHeader(k string) bool {
	switch http.CanonicalHeaderKey(k) {
	case "Authorization", "Cookie", "Set-Cookie", "Proxy-Authorization":
		return true
	}
	return false
}

// maxTraceBody bounds a body in the trace; a page of a collection can be
// large and the trace is for people.
const maxTraceBody = 8 << 10

func (t *tracer) request(r *http.Request, body []byte) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.w, "> %s %s\n", r.Method, r.URL)
	if t.level >= 2 {
		t.headers(">", r.Header)
	}
	if t.level >= 3 && len(body) > 0 {
		fmt.Fprintf(t.w, "%s\n", Redact(body))
	}
}

func (t *tracer) response(r *http.Response, body []byte, took time.Duration) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Fprintf(t.w, "< %s (%s)\n", r.Status, took.Round(time.Millisecond))
	if t.level >= 2 {
		t.headers("<", r.Header)
	}
	if t.level >= 3 && len(body) > 0 {
		fmt.Fprintf(t.w, "%s\n", Redact(body))
	}
}

func (t *tracer) headers(dir string, h http.Header) {
	keys := make([]string, 0, len(h))
	for k := range h {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := strings.Join(h[k], ", ")
		if secretHeader(k) {
			v = "***"
		}
		fmt.Fprintf(t.w, "%s %s: %s\n", dir, k, v)
	}
}

// Redact returns a JSON body with the values of secret-looking attributes
// (password, token, secret, key material) replaced by "***", cut to a size
// fit for a terminal. A body that is not JSON is cut only.
func Redact(body []byte) string {
	var v any
	if json.Unmarshal(body, &v) != nil {
		return cut(string(body))
	}
	out, err := json.Marshal(redact(v))
	if err != nil {
		return cut(string(body))
	}
	return cut(string(out))
}

func redact(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if secretKey(k) {
				x[k] = "***"
				continue
			}
			x[k] = redact(val)
		}
	case []any:
		for i := range x {
			x[i] = redact(x[i])
		}
	}
	return v
}

func secretKey(k string) bool {
	k = strings.ToLower(k)
	for _, s := range []string{"password", "token", "secret", "private"} {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

func cut(s string) string {
	if len(s) > maxTraceBody {
		return s[:maxTraceBody] + fmt.Sprintf("... (%d bytes)", len(s))
	}
	return s
}
