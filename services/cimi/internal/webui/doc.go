// Package webui is the web browser interface of the CIMI gateway: plain
// server-rendered HTML pages under /webui/ that show the CloudEntryPoint,
// each collection with $filter search, ordering and paging, each resource
// with its attributes, a JSON editor to add and edit resources, deletion
// with a confirmation step, login, logout and the caller's authentication.
// Kinds listed in kindViews (views.go) get pages of their own on top: their
// columns, quick filters that build the $filter, a create form and an edit
// form of a few attributes, and buttons or small forms for their actions.
// Volume shows the guide's persistent disks with where each is mounted;
// Machine (machines.go) runs machines with the options of
// stratus-run-instance, and stops, starts, restarts, shuts down and kills
// them, attaching and detaching volumes (a Done machine, kept only to be
// read, offers none of that); MachineImage (marketplace.go) is the
// Marketplace's catalogue, searched by endorser, system, tag and status,
// with an upload form for signed entries, each entry's page linking to its
// XML and JSON and to running a machine from it, and a form deprecating it. It does nothing the REST API
// cannot do: every page is one call to api.Resources or to the Sessions on
// behalf of the browser's session, so the same rules (ACL, operations,
// validation) apply. Pages work without JavaScript; forms that change
// something are POSTs accepted only from this site's own pages.
package webui
