// Package resource is the owner side of the generic CIMI resource protocol
// (proto/stratus/cimi/v1/resource.proto): every service that owns CIMI
// kinds serves them with it, so that ids, common attributes, ACL checks,
// idempotent writes and change events work the same everywhere.
//
// # A CIMI resource
//
// A service describes each kind it owns with a Kind: its name, its store
// collection, who may create one, and optional hooks that validate a create
// (New), compute an edit (Change), refuse a delete (Remove), run actions
// (Actions), choose the default ACL, hide attributes (View) and react to a
// change (Changed). It then builds a Provider and wires it to the bus:
//
//	p, err := resource.New(deps.Bus, "pdisk", deps.Logger, resource.Kind{
//		Name:       "Volume",
//		Collection: volumes,
//		CanCreate:  func(who cimi.Identity) bool { return who.User != "" },
//		New:        checkVolume,
//	})
//	// queries: svc.pdisk.cimi_get and svc.pdisk.cimi_query
//	go deps.Bus.Serve(ctx, bus.ServiceInfo{}, append(p.Endpoints(), others...)...)
//	// commands: cmd.pdisk.volume.cimi_create|cimi_edit|cimi_delete|cimi_<action>
//	go deps.Bus.Consume(ctx, bus.ConsumerSpec{Durable: "pdisk-cimi", Subjects: p.Subjects()}, p.Handle)
//
// The provider answers reads only with what the caller's ACL lets it view
// ("not_found" otherwise, never revealing that a resource exists), and
// parses the query parameters itself rather than trusting the gateway.
// Writes need MODIFY (ALL to change an acl); the provider sets id,
// resourceURI, created and updated, stores the document, runs Changed,
// publishes a ResourceChanged event on evt.<service>.<resource>.created,
// updated or deleted, and reports the command done. Hook errors carrying a
// client error code (invalid, forbidden, conflict, ...) refuse the command
// for good; errors without a code are retried.
//
// Documents are JSON objects decoded with numbers as json.Number. They
// never hold "operations" (the gateway adds those per caller). Attributes
// whose names start with "_" are the provider's: it records there the id
// of the command that wrote a document last ("_command"), so that a
// redelivered command recognises its own work; they are never returned,
// never taken from a body, and cannot be filtered or sorted on. A
// redelivered command that finds its write done runs Changed again (with
// before equal to after for an edit, so a hook that must not miss a change
// decides from after) and republishes the same event id. Changed runs just
// before the removal on a delete, so that a crash cannot skip it.
package resource
