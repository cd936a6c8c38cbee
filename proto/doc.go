// Package proto is the root of the module holding every message the
// StratusLab services exchange on the bus: the definitions in
// stratus/<area>/v1/*.proto, their generated Go code committed next to them
// (regenerate with generate.sh, i.e. `make proto`; drift_test.go fails when
// they disagree) and package subject, which names the NATS subjects the
// messages travel on. This package itself holds no code.
package proto
