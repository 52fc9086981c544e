//! ringmq-codec: the AMQP 0-9-1 wire codec (with RabbitMQ's extensions).
//!
//! Pure: no I/O, no async, no clock, no `unsafe`. Bytes in, values out, and values
//! in, bytes appended to a caller-owned `Vec<u8>`.
//!
//! | module | what |
//! |---|---|
//! | [`frame`] | frame header, [`decode_frame`]/[`split_frame`], frame encoders, protocol header, the deliver hot path |
//! | [`methods`] | every class and method as a struct (generated from the spec JSON by `gen/methods.py`), and [`Method`] |
//! | [`properties`] | the content header and the 14 basic properties |
//! | [`table`] | field tables and arrays: validated borrowed [`Table`], owned [`FieldTable`] |
//! | [`short`] | [`ShortStr`]/[`ShortString`]: short strings (names, keys, tags), checked to 255 bytes where they are made |
//! | [`wire`] | integer and string primitives, [`wire::Reader`] |
//! | [`error`] | [`DecodeError`] (`Incomplete` vs `Malformed`) and [`ReplyCode`] |
//!
//! Decoding never allocates: a basic.publish, its content header and body decode to
//! borrowed slices of the receive buffer. Every length is checked against the bytes
//! present and the negotiated frame_max before it is trusted, and tables may nest
//! at most [`table::TABLE_DEPTH_MAX`] deep, so no input can make the decoder panic,
//! recurse without bound or allocate.
#![forbid(unsafe_code)]

pub mod error;
pub mod frame;
pub mod methods;
pub mod properties;
pub mod short;
pub mod table;
pub mod wire;

#[cfg(test)]
mod spec_check;

pub use error::{DecodeError, ProtocolError, ReplyCode};
pub use frame::{
    body_chunk_max, body_frame_header, check_protocol_header, decode_frame, encode_content, encode_deliver,
    encode_deliver_head, encode_heartbeat, encode_method, split_frame, Frame, RawFrame, FRAME_END, FRAME_MIN_SIZE,
    PROTOCOL_HEADER,
};
pub use methods::*;
pub use properties::{BasicProperties, ContentHeader};
pub use short::{ShortBuf, ShortStr, ShortString, TooLong, SHORTSTR_BYTES_MAX};
pub use table::{Array, FieldTable, FieldValue, FieldValueRef, Table};
