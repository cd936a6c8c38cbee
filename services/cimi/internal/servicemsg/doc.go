// Package servicemsg holds the gateway's own resources that change through
// commands: ServiceMessage (a notice every visitor reads, written by
// administrators) and ServiceConfiguration (the live settings of every
// service, administrators only). It decides, writes the store and publishes
// the domain events; the bus turns the outcome into the command's terminal
// event.
package servicemsg
