// Package embedded is the default document store: JetStream key-value
// buckets on the NATS server that also carries the bus, so a site needs no
// other database. Each collection is one bucket (store_<service>_<kind>,
// file storage, history 1, replicas as configured), each document one key
// whose revision is the KV revision, so every write is a compare-and-set.
// Queries are answered from an in-memory index (memindex) that is loaded
// when the collection is opened and kept current by a KV watch; the adapter
// also applies its own successful writes to the index at once, so a query
// made after a write returns sees it. Get answers from the index too, and
// from the bucket on a miss or when the store is opened WithStrictReads; a
// failed revision check refreshes the index entry from the bucket, so that
// a writer that read a stale copy sees the current one when it retries.
//
// Watch is a KV watch of new changes. Because a bucket keeps one revision
// per key, a watcher that lags may see only the latest of several quick
// changes to one document; it always sees the latest.
//
// KV keys allow only [-/_=.a-zA-Z0-9], so ids are encoded reversibly:
// letters, digits, '-', '/' and '=' stand for themselves and every other
// byte is written as '_' and two upper-case hex digits ("User/alice@x.org"
// is the key "User/alice_40x_2Eorg").
package embedded
