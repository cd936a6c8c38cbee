package servicemsg

import (
	"context"
	"encoding/json"
	"strings"

	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/resource"
	"stratuslab.dev/platform/store"
	"stratuslab.dev/proto/subject"
)

// Kinds served here, which are also the collections they live in.
const (
	KindServiceMessage       = "ServiceMessage"
	KindServiceConfiguration = "ServiceConfiguration"
)

// Limits on what an administrator may write.
const (
	maxTitle   = 256
	maxMessage = 64 << 10
	maxConfig  = 256 << 10
)

// Kinds returns the resource kinds of ServiceMessage (stored in messages)
// and ServiceConfiguration (stored in configs).
func Kinds(messages, configs store.Collection) []resource.Kind {
	return []resource.Kind{
		{
			Name:       KindServiceMessage,
			Collection: messages,
			CanCreate:  isAdmin,
			New: func(_ context.Context, _ cimi.Identity, _ string, body map[string]any) (map[string]any, error) {
				return checkMessage(body)
			},
			Change: func(_ context.Context, _ cimi.Identity, current, body map[string]any, selects []string) (map[string]any, error) {
				return checkMessage(resource.Replace(current, body, selects))
			},
			DefaultACL: func(cimi.Identity, string, map[string]any) cimi.ACL { return publicACL() },
		},
		{
			Name:       KindServiceConfiguration,
			Collection: configs,
			CanCreate:  isAdmin,
			New: func(_ context.Context, _ cimi.Identity, id string, body map[string]any) (map[string]any, error) {
				return checkConfiguration(id, body)
			},
			Change: func(_ context.Context, _ cimi.Identity, current, body map[string]any, selects []string) (map[string]any, error) {
				id, _ := current["id"].(string)
				return checkConfiguration(id, resource.Replace(current, body, selects))
			},
			DefaultACL: func(cimi.Identity, string, map[string]any) cimi.ACL { return adminACL() },
		},
	}
}

// isAdmin is who may create either kind. The gateway checks too, but the
// owner of the documents never trusts it alone.
func isAdmin(who cimi.Identity) bool { return who.IsAdmin() }

// checkMessage validates a ServiceMessage: "name" is its title (required),
// "description" its text. Its acl is always the public one.
func checkMessage(doc map[string]any) (map[string]any, error) {
	if err := checkText(doc, "name", "title", true, maxTitle); err != nil {
		return nil, err
	}
	if err := checkText(doc, "description", "message", false, maxMessage); err != nil {
		return nil, err
	}
	doc["acl"] = aclValue(publicACL())
	return doc, nil
}

// checkText refuses an attribute that is not text, empty when required, or
// too long.
func checkText(doc map[string]any, attr, what string, required bool, limit int) error {
	v, present := doc[attr]
	s, ok := v.(string)
	switch {
	case present && v != nil && !ok:
		return errs.Errorf(errs.Invalid, "The %s of a service message (%q) must be text.", what, attr)
	case required && strings.TrimSpace(s) == "":
		return errs.Errorf(errs.Invalid, "A service message needs a %s: give it as %q.", what, attr)
	case len(s) > limit:
		return errs.Errorf(errs.Invalid, "The %s of a service message (%q) is %d bytes long; the limit is %d.", what, attr, len(s), limit)
	}
	return nil
}

// checkConfiguration validates the ServiceConfiguration id: its "service"
// (and "instance") must name it, its settings (every other top-level
// attribute, as platform/config reads them) fit in maxConfig bytes, and
// authn's need the local database settings. Its acl is always the
// administrators' only.
func checkConfiguration(id string, doc map[string]any) (map[string]any, error) {
	service, ok := doc["service"].(string)
	if !ok || service == "" {
		return nil, errs.Errorf(errs.Invalid, "A service configuration needs the attribute \"service\": the name of the service it configures, e.g. \"pdisk\".")
	}
	instance, ok := doc["instance"].(string)
	if _, present := doc["instance"]; present && (!ok || instance == "") {
		return nil, errs.Errorf(errs.Invalid, "The \"instance\" of a service configuration must be a non-empty name, or absent.")
	}
	want, err := ConfigurationID(service, instance)
	if err != nil {
		return nil, err
	}
	if want != id {
		return nil, errs.Errorf(errs.Invalid, "The configuration %s names the service %q%s: it belongs in %s. Create that one instead.",
			id, service, instanceText(instance), want)
	}
	if service == subject.Authn {
		if _, ok := doc["localdb"].(map[string]any); !ok {
			return nil, errs.Errorf(errs.Invalid, "The configuration of authn needs \"localdb\", an object with the settings of the local user database (it may be {}).")
		}
	}
	doc["acl"] = aclValue(adminACL())
	if data, err := json.Marshal(doc); err != nil {
		return nil, errs.Errorf(errs.Invalid, "The configuration %s cannot be stored as JSON: %w.", id, err)
	} else if len(data) > maxConfig {
		return nil, errs.Errorf(errs.TooLarge, "The configuration %s is %d bytes long; the limit is %d.", id, len(data), maxConfig)
	}
	return doc, nil
}

func instanceText(instance string) string {
	if instance == "" {
		return ""
	}
	return " and the instance \"" + instance + "\""
}

// ConfigurationID returns the id of a service's configuration document:
// ServiceConfiguration/<service>[-<instance>]. The service name may not hold
// '-', which separates the instance.
func ConfigurationID(service, instance string) (string, error) {
	if !subject.ValidToken(service) || strings.Contains(service, "-") {
		return "", errs.Errorf(errs.Invalid, "%q is not a service name: use letters, digits and '_'.", service)
	}
	id := KindServiceConfiguration + "/" + service
	if instance != "" {
		if !subject.ValidToken(instance) {
			return "", errs.Errorf(errs.Invalid, "%q is not an instance name: use letters, digits, '-' and '_'.", instance)
		}
		id += "-" + instance
	}
	return id, nil
}

// publicACL lets everyone read a document that only administrators change.
func publicACL() cimi.ACL {
	return cimi.ACL{
		Owner: cimi.Owner{Principal: cimi.RoleAdmin, Type: cimi.Role},
		Rules: []cimi.Rule{{Principal: cimi.RoleAnon, Type: cimi.Role, Right: cimi.View}},
	}
}

// adminACL keeps a document for administrators only.
func adminACL() cimi.ACL {
	return cimi.ACL{Owner: cimi.Owner{Principal: cimi.RoleAdmin, Type: cimi.Role}}
}

// aclValue is the JSON form of an ACL inside a decoded document.
func aclValue(acl cimi.ACL) map[string]any {
	rules := make([]any, len(acl.Rules))
	for i, r := range acl.Rules {
		rules[i] = map[string]any{"principal": r.Principal, "type": string(r.Type), "right": string(r.Right)}
	}
	out := map[string]any{"owner": map[string]any{"principal": acl.Owner.Principal, "type": string(acl.Owner.Type)}}
	if len(rules) > 0 {
		out["rules"] = rules
	}
	return out
}
