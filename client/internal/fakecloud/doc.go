// Package fakecloud is a small in-memory HTTP server speaking the CIMI API
// contract the stratus client codes to: entry point, collections with
// paging, create/edit/delete, actions with jobs, login/logout/authn and CIMI
// error documents, and the Marketplace's REST routes (upload, search, read,
// deprecate) with uploads checked by the real metadata and xmlsig
// packages. The client's tests run against it; the end-to-end suite
// runs the same client against the real gateway.
package fakecloud
