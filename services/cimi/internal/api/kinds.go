package api

import (
	"stratuslab.dev/platform/cimi"
	"stratuslab.dev/proto/subject"
)

// DefaultKinds is the table of the kinds this cloud serves, in
// CloudEntryPoint order. A service that comes to own a kind (pdisk's
// Volume, vmctl's Machine, marketplace's MachineImage) adds one line here.
func DefaultKinds() []Kind {
	return []Kind{
		{Name: "ServiceMessage", Attr: "serviceMessages", Service: subject.Cimi, AddRole: cimi.RoleAdmin},
		{Name: "ServiceConfiguration", Attr: "serviceConfigurations", Service: subject.Cimi, AddRole: cimi.RoleAdmin,
			NameAttrs: []string{"service", "instance"}},
		{Name: "User", Attr: "users", Service: subject.Authn, AddRole: cimi.RoleAdmin, NameAttrs: []string{"username"}},
		{Name: "Volume", Attr: "volumes", Service: subject.Pdisk, AddRole: cimi.RoleUser},
		{Name: "Machine", Attr: "machines", Service: subject.Vmctl, AddRole: cimi.RoleUser,
			Actions: []string{"stop", "start", "restart", "shutdown", "attach_volume", "detach_volume"}},
		{Name: "MachineConfiguration", Attr: "machineConfigs", Service: subject.Vmctl, AddRole: cimi.RoleAdmin, NameAttrs: []string{"name"}},
		{Name: "MachineImage", Attr: "machineImages", Service: subject.Marketplace, AddRole: cimi.RoleUser, Actions: []string{"deprecate"}},
		{Name: "Host", Attr: "hosts", Service: subject.Vmctl, Described: true, Actions: []string{"maintenance", "enable"}},
		{Name: "Job", Attr: "jobs", Service: subject.Cimi, ReadOnly: true},
		{Name: "Event", Attr: "events", Service: subject.Cimi, ReadOnly: true},
	}
}
