// Package sdk is the typed Go client of the StratusLab CIMI API. The stratus
// command and the end-to-end tests use it to discover a cloud's collections,
// log in, read, query, create, edit and delete resources, trigger actions
// and wait for the jobs those start; Client.Marketplace reaches a
// Marketplace's REST API (upload, search, read and deprecate entries). It
// speaks only the public HTTP API, so what works here works with curl too.
package sdk
