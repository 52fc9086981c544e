//! The harness behind the broker's fuzz targets (`fuzz_targets/`).
//!
//! A [`sim::Sim`] is a whole broker in memory (its data directory on a tmpfs
//! when there is one), with the management API in front of it called without a
//! socket ([`ringmq::http::InProcess`]) and AMQP clients that are byte buffers:
//! the fuzz input is decoded with `arbitrary` into a script of steps
//! ([`amqp::AmqpOp`], [`http::HttpOp`]), which the harness turns into frames built
//! with the codec and requests built with hyper's types. The harness does each
//! connection's handshake itself, so the fuzzer spends its time past it.
//!
//! | module | what |
//! |---|---|
//! | [`sim`] | the broker, the clients, the io layer's loop, the invariants |
//! | [`values`] | names, argument tables and JSON from fuzz bytes |
//! | [`amqp`] | AMQP steps: methods, publishes, raw bytes, time, restarts |
//! | [`http`] | API requests: any route, method, path, headers and body |
//! | [`mqtt`] | the MQTT session: any bytes after a CONNECT and a SUBSCRIBE, in pieces |

pub mod amqp;
pub mod http;
pub mod mqtt;
pub mod sim;
pub mod values;
