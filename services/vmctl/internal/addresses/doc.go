// Package addresses hands out the network addresses of virtual machines.
// A cloud declares pools of IPv4 addresses, each with the MAC address a
// machine must present to get it from DHCP, in ServiceConfiguration/vmctl:
// the public network (addresses reachable from outside), the local network
// (the site's own) and private networks. A machine leases one address per
// network it joins and gives them all back the moment it is gone: a
// released address may be leased again at once.
//
// Every leased address is one document in the store, created only if
// absent, so two schedulers never lease the same address however many
// replicas run and without any lock shared between them. The leases of a
// machine are found by querying those documents, which makes allocation
// idempotent (a redelivered command gets the lease it already has) and
// release complete.
//
// DNSMasq and ISCDHCPD write the DHCP host entries that make each MAC
// address receive its IP address, gateway, DNS servers and host name.
package addresses
