package sdk

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// maxBody bounds what the client reads of one answer; a CIMI document or
// page larger than this is a server fault, not something to buffer.
const maxBody = 64 << 20

// Client talks to one cloud's CIMI endpoint. It is safe for concurrent use;
// Login and Logout change the credentials every later call uses.
type Client struct {
	endpoint string
	http     *http.Client
	agent    string
	trace    *tracer
	setupErr error

	mu       sync.Mutex
	username string
	password string
	token    string
	entry    *EntryPoint
}

// New returns a client for the cloud at endpoint, e.g.
// "https://cloud.example.org" or "http://127.0.0.1:8080". An endpoint
// without a scheme means https; a trailing "/cimi" or
// "/cimi/cloudEntryPoint" is accepted. If an option cannot be applied (an
// unreadable CA file, say) every call returns that error; use Open to see
// it at once.
func New(endpoint string, opts ...Option) *Client {
	c, err := Open(endpoint, opts...)
	c.setupErr = err
	return c
}

// Open is New that reports a bad option (unreadable certificate, CA file
// or PKCS#12 bundle) immediately.
func Open(endpoint string, opts ...Option) (*Client, error) {
	s := settings{timeout: 30 * time.Second, agent: "stratus-sdk"}
	for _, o := range opts {
		o(&s)
	}
	c := &Client{
		endpoint: Normalize(endpoint),
		agent:    s.agent,
		username: s.username,
		password: s.password,
		token:    s.token,
	}
	if s.traceOut != nil && s.traceLevel > 0 {
		c.trace = &tracer{w: s.traceOut, level: s.traceLevel}
	}
	if c.endpoint == "" {
		c.http = &http.Client{Timeout: s.timeout}
		return c, ErrNoEndpoint
	}
	tlsConf, err := s.tlsConfig()
	if err != nil {
		c.http = &http.Client{Timeout: s.timeout}
		return c, err
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsConf
	c.http = &http.Client{Timeout: s.timeout, Transport: tr}
	return c, nil
}

// Normalize turns a configured endpoint into the base URL the client uses:
// https:// when no scheme is given, no trailing slash, no "/cimi" suffix.
func Normalize(endpoint string) string {
	e := strings.TrimSpace(endpoint)
	if e != "" && !strings.Contains(e, "://") {
		e = "https://" + e
	}
	e = strings.TrimRight(e, "/")
	e = strings.TrimSuffix(e, "/cimi/cloudEntryPoint")
	e = strings.TrimSuffix(e, "/cimi")
	return strings.TrimRight(e, "/")
}

// Endpoint returns the base URL this client talks to.
func (c *Client) Endpoint() string { return c.endpoint }

// Token returns the session token of the last Login, or the one given with
// WithToken; empty when the client uses other credentials.
func (c *Client) Token() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.token
}

// url resolves a reference: an absolute URL stays as it is, "/path" is
// relative to the endpoint, anything else ("ServiceMessage/42", "Job/7")
// is relative to the CIMI base URI.
func (c *Client) url(ref string) string {
	switch {
	case strings.HasPrefix(ref, "http://") || strings.HasPrefix(ref, "https://"):
		return ref
	case strings.HasPrefix(ref, "/"):
		return c.endpoint + ref
	}
	return c.endpoint + "/cimi/" + ref
}

// ID turns an href or a header value (absolute, "/cimi/..." or relative)
// into the resource id the API uses in documents, e.g. "Job/7".
func (c *Client) ID(href string) string {
	h := strings.TrimPrefix(href, c.endpoint)
	h = strings.TrimPrefix(h, "/cimi/")
	return h
}

// response is what the client keeps of an answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

// do sends one request. body, when not nil, is sent as JSON (a
// json.RawMessage or []byte goes as is). Answers of 300 and above become
// *Error; transport failures become *NetError.
func (c *Client) do(ctx context.Context, method, ref string, query url.Values, body any) (*response, error) {
	var payload []byte
	if body != nil {
		switch b := body.(type) {
		case json.RawMessage:
			payload = b
		case []byte:
			payload = b
		default:
			var err error
			if payload, err = json.Marshal(body); err != nil {
				return nil, fmt.Errorf("%s %s: the request body cannot be written as JSON: %w", method, ref, err)
			}
		}
	}
	contentType := ""
	if payload != nil {
		contentType = "application/json"
	}
	return c.send(ctx, outgoing{method: method, ref: ref, query: query, payload: payload, contentType: contentType, accept: "application/json", secrets: true})
}

// outgoing is one request as send takes it.
type outgoing struct {
	method, ref string
	query       url.Values
	payload     []byte // the body; nil for none
	contentType string // of the body
	accept      string // what the answer should be
	// secrets says whether the password or session token goes with the
	// request; a TLS client certificate always does.
	secrets bool
}

// send sends one request with a body of any type and returns the answer;
// do is send for JSON.
func (c *Client) send(ctx context.Context, o outgoing) (*response, error) {
	if c.setupErr != nil {
		return nil, c.setupErr
	}
	method, ref := o.method, o.ref
	u := c.url(ref)
	if len(o.query) > 0 {
		u += "?" + o.query.Encode()
	}
	var rd io.Reader
	if o.payload != nil {
		rd = bytes.NewReader(o.payload)
	}
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, ref, err)
	}
	req.Header.Set("Accept", o.accept)
	req.Header.Set("User-Agent", c.agent)
	if o.payload != nil && o.contentType != "" {
		req.Header.Set("Content-Type", o.contentType)
	}
	c.mu.Lock()
	switch {
	case !o.secrets:
	case c.token != "":
		req.Header.Set("Authorization", "Bearer "+c.token)
	case c.username != "":
		req.SetBasicAuth(c.username, c.password)
	}
	c.mu.Unlock()

	start := time.Now()
	c.trace.request(req, o.payload)
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("%s %s: %w", method, ref, ctx.Err())
		}
		return nil, &NetError{Endpoint: c.site(req.URL), Err: err}
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return nil, &NetError{Endpoint: c.site(req.URL), Err: err}
	}
	c.trace.response(resp, data, time.Since(start))
	if resp.StatusCode >= 300 {
		return nil, decodeError(resp.StatusCode, data)
	}
	return &response{status: resp.StatusCode, header: resp.Header, body: data}, nil
}

// site names where a request went, for errors: the endpoint, or the
// scheme and host of another site.
func (c *Client) site(u *url.URL) string {
	if sameSite(c.endpoint, u) {
		return c.endpoint
	}
	return u.Scheme + "://" + u.Host
}

// sameSite reports whether u has the scheme, host and port of base.
func sameSite(base string, u *url.URL) bool {
	b, err := url.Parse(base)
	return err == nil && strings.EqualFold(b.Scheme, u.Scheme) && strings.EqualFold(b.Host, u.Host)
}

// decodeError reads a CIMI error document, or makes one from the status
// when a proxy in front of the cloud answered with something else.
func decodeError(status int, data []byte) *Error {
	e := &Error{}
	if json.Unmarshal(data, e) != nil || e.Message == "" {
		e.Message = strings.TrimSpace(string(data))
		if len(e.Message) > 200 || e.Message == "" || strings.HasPrefix(e.Message, "<") {
			e.Message = http.StatusText(status)
		}
	}
	e.Status = status
	if e.Code == "" {
		e.Code = codeOf(status)
	}
	return e
}

func codeOf(status int) string {
	switch status {
	case 400:
		return "invalid"
	case 401:
		return "unauthorized"
	case 403:
		return "forbidden"
	case 404:
		return "not_found"
	case 405:
		return "method_not_allowed"
	case 409:
		return "conflict"
	case 413:
		return "too_large"
	case 415:
		return "unsupported_media_type"
	case 429:
		return "too_many_requests"
	case 502, 503:
		return "unavailable"
	case 504:
		return "timeout"
	}
	return "internal"
}

// getJSON reads ref into out.
func (c *Client) getJSON(ctx context.Context, ref string, query url.Values, out any) error {
	r, err := c.do(ctx, http.MethodGet, ref, query, nil)
	if err != nil {
		return err
	}
	return decode(r, ref, out)
}

func decode(r *response, ref string, out any) error {
	if out == nil || len(r.body) == 0 {
		return nil
	}
	if raw, ok := out.(*json.RawMessage); ok {
		*raw = append((*raw)[:0], r.body...)
		return nil
	}
	if err := json.Unmarshal(r.body, out); err != nil {
		return fmt.Errorf("%s: the cloud answered something that is not the expected JSON: %w", ref, err)
	}
	return nil
}

// ErrNoEndpoint is returned by every call of a client made without an
// endpoint.
var ErrNoEndpoint = errors.New("no endpoint given")
