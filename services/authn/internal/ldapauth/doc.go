// Package ldapauth verifies a username and password against an LDAP
// directory laid out as the ServiceConfiguration/authn "ldap" settings say:
// it finds the user's entry with an anonymous search, binds as that entry
// with the password (unless skip-bind? is set), and reads the user's roles
// from the groups whose member attribute holds the entry's DN.
package ldapauth
