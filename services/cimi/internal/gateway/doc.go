// Package gateway is the HTTP side of the CIMI service: it routes the CIMI
// REST API (the CloudEntryPoint, collections, resources, actions, login,
// logout and the caller's authn page) to api.Resources on behalf of the
// caller api.Authenticator found, mounts the web UI, serves vmctl's
// plain-text reports (/load.txt for anyone, /dhcp/hosts for
// administrators) that it asks vmctl for on the bus, offers the
// Marketplace's own REST API (/marketplace/metadata: uploads of signed
// XML, searches, entries by identifier, deprecation) as CIMI requests on
// MachineImage, and turns every
// outcome into the CIMI answer: 201/202 with Location and CIMI-Job-URI for
// writes, the CIMI error body with a stable code for failures, and
// CIMI-Specification-Version on every response. It checks what only HTTP
// knows (methods, content types, body sizes) and leaves every rule about
// resources to the owning services.
package gateway
