// Package subject names every NATS subject the StratusLab services use, so
// that publishers and subscribers cannot drift apart. Commands travel on
// cmd.<service>.<resource>.<verb> (cmd.vmctl.host.<hostId>.<verb> for one VM
// host), events on evt.<service>.<resource>.<event>, and queries on
// svc.<service>.<op>. The terminal events of a command are its subject with
// "cmd" replaced by "evt" and "_completed" or "_failed" appended; progress
// reports append "_progress". Which protobuf message each subject carries is
// written next to the message in proto/stratus/<area>/v1.
package subject
