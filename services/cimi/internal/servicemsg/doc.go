// Package servicemsg describes the cloud's own writable CIMI resources,
// served by the gateway through platform/resource: ServiceMessage (a
// notice every visitor reads, written by administrators) and
// ServiceConfiguration (the live settings of every service, administrators
// only). It holds their rules, what a valid document is and who may see
// it; the provider does the rest.
package servicemsg
