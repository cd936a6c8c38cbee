// Package bus carries every message between StratusLab services over NATS
// JetStream: it starts the embedded server or connects to a cluster, declares
// the COMMANDS (work queue) and EVENTS (bounded log) streams, sends commands
// and publishes events with the Stratus headers (command id, job, actor, W3C
// trace context), runs the durable command consumers that turn every command
// into exactly one terminal event (…_completed or …_failed), follows events,
// and serves and calls queries through the NATS micro framework on
// svc.<service>.<op>. It is the only package that knows the message layout
// on the wire; services see protobuf messages, contexts and errors.
//
// Stopping: a consumer told to stop takes no more messages and gives its
// handlers in flight StopGrace (10 s by default) to finish; then their
// context is cancelled, and what they left undone is delivered again, to
// another replica or after the restart, whatever error the handler made of
// it. Every handler must therefore be safe to run again from any point,
// which the crash tests check anyway. A query that meets no responders is
// asked again twice over half a second, so that a service starting or
// restarting answers rather than a 503.
package bus
