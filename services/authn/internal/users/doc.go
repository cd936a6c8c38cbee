// Package users holds the local user records of authn (User/<username>
// documents: bcrypt password, enabled flag, roles, alternative names and any
// extra fields) and the first-start creation of the administrator account.
package users
