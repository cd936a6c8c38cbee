// Package webui is the web browser interface of the CIMI gateway: plain
// server-rendered HTML pages under /webui/ that show the CloudEntryPoint,
// each collection with $filter search and paging, each resource with its
// attributes, a JSON editor to add and edit resources, deletion with a
// confirmation step, login, logout and the caller's authentication. It does
// nothing the REST API cannot do: every page is one call to api.Resources or
// to the Sessions on behalf of the browser's session, so the same rules
// (ACL, operations, validation) apply. Pages work without JavaScript; forms
// that change something are POSTs accepted only from this site's own pages.
package webui
