package subject

// Resource tokens.
const (
	ResourceVolume         = "volume"
	ResourceMachine        = "machine"
	ResourceMachineConfig  = "machine_config"
	ResourceHost           = hostResource
	ResourceHosts          = "hosts" // the scheduler's host registry
	ResourceDomain         = "domain"
	ResourceServiceMessage = "service_message"
)

// pdisk volume commands (stratus.volume.v1).
const (
	CmdVolumeCreate   = "cmd.pdisk.volume.create"    // CreateVolume
	CmdVolumeUpdate   = "cmd.pdisk.volume.update"    // UpdateVolume
	CmdVolumeDelete   = "cmd.pdisk.volume.delete"    // DeleteVolume
	CmdVolumeAttach   = "cmd.pdisk.volume.attach"    // AttachVolume
	CmdVolumeDetach   = "cmd.pdisk.volume.detach"    // DetachVolume
	CmdVolumeGetImage = "cmd.pdisk.volume.get_image" // GetImageVolume
	CmdVolumeCapture  = "cmd.pdisk.volume.capture"   // CaptureVolume
	CmdVolumeRelease  = "cmd.pdisk.volume.release"   // ReleaseVolume
)

// pdisk volume events (stratus.volume.v1).
const (
	// Every change of a Volume document is a cimi ResourceChanged on
	// evt.pdisk.volume.created|updated|deleted (platform/resource). The
	// usage events below carry size and owner for billing, one per
	// lifetime step, on their own resource token.
	EvtVolumeCreated  = "evt.pdisk.volume_usage.created"  // VolumeCreated
	EvtVolumeDeleted  = "evt.pdisk.volume_usage.deleted"  // VolumeDeleted
	EvtVolumeAttached = "evt.pdisk.volume_usage.attached" // VolumeAttached
	EvtVolumeDetached = "evt.pdisk.volume_usage.detached" // VolumeDetached
)

// pdisk queries (stratus.volume.v1).
const (
	SvcGetVolume    = "svc.pdisk.get_volume"    // GetVolumeRequest
	SvcQueryVolumes = "svc.pdisk.query_volumes" // QueryVolumesRequest
)

// vmctl scheduler commands (stratus.machine.v1).
const (
	CmdMachineCreate       = "cmd.vmctl.machine.create"        // CreateMachine
	CmdMachineStart        = "cmd.vmctl.machine.start"         // StartMachine
	CmdMachineStop         = "cmd.vmctl.machine.stop"          // StopMachine
	CmdMachineRestart      = "cmd.vmctl.machine.restart"       // RestartMachine
	CmdMachineShutdown     = "cmd.vmctl.machine.shutdown"      // ShutdownMachine
	CmdMachineKill         = "cmd.vmctl.machine.kill"          // KillMachine
	CmdMachineAttachVolume = "cmd.vmctl.machine.attach_volume" // AttachVolume
	CmdMachineDetachVolume = "cmd.vmctl.machine.detach_volume" // DetachVolume
	CmdMachineConfigPut    = "cmd.vmctl.machine_config.put"    // PutMachineConfiguration
	CmdMachineConfigDelete = "cmd.vmctl.machine_config.delete" // DeleteMachineConfiguration
	CmdHostsRegister       = "cmd.vmctl.hosts.register"        // RegisterHost
	CmdHostsHeartbeat      = "cmd.vmctl.hosts.heartbeat"       // Heartbeat
	CmdHostsSetMaintenance = "cmd.vmctl.hosts.set_maintenance" // SetHostMaintenance
)

// Verbs of the host-targeted commands a vmctl agent executes; the subject
// is HostCommand(hostID, verb) (stratus.machine.v1, agent.proto).
const (
	VerbDefineDomain   = "define_domain"   // DefineDomain
	VerbStartDomain    = "start_domain"    // StartDomain
	VerbShutdownDomain = "shutdown_domain" // ShutdownDomain
	VerbRebootDomain   = "reboot_domain"   // RebootDomain
	VerbDestroyDomain  = "destroy_domain"  // DestroyDomain
	VerbHotplugDisk    = "hotplug_disk"    // HotplugDisk
	VerbUnplugDisk     = "unplug_disk"     // UnplugDisk
)

// vmctl events (stratus.machine.v1).
const (
	EvtMachineStateChanged = "evt.vmctl.machine.state_changed" // MachineStateChanged
	EvtDomainStateChanged  = "evt.vmctl.domain.state_changed"  // DomainStateChanged
	EvtHostRegistered      = "evt.vmctl.host.registered"       // HostRegistered
	EvtHostHeartbeat       = "evt.vmctl.host.heartbeat"        // HostHeartbeat
	EvtHostUnavailable     = "evt.vmctl.host.unavailable"      // HostUnavailable
)

// vmctl queries (stratus.machine.v1).
const (
	SvcGetMachine          = "svc.vmctl.get_machine"           // GetMachineRequest
	SvcQueryMachines       = "svc.vmctl.query_machines"        // QueryMachinesRequest
	SvcGetMachineConfig    = "svc.vmctl.get_machine_config"    // GetMachineConfigurationRequest
	SvcQueryMachineConfigs = "svc.vmctl.query_machine_configs" // QueryMachineConfigurationsRequest
	SvcGetHost             = "svc.vmctl.get_host"              // GetHostRequest
	SvcQueryHosts          = "svc.vmctl.query_hosts"           // QueryHostsRequest
)

// vmctl's plain-text reports, which the gateway serves as /load.txt and
// /dhcp/hosts. They need no message of their own: requests and answers are
// google.protobuf wrappers. Op* name the endpoints, Svc* their subjects.
const (
	OpLoadTxt    = "load_txt"   // google.protobuf.Empty -> StringValue (the load.txt table)
	OpDHCPHosts  = "dhcp_hosts" // StringValue (the format: "dnsmasq" or "dhcpd") -> StringValue
	SvcLoadTxt   = QueryPrefix + "." + Vmctl + "." + OpLoadTxt
	SvcDHCPHosts = QueryPrefix + "." + Vmctl + "." + OpDHCPHosts
)

// The marketplace's kind and typed messages (stratus.marketplace.v1).
// MachineImage entries are CIMI resources (platform/resource): uploads are
// cimi_create, deprecation the cimi_deprecate action, and every change a
// ResourceChanged on evt.marketplace.machine_image.<created|updated|deleted>.
const (
	ResourceMachineImage = "machine_image"

	CmdMachineImageCreateDraft  = "cmd.marketplace.machine_image.create_draft"  // CreateDraft
	EvtMachineImageDraftCreated = "evt.marketplace.machine_image.draft_created" // DraftCreated

	OpResolveImage  = "resolve"                                              // ResolveRequest -> ResolveResponse
	SvcResolveImage = QueryPrefix + "." + Marketplace + "." + OpResolveImage // svc.marketplace.resolve
)

// The generic CIMI resource protocol (stratus.cimi.v1, resource.proto):
// query operations every owner of CIMI resources serves, the verbs of its
// write commands and the events that follow a write.
const (
	OpCimiGet   = "cimi_get"   // GetResourceRequest -> ResourceDocument
	OpCimiQuery = "cimi_query" // QueryResourcesRequest -> ResourceDocuments

	VerbCimiCreate = "cimi_create" // ResourceCommand
	VerbCimiEdit   = "cimi_edit"   // ResourceCommand
	VerbCimiDelete = "cimi_delete" // ResourceCommand
	// VerbCimiActionPrefix starts the verb of an action, e.g. "cimi_start".
	VerbCimiActionPrefix = "cimi_"

	EventCreated = "created" // ResourceChanged
	EventUpdated = "updated" // ResourceChanged
	EventDeleted = "deleted" // ResourceChanged
)

// Resource tokens of the kinds owned by cimi and authn.
const (
	ResourceUser  = "user"
	ResourceJob   = "job"
	ResourceEvent = "event"
)

// authn queries (stratus.authn.v1).
const (
	SvcAuthnLogin       = "svc.authn.login"       // LoginRequest -> LoginResponse
	SvcAuthnLogout      = "svc.authn.logout"      // LogoutRequest -> LogoutResponse
	SvcAuthnKeys        = "svc.authn.keys"        // KeysRequest -> KeysResponse
	SvcAuthnRevocations = "svc.authn.revocations" // RevocationsRequest -> RevocationsResponse
)

// authn events (stratus.authn.v1).
const (
	EvtAuthnSessionRevoked      = "evt.authn.session.revoked"       // SessionRevoked
	EvtAuthnUserSessionsRevoked = "evt.authn.user.sessions_revoked" // UserSessionsRevoked
	EvtAuthnKeysRotated         = "evt.authn.keys.rotated"          // KeysResponse (the new key set)
)
