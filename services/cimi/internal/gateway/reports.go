package gateway

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strconv"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/cimi/internal/api"
)

// loadTxt serves GET /load.txt: the load of every VM host, as the
// original StratusLab's web server published it. It is public, as it was:
// the installation tutorial reads it without credentials.
func (g *Gateway) loadTxt(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodGet) {
		return
	}
	text, err := g.report(r.Context(), subject.SvcLoadTxt, nil, &emptypb.Empty{})
	if err != nil {
		g.fail(w, r, err)
		return
	}
	writeText(w, text)
}

// dhcpHosts serves GET /dhcp/hosts?format=dnsmasq|dhcpd: the host entries
// that give every address of the pools to its MAC address, for the site's
// DHCP server. Administrators only.
func (g *Gateway) dhcpHosts(w http.ResponseWriter, r *http.Request) {
	if !allow(w, r, http.MethodGet) {
		return
	}
	s, ok := g.who(w, r)
	if !ok {
		return
	}
	switch {
	case s.Identity.User == "":
		g.fail(w, r, errs.New(errs.Unauthorized, "Log in as an administrator to read the DHCP host entries."))
		return
	case !s.Identity.HoldsRole(cimi.RoleAdmin):
		g.fail(w, r, errs.New(errs.Forbidden, "Only administrators may read the DHCP host entries."))
		return
	}
	q, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		g.fail(w, r, errs.Errorf(errs.Invalid, "The query string cannot be read: %s.", err.Error()))
		return
	}
	// vmctl knows the formats and says which exist when this one is not.
	actor := &commonv1.Actor{User: s.Identity.User, Roles: s.Identity.Roles}
	text, err := g.report(r.Context(), subject.SvcDHCPHosts, actor, wrapperspb.String(q.Get("format")))
	if err != nil {
		g.fail(w, r, err)
		return
	}
	writeText(w, text)
}

// report asks vmctl for one of its plain-text reports. An answer of vmctl
// keeps its code (an unknown format is invalid); no answer within the
// bound of every read is unavailable.
func (g *Gateway) report(ctx context.Context, subj string, actor *commonv1.Actor, req proto.Message) (string, error) {
	notAnswering := "The vmctl service is not answering: retry later; administrators: check that it runs."
	if g.bus == nil {
		return "", errs.New(errs.Unavailable, notAnswering)
	}
	ctx, cancel := context.WithTimeout(ctx, api.DefaultReadTimeout)
	defer cancel()
	var out wrapperspb.StringValue
	err := g.bus.Request(ctx, subj, actor, req, &out)
	var qe *bus.QueryError
	switch {
	case err == nil:
		return out.GetValue(), nil
	case errors.As(err, &qe):
		return "", errs.New(errs.Code(qe.Code()), qe.Message())
	}
	return "", errs.Wrap(errs.Unavailable, err, notAnswering)
}

// writeText answers text as plain text. It sets Content-Length itself, so
// that a HEAD request gets the length its GET would have.
func writeText(w http.ResponseWriter, text string) {
	h := w.Header()
	h.Set("Content-Type", "text/plain; charset=utf-8")
	h.Set("Content-Length", strconv.Itoa(len(text)))
	// The text changes with every heartbeat and every edit of the pools.
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(text))
}
