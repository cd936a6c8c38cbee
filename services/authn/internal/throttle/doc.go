// Package throttle slows down guessing of passwords: it counts failed
// logins per key (a user name, a source address) and, once a key has failed
// too often within a window, refuses further attempts for a delay that
// doubles with each further failure. State is kept in memory, per authn
// replica: a login is one request to one replica, an attacker spread over
// replicas gains at most a factor of the replica count, and keeping it in the
// store would cost a write per failed attempt, which is what an attacker
// produces in bulk. The number of keys tracked is bounded, so a flood of
// made-up names cannot exhaust memory.
package throttle
