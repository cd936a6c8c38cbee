// Package bus carries every message between StratusLab services over NATS
// JetStream: it starts the embedded server or connects to a cluster, declares
// the COMMANDS (work queue) and EVENTS (bounded log) streams, sends commands
// and publishes events with the Stratus headers (command id, job, actor, W3C
// trace context), runs the durable command consumers that turn every command
// into exactly one terminal event (…_completed or …_failed), follows events,
// and serves and calls queries through the NATS micro framework on
// svc.<service>.<op>. It is the only package that knows the message layout
// on the wire; services see protobuf messages, contexts and errors.
package bus
