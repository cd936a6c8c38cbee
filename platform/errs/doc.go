// Package errs is the one registry of stable error codes. Every failure that
// leaves a service — an HTTP response from the gateway, a CommandFailed event,
// a query reply on the bus — carries one of these codes, so clients and
// scripts can branch on a code that never changes while the human message
// may. Each code maps to one HTTP status at the edge; the table is listed in
// docs/ERRORS.md, and a test keeps the two in step.
package errs
