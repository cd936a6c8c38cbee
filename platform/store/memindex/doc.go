// Package memindex answers CIMI queries over JSON documents held in memory:
// filter evaluation, ACL visibility, ordering, counting and paging. Each
// document is decoded once when it enters the index, so a query is a scan of
// ready values under a read lock. The embedded store keeps one index per
// collection current from a JetStream KV watch; anything that needs to
// evaluate a $filter against a document can use Match. Queries read
// per-attribute columns of pre-decoded values (interned strings, parsed
// dates) laid out by document slot, so a filtered query over 100,000
// documents takes a few milliseconds.
package memindex
