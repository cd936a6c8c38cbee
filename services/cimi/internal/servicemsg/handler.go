package servicemsg

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"

	"stratuslab.dev/platform/bus"
	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/platform/errs"
	"stratuslab.dev/platform/store"
	cimiv1 "stratuslab.dev/proto/stratus/cimi/v1"
	commonv1 "stratuslab.dev/proto/stratus/common/v1"
	"stratuslab.dev/proto/subject"
)

// Document kinds, which are also the collections they live in.
const (
	KindServiceMessage       = "ServiceMessage"
	KindServiceConfiguration = "ServiceConfiguration"
)

// Limits on what a person may write.
const (
	maxTitle   = 256
	maxMessage = 64 << 10
	maxConfig  = 256 << 10
)

// Publisher publishes domain events; *bus.Bus satisfies it.
type Publisher interface {
	Publish(ctx context.Context, subject string, event proto.Message, msgID string) error
}

// Handlers execute the gateway's commands against its store.
type Handlers struct {
	messages store.Collection
	configs  store.Collection
	events   Publisher
	now      func() time.Time
}

// New returns the handlers writing to the two collections and publishing
// on events.
func New(messages, configs store.Collection, events Publisher) *Handlers {
	return &Handlers{messages: messages, configs: configs, events: events, now: time.Now}
}

// Message is the stored form of a ServiceMessage.
type Message struct {
	cimi.Common
}

// Configuration is the common part of a stored ServiceConfiguration; the
// rest of the document is the service's settings, at the top level.
type Configuration struct {
	cimi.Common
	Service  string `json:"service"`
	Instance string `json:"instance,omitempty"`
}

// Dispatch runs the command delivered on its subject.
func (h *Handlers) Dispatch(ctx context.Context, cmd *bus.Command) (bus.Result, error) {
	switch cmd.Subject() {
	case subject.CmdServiceMessageCreate:
		var c cimiv1.CreateServiceMessage
		if err := cmd.Decode(&c); err != nil {
			return bus.Result{}, err
		}
		return h.CreateMessage(ctx, &c)
	case subject.CmdServiceMessageUpdate:
		var c cimiv1.UpdateServiceMessage
		if err := cmd.Decode(&c); err != nil {
			return bus.Result{}, err
		}
		return h.UpdateMessage(ctx, &c)
	case subject.CmdServiceMessageDelete:
		var c cimiv1.DeleteServiceMessage
		if err := cmd.Decode(&c); err != nil {
			return bus.Result{}, err
		}
		return h.DeleteMessage(ctx, &c)
	case subject.CmdServiceConfigSet:
		var c cimiv1.SetServiceConfiguration
		if err := cmd.Decode(&c); err != nil {
			return bus.Result{}, err
		}
		return h.SetConfiguration(ctx, &c)
	case subject.CmdServiceConfigDelete:
		var c cimiv1.DeleteServiceConfiguration
		if err := cmd.Decode(&c); err != nil {
			return bus.Result{}, err
		}
		return h.DeleteConfiguration(ctx, &c)
	}
	return bus.Result{}, bus.Permanent(errs.Errorf(errs.Invalid, "The gateway has no command %q.", cmd.Subject()))
}

// requireAdmin refuses commands from anyone but an administrator: the
// gateway checks too, but the owner of the documents never trusts it alone.
func requireAdmin(meta *commonv1.Meta, what string) error {
	id := identity(meta.GetActor())
	if !id.IsAdmin() {
		return bus.Permanent(errs.Errorf(errs.Forbidden, "Only administrators may %s.", what))
	}
	return nil
}

func identity(a *commonv1.Actor) cimi.Identity {
	return cimi.Identity{User: a.GetUser(), Roles: a.GetRoles()}
}

// checkText refuses text that is empty (when required), too long or not UTF-8.
func checkText(field, s string, required bool, limit int) error {
	switch {
	case required && strings.TrimSpace(s) == "":
		return bus.Permanent(errs.Errorf(errs.Invalid, "The %s is required.", field))
	case len(s) > limit:
		return bus.Permanent(errs.Errorf(errs.Invalid, "The %s is longer than %d bytes.", field, limit))
	case !utf8.ValidString(s):
		return bus.Permanent(errs.Errorf(errs.Invalid, "The %s is not valid UTF-8 text.", field))
	}
	return nil
}

// CreateMessage stores a new ServiceMessage under the id the sender chose.
// A redelivered command finds its document already written and only
// republishes the event (de-duplicated by its message id).
func (h *Handlers) CreateMessage(ctx context.Context, c *cimiv1.CreateServiceMessage) (bus.Result, error) {
	if err := requireAdmin(c.GetMeta(), "publish service messages"); err != nil {
		return bus.Result{}, err
	}
	if err := checkUUID(c.GetUuid()); err != nil {
		return bus.Result{}, err
	}
	if err := checkText("title (name)", c.GetName(), true, maxTitle); err != nil {
		return bus.Result{}, err
	}
	if err := checkText("message (description)", c.GetDescription(), false, maxMessage); err != nil {
		return bus.Result{}, err
	}
	id := KindServiceMessage + "/" + c.GetUuid()
	now := h.now().UTC()
	doc := Message{Common: cimi.Common{
		ID:          id,
		ResourceURI: cimi.ResourceURI(KindServiceMessage),
		Name:        c.GetName(),
		Description: c.GetDescription(),
		Created:     now,
		Updated:     now,
		ACL:         publicACL(),
	}}
	body, err := json.Marshal(doc)
	if err != nil {
		return bus.Result{}, fmt.Errorf("encode %s: %w", id, err)
	}
	if _, err := h.messages.Create(ctx, id, body); err != nil && !errors.Is(err, store.ErrExists) {
		return bus.Result{}, fmt.Errorf("create %s: %w", id, err)
	}
	stored, err := h.loadMessage(ctx, id)
	if err != nil {
		return bus.Result{}, err
	}
	evt := &cimiv1.ServiceMessageCreated{Message: stored}
	if err := h.events.Publish(ctx, subject.EvtServiceMessageCreated, evt, c.GetMeta().GetCommandId()+":created"); err != nil {
		return bus.Result{}, err
	}
	return bus.Result{Affected: []string{id}, Message: "service message created"}, nil
}

// UpdateMessage changes the title or the text of a ServiceMessage.
func (h *Handlers) UpdateMessage(ctx context.Context, c *cimiv1.UpdateServiceMessage) (bus.Result, error) {
	if err := requireAdmin(c.GetMeta(), "edit service messages"); err != nil {
		return bus.Result{}, err
	}
	if err := checkUUID(c.GetUuid()); err != nil {
		return bus.Result{}, err
	}
	if c.Name != nil {
		if err := checkText("title (name)", c.GetName(), true, maxTitle); err != nil {
			return bus.Result{}, err
		}
	}
	if c.Description != nil {
		if err := checkText("message (description)", c.GetDescription(), false, maxMessage); err != nil {
			return bus.Result{}, err
		}
	}
	id := KindServiceMessage + "/" + c.GetUuid()
	_, err := h.messages.Update(ctx, id, func(cur store.Document) (json.RawMessage, error) {
		var m Message
		if err := json.Unmarshal(cur.Body, &m); err != nil {
			return nil, fmt.Errorf("decode %s: %w", id, err)
		}
		if c.Name != nil {
			m.Name = c.GetName()
		}
		if c.Description != nil {
			m.Description = c.GetDescription()
		}
		m.Updated = h.now().UTC()
		return json.Marshal(m)
	})
	if err != nil {
		return bus.Result{}, notFound(err, id)
	}
	stored, err := h.loadMessage(ctx, id)
	if err != nil {
		return bus.Result{}, err
	}
	evt := &cimiv1.ServiceMessageUpdated{Message: stored}
	if err := h.events.Publish(ctx, subject.EvtServiceMessageUpdated, evt, c.GetMeta().GetCommandId()+":updated"); err != nil {
		return bus.Result{}, err
	}
	return bus.Result{Affected: []string{id}, Message: "service message updated"}, nil
}

// DeleteMessage removes a ServiceMessage. Deleting one already gone
// succeeds, so that a redelivered command completes.
func (h *Handlers) DeleteMessage(ctx context.Context, c *cimiv1.DeleteServiceMessage) (bus.Result, error) {
	if err := requireAdmin(c.GetMeta(), "delete service messages"); err != nil {
		return bus.Result{}, err
	}
	if err := checkUUID(c.GetUuid()); err != nil {
		return bus.Result{}, err
	}
	id := KindServiceMessage + "/" + c.GetUuid()
	if err := deleteDoc(ctx, h.messages, id); err != nil {
		return bus.Result{}, err
	}
	evt := &cimiv1.ServiceMessageDeleted{Uuid: c.GetUuid(), DeletedAt: timestamppb.New(h.now())}
	if err := h.events.Publish(ctx, subject.EvtServiceMessageDeleted, evt, c.GetMeta().GetCommandId()+":deleted"); err != nil {
		return bus.Result{}, err
	}
	return bus.Result{Affected: []string{id}, Message: "service message deleted"}, nil
}

// SetConfiguration creates or replaces ServiceConfiguration/<service>[-<instance>]
// with the administrator's JSON object: its top-level attributes are the
// service's settings, beside the common CIMI attributes the gateway sets.
func (h *Handlers) SetConfiguration(ctx context.Context, c *cimiv1.SetServiceConfiguration) (bus.Result, error) {
	if err := requireAdmin(c.GetMeta(), "change service configurations"); err != nil {
		return bus.Result{}, err
	}
	id, err := ConfigurationID(c.GetService(), c.GetInstance())
	if err != nil {
		return bus.Result{}, err
	}
	if len(c.GetDocument()) > maxConfig {
		return bus.Result{}, bus.Permanent(errs.Errorf(errs.TooLarge, "The configuration of %s is larger than %d bytes.", id, maxConfig))
	}
	var settings map[string]json.RawMessage
	if err := json.Unmarshal([]byte(c.GetDocument()), &settings); err != nil || settings == nil {
		return bus.Result{}, bus.Permanent(errs.Errorf(errs.Invalid, "The configuration of %s must be a JSON object.", id))
	}
	if raw, ok := settings["service"]; ok {
		var named string
		if json.Unmarshal(raw, &named) != nil || named != c.GetService() {
			return bus.Result{}, bus.Permanent(errs.Errorf(errs.Invalid, "The configuration of %s names the service %s; it must be %q.", id, raw, c.GetService()))
		}
	}
	now := h.now().UTC()
	created := now
	doc, err := h.configs.Update(ctx, id, func(cur store.Document) (json.RawMessage, error) {
		var prev cimi.Common
		if err := json.Unmarshal(cur.Body, &prev); err != nil {
			return nil, fmt.Errorf("decode %s: %w", id, err)
		}
		created = prev.Created
		return configurationBody(id, c, settings, prev.Created, now)
	})
	if errors.Is(err, store.ErrNotFound) {
		created = now
		var body json.RawMessage
		if body, err = configurationBody(id, c, settings, now, now); err == nil {
			var rev uint64
			// A concurrent create makes this fail with ErrExists: a
			// transient error, and the redelivery updates the new document.
			rev, err = h.configs.Create(ctx, id, body)
			doc = store.Document{ID: id, Revision: rev, Body: body}
		}
	}
	if err != nil {
		return bus.Result{}, fmt.Errorf("write %s: %w", id, err)
	}
	evt := &cimiv1.ServiceConfigurationChanged{Configuration: &cimiv1.ServiceConfiguration{
		Service:  c.GetService(),
		Instance: c.GetInstance(),
		Document: string(doc.Body),
		Created:  timestamppb.New(created),
		Updated:  timestamppb.New(now),
	}}
	if err := h.events.Publish(ctx, subject.EvtServiceConfigChanged, evt, c.GetMeta().GetCommandId()+":changed"); err != nil {
		return bus.Result{}, err
	}
	return bus.Result{Affected: []string{id}, Message: "service configuration set"}, nil
}

// configurationBody lays the common attributes over the settings: whatever
// the administrator wrote for id, acl, created... is the gateway's to set.
func configurationBody(id string, c *cimiv1.SetServiceConfiguration, settings map[string]json.RawMessage, created, now time.Time) (json.RawMessage, error) {
	doc := make(map[string]any, len(settings)+8)
	for k, v := range settings {
		doc[k] = v
	}
	delete(doc, "operations")
	doc["id"] = id
	doc["resourceURI"] = cimi.ResourceURI(KindServiceConfiguration)
	doc["created"] = created
	doc["updated"] = now
	doc["acl"] = adminACL()
	doc["service"] = c.GetService()
	if c.GetInstance() != "" {
		doc["instance"] = c.GetInstance()
	}
	return json.Marshal(doc)
}

// DeleteConfiguration removes a ServiceConfiguration document; the service
// goes back to its defaults.
func (h *Handlers) DeleteConfiguration(ctx context.Context, c *cimiv1.DeleteServiceConfiguration) (bus.Result, error) {
	if err := requireAdmin(c.GetMeta(), "delete service configurations"); err != nil {
		return bus.Result{}, err
	}
	id, err := ConfigurationID(c.GetService(), c.GetInstance())
	if err != nil {
		return bus.Result{}, err
	}
	if err := deleteDoc(ctx, h.configs, id); err != nil {
		return bus.Result{}, err
	}
	evt := &cimiv1.ServiceConfigurationDeleted{Service: c.GetService(), Instance: c.GetInstance(), DeletedAt: timestamppb.New(h.now())}
	if err := h.events.Publish(ctx, subject.EvtServiceConfigDeleted, evt, c.GetMeta().GetCommandId()+":deleted"); err != nil {
		return bus.Result{}, err
	}
	return bus.Result{Affected: []string{id}, Message: "service configuration deleted"}, nil
}

// ConfigurationID returns the id of a service's configuration document:
// ServiceConfiguration/<service>[-<instance>].
func ConfigurationID(service, instance string) (string, error) {
	if !subject.ValidToken(service) || strings.Contains(service, "-") {
		return "", bus.Permanent(errs.Errorf(errs.Invalid, "%q is not a service name: use letters, digits and '_'.", service))
	}
	id := KindServiceConfiguration + "/" + service
	if instance != "" {
		if !subject.ValidToken(instance) {
			return "", bus.Permanent(errs.Errorf(errs.Invalid, "%q is not an instance name: use letters, digits, '-' and '_'.", instance))
		}
		id += "-" + instance
	}
	return id, nil
}

func (h *Handlers) loadMessage(ctx context.Context, id string) (*cimiv1.ServiceMessage, error) {
	doc, err := h.messages.Get(ctx, id)
	if err != nil {
		return nil, notFound(err, id)
	}
	var m Message
	if err := json.Unmarshal(doc.Body, &m); err != nil {
		return nil, fmt.Errorf("decode %s: %w", id, err)
	}
	_, uuid, _ := strings.Cut(id, "/")
	return &cimiv1.ServiceMessage{
		Uuid:        uuid,
		Name:        m.Name,
		Description: m.Description,
		Created:     timestamppb.New(m.Created),
		Updated:     timestamppb.New(m.Updated),
	}, nil
}

// deleteDoc removes id whatever its revision; a document already gone is
// not an error.
func deleteDoc(ctx context.Context, coll store.Collection, id string) error {
	for {
		doc, err := coll.Get(ctx, id)
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("read %s: %w", id, err)
		}
		err = coll.Delete(ctx, id, doc.Revision)
		switch {
		case err == nil, errors.Is(err, store.ErrNotFound):
			return nil
		case errors.Is(err, store.ErrConflict):
			continue
		default:
			return fmt.Errorf("delete %s: %w", id, err)
		}
	}
}

func notFound(err error, id string) error {
	if errors.Is(err, store.ErrNotFound) {
		return bus.Permanent(errs.Wrap(errs.NotFound, err, id+" does not exist."))
	}
	return err
}

func checkUUID(s string) error {
	if _, err := uuid.Parse(s); err != nil || len(s) != 36 {
		return bus.Permanent(errs.Errorf(errs.Invalid, "%q is not a valid resource uuid.", s))
	}
	return nil
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
