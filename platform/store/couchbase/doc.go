// Package couchbase is the production document store on Couchbase Server
// (7.1 or later): bucket "stratuslab" by default, one scope per service
// and one collection per document kind, both created when first used, with
// a primary index and secondary indexes on the ACL owner and rules,
// created, updated and state. Reads and writes are key-value operations and
// a document's revision is its CAS, so Put and Delete are compare-and-set.
// Queries are SQL++ compiled from the parsed CIMI query by Compile, with
// every value bound as a named parameter, run at request_plus consistency
// so that a query sees every write that returned before it.
//
// Couchbase offers no change feed through gocb (DCP is not exposed), so
// Watch rides on NATS instead: after each successful write the adapter
// publishes a small notice (operation, id, revision, and the body when it
// fits in a NATS message) on store.<service>.<kind>, and Watch subscribes
// to that subject. Notices are core NATS messages: a watcher sees the
// writes made through this adapter by any process on the same NATS
// system, not writes made to the bucket by other means, and a watcher that
// falls far behind or a process that dies between its write and its notice
// can miss a change. Watch delivers changes of a document in revision
// order, dropping a notice older than one already delivered.
package couchbase
