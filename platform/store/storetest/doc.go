// Package storetest is the contract every store adapter passes: one suite
// of tests, run by each adapter's own tests against a real backend, so that
// services behave the same on the embedded store and on Couchbase.
package storetest
