package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/session"
	authnv1 "stratuslab.dev/proto/stratus/authn/v1"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/cimi/internal/api"
)

// Sizes of the caches: enough for every active session of a large site,
// small enough (tens of MB at most) to be harmless when flooded.
const (
	maxCachedTokens = 100_000
	maxCachedLogins = 10_000
)

// refetchInterval is the least time between two key fetches caused by a
// token naming an unknown key, so that forged key ids cannot hammer authn.
const refetchInterval = time.Second

// authnTimeout bounds each query to authn made without a request deadline.
const authnTimeout = 10 * time.Second

// Options configure an Auth.
type Options struct {
	// ClientRoots are the CAs whose client certificates (and the RFC 3820
	// proxies they sign) may log in; nil disables certificate logins.
	ClientRoots *x509.CertPool
	// VOMSRoots are the CAs of the VOMS servers whose attribute
	// certificates are believed.
	VOMSRoots *x509.CertPool
	// VOMSCerts are VOMS server certificates, found by name when an
	// attribute certificate does not embed its signer (older servers);
	// believed only when they chain to VOMSRoots.
	VOMSCerts []*x509.Certificate
	// SecureCookies marks the session cookie Secure; set when serving HTTPS.
	SecureCookies bool
	// Now is the clock; time.Now when nil.
	Now func() time.Time
}

// Trust says which front proxies may assert a client DN in a header. It is
// off by default: a DN header from anyone else is ignored, since whoever
// can set it can claim any identity.
type Trust struct {
	// Proxies are the addresses of the trusted front proxies.
	Proxies []netip.Prefix
	// DNHeader is the header carrying the client certificate's subject DN
	// (RFC 2253), e.g. "X-SSL-Client-DN"; empty disables the mechanism.
	DNHeader string
}

// Auth authenticates gateway requests (api.Authenticator). It is safe for
// concurrent use; Run must be running for tokens to verify and revocations
// to take effect.
type Auth struct {
	bus  *bus.Bus
	log  *slog.Logger
	opts Options
	now  func() time.Time
	// salt makes the login cache keys useless outside this process, so that
	// a memory dump does not hold unsalted hashes of passwords.
	salt [32]byte

	trust atomic.Pointer[Trust]

	// tokens maps a verified token to its claims, until it expires.
	tokens *bounded[string, session.Claims]
	// logins maps the salted hash of credentials (Basic username and
	// password, a certificate chain, a proxy-asserted DN) to the token a
	// login with them obtained.
	logins *bounded[[32]byte, string]

	mu sync.RWMutex
	// keys is nil until the first key set has been loaded.
	keys session.KeySet
	// keysGen counts key sets received by event, so that a fetch that
	// started before one does not overwrite it with an older set.
	keysGen uint64
	// revoked maps the id of a revoked token to the token's expiry.
	revoked map[string]time.Time
	// notBefore maps a user to the time before which their tokens are
	// refused.
	notBefore map[string]time.Time

	fetchMu   sync.Mutex
	lastFetch time.Time
}

// New returns an Auth asking authn on b; log receives what goes wrong
// (never a password or a token).
func New(b *bus.Bus, log *slog.Logger, o Options) *Auth {
	if log == nil {
		log = slog.Default()
	}
	a := &Auth{
		bus:       b,
		log:       log.With("component", "auth"),
		opts:      o,
		now:       o.Now,
		tokens:    newBounded[string, session.Claims](maxCachedTokens),
		logins:    newBounded[[32]byte, string](maxCachedLogins),
		revoked:   make(map[string]time.Time),
		notBefore: make(map[string]time.Time),
	}
	if a.now == nil {
		a.now = time.Now
	}
	_, _ = rand.Read(a.salt[:]) // never fails (crypto/rand panics instead)
	a.trust.Store(&Trust{})
	return a
}

// SetTrust replaces the trusted proxies; a live setting.
func (a *Auth) SetTrust(t Trust) {
	t.Proxies = append([]netip.Prefix(nil), t.Proxies...)
	a.trust.Store(&t)
}

// Ready returns nil once the key set has been loaded from authn, an error
// with code unavailable before.
func (a *Auth) Ready() error {
	a.mu.RLock()
	defer a.mu.RUnlock()
	if a.keys == nil {
		return errs.New(errs.Unavailable, "The gateway has not loaded the session keys from authn yet: retry shortly.")
	}
	return nil
}

// Authenticate implements api.Authenticator. Sources are tried in order:
// Bearer token, session cookie, HTTP Basic, TLS client certificate, DN
// header of a trusted proxy; the first one present decides.
func (a *Auth) Authenticate(r *http.Request) (api.Session, error) {
	ctx := r.Context()
	if tok, ok := bearer(r); ok {
		return a.tokenSession(ctx, tok)
	}
	if c, err := r.Cookie(api.SessionCookie); err == nil && c.Value != "" {
		return a.tokenSession(ctx, c.Value)
	}
	if user, pass, ok := r.BasicAuth(); ok {
		return a.cachedLogin(ctx, r, a.loginKey("password", user, pass), time.Time{}, func() (*authnv1.LoginRequest, error) {
			return &authnv1.LoginRequest{Method: authnv1.Method_METHOD_PASSWORD, Username: user, Password: pass}, nil
		})
	}
	if chain := a.clientChain(r); chain != nil {
		parts := make([]string, len(chain))
		for i, c := range chain {
			parts[i] = string(c.Raw)
		}
		return a.cachedLogin(ctx, r, a.loginKey("certificate", parts...), chainExpiry(chain), func() (*authnv1.LoginRequest, error) {
			return a.certificateRequest(chain)
		})
	}
	if dn, ok := a.proxyDN(r); ok {
		return a.cachedLogin(ctx, r, a.loginKey("dn", dn), time.Time{}, func() (*authnv1.LoginRequest, error) {
			return &authnv1.LoginRequest{Method: authnv1.Method_METHOD_CERTIFICATE, Dn: dn}, nil
		})
	}
	return api.Session{}, nil
}

// Login implements api.Authenticator: with empty credentials it logs in
// with the client certificate of r (or the DN a trusted proxy asserts),
// otherwise with the username and password. Every call opens a new
// session.
func (a *Auth) Login(ctx context.Context, r *http.Request, c api.Credentials) (api.Session, error) {
	if c.Username == "" && c.Password == "" {
		if chain := a.clientChain(r); chain != nil {
			req, err := a.certificateRequest(chain)
			if err != nil {
				return api.Session{}, err
			}
			return a.login(ctx, r, req)
		}
		if dn, ok := a.proxyDN(r); ok {
			return a.login(ctx, r, &authnv1.LoginRequest{Method: authnv1.Method_METHOD_CERTIFICATE, Dn: dn})
		}
		return api.Session{}, errs.New(errs.Unauthorized, "Give a username and a password, or present a client certificate, to log in.")
	}
	return a.login(ctx, r, &authnv1.LoginRequest{Method: authnv1.Method_METHOD_PASSWORD, Username: c.Username, Password: c.Password})
}

// Logout implements api.Authenticator: authn revokes the token at every
// gateway, and this one forgets it at once rather than when the event
// arrives. A session without a token has nothing to end.
func (a *Auth) Logout(ctx context.Context, s api.Session) error {
	if s.Token == "" {
		return nil
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	actor := &commonv1.Actor{User: s.Identity.User, Roles: s.Identity.Roles}
	err := a.bus.Request(ctx, subject.SvcAuthnLogout, actor, &authnv1.LogoutRequest{Token: s.Token}, nil)
	a.forget(s.Token)
	if err != nil && errs.CodeOf(err) != errs.Unauthorized { // an invalid token is as good as logged out
		return authnError(err)
	}
	return nil
}

// SetCookie writes the session cookie carrying s's token.
func (a *Auth) SetCookie(w http.ResponseWriter, s api.Session) {
	http.SetCookie(w, &http.Cookie{
		Name:     api.SessionCookie,
		Value:    s.Token,
		Path:     "/",
		Expires:  s.Expires,
		HttpOnly: true,
		Secure:   a.opts.SecureCookies,
		SameSite: http.SameSiteLaxMode,
	})
}

// ClearCookie tells the browser to drop the session cookie.
func (a *Auth) ClearCookie(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name:     api.SessionCookie,
		Value:    "",
		Path:     "/",
		Expires:  time.Unix(0, 0),
		MaxAge:   -1,
		HttpOnly: true,
		Secure:   a.opts.SecureCookies,
		SameSite: http.SameSiteLaxMode,
	})
}

// bearer returns the token of an "Authorization: Bearer" header. A Bearer
// header without a token is reported present, so that it is refused rather
// than ignored.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	return strings.TrimSpace(tok), true
}

// tokenSession authenticates a request carrying a session token.
func (a *Auth) tokenSession(ctx context.Context, tok string) (api.Session, error) {
	c, err := a.verify(ctx, tok)
	if err != nil {
		return api.Session{}, err
	}
	return api.Session{Identity: identity(c), Method: "session", Token: tok, Expires: c.Expiry()}, nil
}

func identity(c session.Claims) cimi.Identity {
	return cimi.Identity{User: c.User, Roles: c.Roles}
}

// verify checks a token: signature and expiry (cached), then revocation.
func (a *Auth) verify(ctx context.Context, tok string) (session.Claims, error) {
	now := a.now()
	c, ok := a.tokens.get(tok, now)
	if !ok {
		var err error
		if c, err = a.parse(ctx, tok, now); err != nil {
			return session.Claims{}, err
		}
		a.tokens.put(tok, c, c.Expiry(), now)
	}
	if err := a.checkRevoked(c); err != nil {
		return session.Claims{}, err
	}
	return c, nil
}

// parse verifies a token's signature and expiry, fetching the key set
// again when the token names a key this gateway does not know yet (authn
// rotated its keys and the event has not arrived).
func (a *Auth) parse(ctx context.Context, tok string, now time.Time) (session.Claims, error) {
	c, err := session.Parse(tok, a.keySet(), now)
	if errors.Is(err, session.ErrUnknownKey) {
		if ferr := a.refetchKeys(ctx); ferr != nil {
			return session.Claims{}, ferr
		}
		c, err = session.Parse(tok, a.keySet(), now)
	}
	switch {
	case err == nil:
		return c, nil
	case errors.Is(err, session.ErrExpired):
		return session.Claims{}, errs.Wrap(errs.Unauthorized, err, "Your session has expired: log in again")
	default:
		return session.Claims{}, errs.Wrap(errs.Unauthorized, err, "Your session token is not valid here: log in again")
	}
}

func (a *Auth) keySet() session.KeySet {
	a.mu.RLock()
	defer a.mu.RUnlock()
	return a.keys
}

// checkRevoked refuses a token revoked by logout, or issued before its
// user's sessions were closed.
func (a *Auth) checkRevoked(c session.Claims) error {
	a.mu.RLock()
	_, gone := a.revoked[c.ID]
	nb, closed := a.notBefore[c.User]
	a.mu.RUnlock()
	if gone {
		return errs.New(errs.Unauthorized, "Your session has ended (it was logged out): log in again.")
	}
	// Tokens carry milliseconds: compare at that precision, so that a token
	// issued in the same millisecond as not_before stays valid.
	if closed && nb.UnixMilli() > c.IssuedAt {
		return errs.New(errs.Unauthorized, "Your session was closed because your account changed: log in again.")
	}
	return nil
}

// loginKey returns the salted hash of a kind of credentials and its parts,
// each length-prefixed so that ("ab","c") and ("a","bc") differ.
func (a *Auth) loginKey(kind string, parts ...string) [32]byte {
	h := sha256.New()
	h.Write(a.salt[:])
	var n [8]byte
	for _, p := range append([]string{kind}, parts...) {
		binary.BigEndian.PutUint64(n[:], uint64(len(p)))
		h.Write(n[:])
		h.Write([]byte(p))
	}
	var k [32]byte
	h.Sum(k[:0])
	return k
}

// cachedLogin authenticates with credentials whose login is cached under
// key: the cached token when it is still valid and not revoked, otherwise
// a new login with the request build returns. limit, when not zero, ends
// the cached login earlier than its token (a certificate's expiry).
func (a *Auth) cachedLogin(ctx context.Context, r *http.Request, key [32]byte, limit time.Time, build func() (*authnv1.LoginRequest, error)) (api.Session, error) {
	now := a.now()
	if tok, ok := a.logins.get(key, now); ok {
		if c, err := a.verify(ctx, tok); err == nil {
			return api.Session{Identity: identity(c), Method: c.Method, Token: tok, Expires: c.Expiry()}, nil
		}
		a.logins.remove(key)
	}
	req, err := build()
	if err != nil {
		return api.Session{}, err
	}
	s, err := a.login(ctx, r, req)
	if err != nil {
		return api.Session{}, err
	}
	until := s.Expires
	if !limit.IsZero() && limit.Before(until) {
		until = limit
	}
	a.logins.put(key, s.Token, until, now)
	return s, nil
}

// login asks authn to open a session and verifies the token it returns.
func (a *Auth) login(ctx context.Context, r *http.Request, req *authnv1.LoginRequest) (api.Session, error) {
	req.Source = a.source(r)
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	var resp authnv1.LoginResponse
	if err := a.bus.Request(ctx, subject.SvcAuthnLogin, nil, req, &resp); err != nil {
		return api.Session{}, authnError(err)
	}
	c, err := a.verify(ctx, resp.GetToken())
	if err != nil {
		a.log.Error("authn issued a session token this gateway cannot verify", "error", err)
		return api.Session{}, err
	}
	method := c.Method
	if method == "" {
		method = methodName(resp.GetMethod())
	}
	return api.Session{Identity: identity(c), Method: method, Token: resp.GetToken(), Expires: c.Expiry()}, nil
}

func methodName(m authnv1.Method) string {
	switch m {
	case authnv1.Method_METHOD_PASSWORD:
		return "password"
	case authnv1.Method_METHOD_CERTIFICATE:
		return "certificate"
	case authnv1.Method_METHOD_VOMS:
		return "voms"
	}
	return ""
}

// authnError turns a failed query to authn into the error callers see:
// authn's own answer for refused credentials, unavailable when authn
// cannot be reached.
func authnError(err error) error {
	switch code := errs.CodeOf(err); code {
	case errs.Unauthorized, errs.TooManyRequests, errs.Invalid:
		return errs.Wrap(code, err, errs.MessageOf(err))
	case errs.Unavailable, errs.Timeout:
		return errs.Wrap(errs.Unavailable, err, "The authentication service is not reachable: retry later")
	default:
		return errs.Wrap(code, err, "")
	}
}

// forget revokes a token locally: it is refused from now on.
func (a *Auth) forget(tok string) {
	c, ok := a.tokens.get(tok, a.now())
	if !ok {
		var err error
		if c, err = session.Parse(tok, a.keySet(), a.now()); err != nil {
			return // not a valid token: nothing accepts it anyway
		}
	}
	a.tokens.remove(tok)
	a.logins.removeIf(func(_ [32]byte, t string) bool { return t == tok })
	a.mu.Lock()
	a.revoked[c.ID] = c.Expiry()
	a.mu.Unlock()
}

// trusted reports whether r comes straight from a trusted front proxy.
func (a *Auth) trusted(r *http.Request, t *Trust) bool {
	if len(t.Proxies) == 0 {
		return false
	}
	addr, ok := remoteAddr(r)
	if !ok {
		return false
	}
	for _, p := range t.Proxies {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

func remoteAddr(r *http.Request) (netip.Addr, bool) {
	if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
		return ap.Addr().Unmap(), true
	}
	if addr, err := netip.ParseAddr(r.RemoteAddr); err == nil {
		return addr.Unmap(), true
	}
	return netip.Addr{}, false
}

// proxyDN returns the client DN a trusted proxy asserts; the header of
// anyone else is ignored.
func (a *Auth) proxyDN(r *http.Request) (string, bool) {
	t := a.trust.Load()
	if t.DNHeader == "" {
		return "", false
	}
	dn := strings.TrimSpace(r.Header.Get(t.DNHeader))
	if dn == "" || !a.trusted(r, t) {
		return "", false
	}
	return dn, true
}

// source returns the client's address for authn's slowing down of failed
// logins: the address a trusted proxy forwarded, or the peer's own.
func (a *Auth) source(r *http.Request) string {
	if a.trusted(r, a.trust.Load()) {
		if xff := r.Header.Values("X-Forwarded-For"); len(xff) > 0 {
			// The proxy appends the address it saw; anything before it is
			// what the client claimed.
			last := xff[len(xff)-1]
			if i := strings.LastIndexByte(last, ','); i >= 0 {
				last = last[i+1:]
			}
			if s := strings.TrimSpace(last); s != "" {
				return s
			}
		}
		if s := strings.TrimSpace(r.Header.Get("X-Real-IP")); s != "" {
			return s
		}
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		return host
	}
	return r.RemoteAddr
}

// withTimeout bounds ctx by authnTimeout when it has no deadline.
func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, authnTimeout)
}
