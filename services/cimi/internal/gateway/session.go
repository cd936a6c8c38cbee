package gateway

import (
	"encoding/json"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/services/cimi/internal/api"
)

// loginForm is what POST /cimi/login reads, as JSON or as a form.
type loginForm struct {
	Username    string `json:"username"`
	Password    string `json:"password"`
	RedirectURL string `json:"redirectURL"`
}

// login serves POST /cimi/login: password (or, with no credentials, client
// certificate) login opening a session carried by a cookie.
func (g *Gateway) login(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodPost) {
		return
	}
	f, err := readLogin(w, r)
	if err != nil {
		g.fail(w, r, err)
		return
	}
	s, err := g.sessions.Login(r.Context(), r, api.Credentials{Username: f.Username, Password: f.Password})
	if err != nil {
		g.fail(w, r, err)
		return
	}
	g.sessions.SetCookie(w, s)
	if target, ok := localRedirect(f.RedirectURL); ok {
		http.Redirect(w, r, target, http.StatusSeeOther)
		return
	}
	body := sessionBody(s)
	body["status"] = http.StatusOK
	body["message"] = s.Identity.User + " logged in"
	body["token"] = s.Token
	writeJSON(w, http.StatusOK, body)
}

// readLogin reads the credentials of a login request: a JSON object, or
// a form as the original server's login page posted it.
func readLogin(w http.ResponseWriter, r *http.Request) (loginForm, error) {
	var f loginForm
	mt := ""
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, _ = mime.ParseMediaType(ct)
	}
	switch mt {
	case "application/x-www-form-urlencoded", "multipart/form-data":
		r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		if err := r.ParseMultipartForm(MaxBodyBytes); err != nil && err != http.ErrNotMultipart {
			return f, errs.New(errs.Invalid, "The login form cannot be read.")
		}
		f.Username, f.Password, f.RedirectURL = r.PostFormValue("username"), r.PostFormValue("password"), r.PostFormValue("redirectURL")
		return f, nil
	}
	body, err := readBody(w, r)
	if err != nil {
		return f, err
	}
	if strings.TrimSpace(string(body)) == "" {
		return f, nil
	}
	if err := json.Unmarshal(body, &f); err != nil {
		return f, errs.New(errs.Invalid, `The login body must be a JSON object {"username": ..., "password": ...} or a form.`)
	}
	return f, nil
}

// localRedirect accepts a redirect target only when it is a path on this
// server, so that a login link cannot send people to another site.
func localRedirect(target string) (string, bool) {
	if target == "" || !strings.HasPrefix(target, "/") || strings.HasPrefix(target, "//") || strings.ContainsAny(target, "\\\r\n") {
		return "", false
	}
	u, err := url.Parse(target)
	if err != nil || u.Scheme != "" || u.Host != "" {
		return "", false
	}
	return target, true
}

// logout serves POST /cimi/logout: the session's token is revoked and
// the cookie cleared.
func (g *Gateway) logout(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodPost) {
		return
	}
	s, err := g.sessions.Authenticate(r)
	g.sessions.ClearCookie(w)
	msg := "not logged in"
	// A caller whose token no longer verifies is logged out already.
	if err == nil && s.Token != "" {
		if err := g.sessions.Logout(r.Context(), s); err != nil {
			g.fail(w, r, err)
			return
		}
		msg = s.Identity.User + " logged out"
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	if err := r.ParseForm(); err == nil {
		if target, ok := localRedirect(r.PostForm.Get("redirectURL")); ok {
			http.Redirect(w, r, target, http.StatusSeeOther)
			return
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"status": http.StatusOK, "message": msg})
}

// authn serves GET /cimi/authn: who the caller is to the cloud.
func (g *Gateway) authn(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodGet) {
		return
	}
	s, ok := g.who(w, r)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, sessionBody(s))
}

// sessionBody describes a session: identity, every role held (::USER and
// ::ANON included), method and expiry.
func sessionBody(s api.Session) map[string]any {
	roles := []string{}
	if s.Identity.User != "" {
		roles = append(roles, cimi.RoleUser)
	}
	for _, r := range s.Identity.Roles {
		if r != cimi.RoleUser && r != cimi.RoleAnon {
			roles = append(roles, r)
		}
	}
	roles = append(roles, cimi.RoleAnon)
	body := map[string]any{"identity": s.Identity.User, "roles": roles, "method": s.Method}
	if !s.Expires.IsZero() {
		body["expires"] = s.Expires.UTC().Format(time.RFC3339)
	}
	return body
}
