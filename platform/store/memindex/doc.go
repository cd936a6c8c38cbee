// Package memindex answers CIMI queries over JSON documents held in memory:
// filter evaluation, ACL visibility, ordering, counting and paging. Each
// document is decoded once when it enters the index, so a query is a scan of
// ready values under a read lock. The embedded store keeps one index per
// collection current from a JetStream KV watch; anything else that needs to
// evaluate a $filter against a document can use Match.
package memindex
