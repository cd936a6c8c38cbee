// Package fakecloud is a small in-memory HTTP server speaking the CIMI API
// contract the stratus client codes to: entry point, collections with
// paging, create/edit/delete, actions with jobs, login/logout/authn and CIMI
// error documents. The client's tests run against it; the end-to-end suite
// runs the same client against the real gateway.
package fakecloud
