// Package bench holds the performance benchmarks of the platform and the
// services, run by `make bench`; results are recorded in docs/PERFORMANCE.md
// with the command that produced them.
package bench
