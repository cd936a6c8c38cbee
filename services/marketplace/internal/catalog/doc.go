// Package catalog is the marketplace's document model: how a Marketplace
// entry becomes the attributes of a CIMI MachineImage document (Image),
// the ids the marketplace derives itself (drafts), the status of an entry
// at a given time and the filter on stored attributes that selects each
// status (so that status queries page and count like any other), and how
// a reference — an identifier, an endorser's tag or a plain tag — picks
// one entry among the candidates. It does no I/O but through the
// store.Collection it wraps.
package catalog
