// Package users holds the local user records of authn (User/<username>
// documents: bcrypt password, enabled flag, roles, alternative names and any
// extra fields), the rules by which they are created, edited and deleted
// through CIMI, their lookup at login, and the first-start creation of the
// administrator account.
//
// A password sent in clear (anything that is not already a bcrypt hash
// starting $2a$, $2b$ or $2y$) is hashed with bcrypt at cost 12 before it is
// stored; reads never return the hash. Only administrators create and
// delete users; a user reads and edits their own record but cannot change
// their username, roles, enabled flag or certificate DN. The last enabled
// administrator cannot be deleted, disabled or demoted. Disabling or
// deleting a user, or changing their password, roles or certificate DN,
// revokes the sessions they have open.
package users
