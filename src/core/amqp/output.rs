//! A connection's pending output: encoded frames, with large message bodies left
//! in their segment mapping instead of being copied in.
//!
//! The core appends frames to the byte buffer (it derefs to the `Vec<u8>` the
//! codec's encoders take, and encoders only ever append); a delivery of a body of
//! at least [`ZERO_COPY_BODY_BYTES_MIN`] puts the body frames' 7-byte headers and
//! end octets in the bytes and the payloads in `bodies` as [`SharedBytes`], which
//! point into the segment's mapping. The io layer turns [`Output::pieces`] into one
//! `sendmsg` (io_uring) or `writev` (epoll) of iovecs: bytes, body, bytes, ...
//!
//! Why this is safe to hand to the kernel: a `SharedBytes` holds an `Arc` of its
//! mapping, which keeps the pages mapped, and the store never writes those bytes
//! again nor reuses the file while any mapping of it lives (`store/src/segment.rs`,
//! invariant I5). The io layer keeps the whole `Output` (bytes and bodies) owned by
//! the send in flight until its completion, so deleting a fully acked segment
//! meanwhile only unlinks the file: the pages stay until the last `Arc` drops.

use std::ops::{Deref, DerefMut};

use ringmq_store::SharedBytes;

/// Bodies at least this large are sent from the segment mapping instead of being
/// copied into the output buffer. Below it, the copy is cheaper than an iovec entry
/// and the `Arc` traffic of a shared body.
/// How long a connection sends nothing before its output buffers are freed
/// ([`Output::release_if_empty`]: the core's on a tick, the io layer's spare
/// likewise). Long enough that a connection between bursts keeps its buffers;
/// short against how long idle connections stay idle.
pub const IDLE_RELEASE_MS: u64 = 2_000;

pub const ZERO_COPY_BODY_BYTES_MIN: usize = 16 * 1024;

/// Encoded frames and the bodies sent between them. See the module docs.
#[derive(Default)]
pub struct Output {
    bytes: Vec<u8>,
    /// `(at, body)`: `body` is sent right after `bytes[..at]`; `at` never decreases.
    bodies: Vec<(usize, SharedBytes)>,
    body_bytes: usize,
}

impl Output {
    /// Bytes to send, bodies included.
    pub fn len(&self) -> usize {
        self.bytes.len() + self.body_bytes
    }

    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty() && self.bodies.is_empty()
    }

    /// Appends `body` after the bytes written so far.
    pub fn push_body(&mut self, body: SharedBytes) {
        if body.is_empty() {
            return;
        }
        self.body_bytes += body.len();
        self.bodies.push((self.bytes.len(), body));
    }

    /// Moves everything of `other` to the end of `self`.
    pub fn append(&mut self, other: Output) {
        let base = self.bytes.len();
        self.bytes.extend_from_slice(&other.bytes);
        self.body_bytes += other.body_bytes;
        self.bodies
            .extend(other.bodies.into_iter().map(|(at, body)| (base + at, body)));
    }

    /// Gives the buffers' memory back when nothing is pending: what an idle
    /// connection does, so 10,000 of them do not each keep the ~1 KiB their
    /// handshake grew (connection.start's server properties). The next output
    /// allocates again.
    pub fn release_if_empty(&mut self) {
        if self.is_empty() {
            *self = Output::default();
        }
    }

    /// Empties it, keeping the byte buffer's capacity. Drops the bodies, and so
    /// their hold on the mappings: call only once the kernel is done with them.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.bodies.clear();
        self.body_bytes = 0;
    }

    /// Bodies sent from a mapping (not copied).
    pub fn body_count(&self) -> usize {
        self.bodies.len()
    }

    /// The output in send order: byte runs and bodies, none empty.
    pub fn pieces(&self) -> impl Iterator<Item = &[u8]> {
        let mut at = 0;
        let mut bodies = self.bodies.iter();
        let mut pending: Option<&[u8]> = None;
        std::iter::from_fn(move || loop {
            if let Some(p) = pending.take() {
                return Some(p);
            }
            match bodies.next() {
                Some((next, body)) => {
                    let run = &self.bytes[at..*next];
                    at = *next;
                    pending = Some(body.as_slice());
                    if !run.is_empty() {
                        return Some(run);
                    }
                }
                None => {
                    let run = &self.bytes[at..];
                    at = self.bytes.len();
                    return (!run.is_empty()).then_some(run);
                }
            }
        })
    }

    /// Copies everything, bodies included, to the end of `out` (tests and tools).
    pub fn copy_to(&self, out: &mut Vec<u8>) {
        for p in self.pieces() {
            out.extend_from_slice(p);
        }
    }
}

/// The frame bytes, for the codec's encoders (which only append).
impl Deref for Output {
    type Target = Vec<u8>;
    fn deref(&self) -> &Vec<u8> {
        &self.bytes
    }
}

impl DerefMut for Output {
    fn deref_mut(&mut self) -> &mut Vec<u8> {
        &mut self.bytes
    }
}

impl std::fmt::Debug for Output {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Output")
            .field("bytes", &self.bytes.len())
            .field("bodies", &self.bodies.len())
            .field("body_bytes", &self.body_bytes)
            .finish()
    }
}

/// Appends body frames for `body` split under `frame_max`, each payload sent from
/// the mapping: the framing bytes go in the buffer, the payloads are shared.
pub fn push_body_frames(out: &mut Output, channel: u16, body: &SharedBytes, frame_max: u32) {
    let chunk = ringmq_codec::body_chunk_max(frame_max);
    let mut at = 0;
    while at < body.len() {
        let len = chunk.min(body.len() - at);
        out.extend_from_slice(&ringmq_codec::body_frame_header(channel, len));
        out.push_body(body.slice(at, len));
        out.push(ringmq_codec::FRAME_END);
        at += len;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_interleave_bytes_and_bodies_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let (mut q, _) = ringmq_store::QueueStore::open(dir.path(), Default::default()).unwrap();
        let body = vec![7u8; 40_000];
        let pos = q
            .append(ringmq_store::MessageRef {
                timestamp_ms: 0,
                exchange: b"",
                routing_key: b"k",
                properties: b"",
                body: &body,
            })
            .unwrap();
        let (_, shared) = q.read_shared(pos).unwrap();
        let mut out = Output::default();
        out.extend_from_slice(b"head");
        push_body_frames(&mut out, 1, &shared, 16_384);
        out.push_body(shared.slice(0, 3));
        out.extend_from_slice(b"tail");
        assert_eq!(out.body_count(), 4);
        assert_eq!(out.len(), 4 + 3 * 8 + 40_000 + 3 + 4);
        let mut flat = Vec::new();
        out.copy_to(&mut flat);
        let mut want = b"head".to_vec();
        let mut frames = Vec::new();
        for c in body.chunks(16_384 - 8) {
            frames.extend_from_slice(&ringmq_codec::body_frame_header(1, c.len()));
            frames.extend_from_slice(c);
            frames.push(ringmq_codec::FRAME_END);
        }
        want.extend_from_slice(&frames);
        want.extend_from_slice(&[7, 7, 7]);
        want.extend_from_slice(b"tail");
        assert_eq!(flat, want);
        // The body outlives the store's own mapping and the file.
        drop(q);
        drop(dir);
        let mut again = Vec::new();
        out.copy_to(&mut again);
        assert_eq!(again, want);
        let mut other = Output::default();
        other.extend_from_slice(b"x");
        other.append(out);
        assert_eq!(other.len(), 1 + want.len());
        other.clear();
        assert!(other.is_empty() && other.pieces().next().is_none());
    }

    #[test]
    fn a_delivery_from_the_mapping_is_the_same_bytes_as_a_copied_one() {
        let dir = tempfile::tempdir().unwrap();
        let (mut q, _) = ringmq_store::QueueStore::open(dir.path(), Default::default()).unwrap();
        let body: Vec<u8> = (0..100_000u32).map(|i| i as u8).collect();
        let pos = q
            .append(ringmq_store::MessageRef {
                timestamp_ms: 0,
                exchange: b"x",
                routing_key: b"rk",
                properties: b"\x00\x00",
                body: &body,
            })
            .unwrap();
        let (view, shared) = q.read_shared(pos).unwrap();
        for frame_max in [4096, 65_536, 131_072, 0] {
            let mut copied = Vec::new();
            ringmq_codec::encode_deliver(
                &mut copied,
                3,
                ringmq_codec::short!("ctag"),
                9,
                true,
                ringmq_codec::ShortStr::from_bytes(view.exchange).unwrap(),
                ringmq_codec::ShortStr::from_bytes(view.routing_key).unwrap(),
                view.properties,
                view.body,
                frame_max,
            );
            let mut out = Output::default();
            ringmq_codec::encode_deliver_head(
                &mut out,
                3,
                ringmq_codec::short!("ctag"),
                9,
                true,
                ringmq_codec::ShortStr::from_bytes(view.exchange).unwrap(),
                ringmq_codec::ShortStr::from_bytes(view.routing_key).unwrap(),
                view.properties,
                shared.len() as u64,
            );
            push_body_frames(&mut out, 3, &shared, frame_max);
            let mut flat = Vec::new();
            out.copy_to(&mut flat);
            assert_eq!(flat, copied, "frame_max {frame_max}");
        }
    }
}
