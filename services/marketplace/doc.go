// Package marketplace is the Appliance Marketplace service: it owns the
// signed metadata entries of images as CIMI MachineImage documents
// (upload with every validation rule, search with computed status,
// deprecation, history), the unsigned drafts of captured images, and the
// resolution of identifiers and image tags for vmctl and the CLI. See
// README.md for what it offers and CONTRACT.md for the rules.
//
// New builds it from the shared dependencies and Run serves until the
// context ends.
package marketplace
