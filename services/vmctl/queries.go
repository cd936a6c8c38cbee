package vmctl

import (
	"context"
	"slices"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/proto/subject"
	"stratuslab.dev/services/vmctl/internal/addresses"
	"stratuslab.dev/services/vmctl/internal/hosts"
)

// reports answers the queries behind the gateway's plain-text pages:
// /load.txt, the load of every host, and /dhcp/hosts, the host entries a
// site's DHCP server needs to give machines their addresses.
type reports struct {
	// hosts lists the registered hosts, in the order load.txt shows them.
	hosts func(context.Context) ([]hosts.Host, error)
	// pools returns the address pools in force.
	pools func() []addresses.Pool
}

// endpoints are the query endpoints of r.
func (r reports) endpoints() []bus.Endpoint {
	return []bus.Endpoint{
		bus.Handle(subject.OpLoadTxt, r.loadTxt),
		bus.Handle(subject.OpDHCPHosts, r.dhcpHosts),
	}
}

// loadTxt answers the load.txt table of every host. Anyone may read it:
// the original served it as a public file.
func (r reports) loadTxt(ctx context.Context, _ *emptypb.Empty) (proto.Message, error) {
	all, err := r.hosts(ctx)
	if err != nil {
		return nil, errs.Wrap(errs.Unavailable, err, "The host registry cannot be read now: retry later")
	}
	return wrapperspb.String(hosts.LoadTxt(all)), nil
}

// dhcpHosts answers the DHCP host entries of the pools in the format the
// request names. The addresses of a cloud are for administrators: a query
// sent on behalf of anyone else is refused; one sent by a service, with no
// actor, is answered.
func (r reports) dhcpHosts(ctx context.Context, format *wrapperspb.StringValue) (proto.Message, error) {
	if a := bus.ActorFrom(ctx); a != nil && !slices.Contains(a.GetRoles(), cimi.RoleAdmin) {
		return nil, errs.New(errs.Forbidden, "Only administrators may read the DHCP host entries.")
	}
	text, err := addresses.HostEntries(format.GetValue(), r.pools())
	if err != nil {
		return nil, err
	}
	return wrapperspb.String(text), nil
}
