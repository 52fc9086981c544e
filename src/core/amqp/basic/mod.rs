//! basic.*, one file per family: qos, consume and cancel ([`consume`]); publish
//! with content assembly ([`publish`]); get ([`get`]); ack, nack, reject and
//! recover ([`ack`]). Routing and storing is the model's (`model::route`).

pub(in crate::core) mod ack;
pub(in crate::core) mod consume;
pub(in crate::core) mod get;
pub(in crate::core) mod publish;
