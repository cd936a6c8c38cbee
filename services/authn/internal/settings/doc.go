// Package settings is the live configuration of authn, the document
// ServiceConfiguration/authn: which authentication methods are enabled
// (local passwords and certificate DNs, LDAP, VOMS pseudo-users), how LDAP is
// reached and laid out, and two extensions of the original schema: the
// lifetime of session tokens and how often their signing key is replaced.
package settings
