// Package hosts is vmctl's registry of VM hosts: one Host document per host
// in the store, written by the host's agent (its facts at start, its load
// at every heartbeat) and by the schedulers, which reserve a share of a
// host's CPUs and memory for each machine they place there.
//
// Reservations live in the host's own document, keyed by machine, and every
// change is a revision-checked write, so any number of scheduler replicas
// can place machines at once without a lock service and without ever
// promising a host more than its capacity times the configured over-commit
// ratio; keying by machine makes placing and releasing a machine twice
// harmless. Within one process, the changes to a host are queued and
// written in batches by one goroutine, so that a busy host takes many
// placements per round trip to the store and replicas contend only with
// each other, not with their own goroutines.
//
// Placement spreads: a machine goes to one of the few least loaded hosts
// that can take it, chosen at random among them. Spreading keeps the load
// (and the damage a failing host does) even, which suits a small private
// cloud better than packing, and the random choice keeps concurrent
// placements from all aiming at the same document.
//
// A host in maintenance takes no new machines and keeps the ones it runs.
// A host whose agent stops sending heartbeats is marked UNAVAILABLE by
// Expire, which the scheduler calls periodically and then shows the
// machines of the hosts it returns as Unknown. Host documents are owned by
// ::ADMIN, so CIMI shows them to administrators only.
package hosts
