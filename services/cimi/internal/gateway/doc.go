// Package gateway is the HTTP side of the CIMI service: it serves the
// CloudEntryPoint and answers everything it does not route with a CIMI
// error body, every response carrying CIMI-Specification-Version.
package gateway
