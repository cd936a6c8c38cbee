// Package ldaptest runs a throwaway OpenLDAP server (Debian's
// /usr/sbin/slapd) for a test: its own configuration and database in a
// temporary directory, listening on a free loopback port, stopped when the
// test ends. Tests that need it are skipped, saying why, where slapd is not
// installed.
package ldaptest
