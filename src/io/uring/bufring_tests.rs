//! The buffer ring against the kernel: multishot receives on socket pairs.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;

use io_uring::{cqueue, opcode, types, IoUring};

use super::{BufRing, PoolSize, RecvBuf};

const BGID: u16 = 3;

/// A ring with a pool of `count` × `bytes`; `None` where the kernel lacks
/// incremental consumption and `inc` asks for it.
fn setup(count: u16, bytes: usize, inc: bool) -> Option<(IoUring, BufRing)> {
    let ring = IoUring::new(256).expect("io_uring");
    let bufs = BufRing::new(PoolSize { count, bytes }, BGID, inc);
    match bufs.register(&ring.submitter()) {
        Ok(()) => Some((ring, bufs)),
        Err(e) if inc && e.raw_os_error() == Some(libc::EINVAL) => {
            eprintln!("no IOU_PBUF_RING_INC here: skipped");
            None
        }
        Err(e) => panic!("register: {e}"),
    }
}

fn arm(ring: &mut IoUring, sock: &UnixStream, tag: u64) {
    let e = opcode::RecvMulti::new(types::Fd(sock.as_raw_fd()), BGID)
        .build()
        .user_data(tag);
    // SAFETY: the receive writes only into the registered pool, which the
    // test keeps alive (and registered) until the ring is dropped first.
    unsafe { ring.submission().push(&e) }.expect("sq room");
}

/// One completion: (tag, result, piece, more).
type Got = (u64, i32, Option<RecvBuf>, bool);

/// Waits for at least one completion and takes all there are, noting their
/// buffers in reaping order as the driver does.
fn reap(ring: &mut IoUring, bufs: &mut BufRing) -> Vec<Got> {
    ring.submit_and_wait(1).expect("enter");
    let cqes: Vec<_> = ring.completion().collect();
    cqes.into_iter()
        .map(|c| {
            let piece = cqueue::buffer_select(c.flags()).map(|bid| {
                let off = bufs.note(bid, c.result(), c.flags());
                bufs.take(bid, off, c.result().max(0) as usize)
            });
            (c.user_data(), c.result(), piece, cqueue::more(c.flags()))
        })
        .collect()
}

#[test]
fn small_receives_from_many_connections_share_buffers() {
    // 64 connections, 2 buffers: with whole-buffer receives 62 of them would
    // end with ENOBUFS; incremental ones pack 16 bytes each into one buffer.
    let Some((mut ring, mut bufs)) = setup(2, 4096, true) else {
        return;
    };
    let pairs: Vec<_> = (0..64).map(|_| UnixStream::pair().expect("pair")).collect();
    for (i, (ours, _)) in pairs.iter().enumerate() {
        arm(&mut ring, ours, i as u64);
    }
    ring.submit().expect("enter");
    // Six rounds: 6 KiB, so buffer A fills up and goes back to the ring.
    for round in 0..6u8 {
        for (i, (_, theirs)) in pairs.iter().enumerate() {
            let mut theirs = theirs;
            theirs.write_all(&[i as u8 ^ round; 16]).expect("write");
        }
        let mut got = vec![Vec::new(); pairs.len()];
        let mut n = 0;
        for _ in 0..1000 {
            for (tag, res, piece, more) in reap(&mut ring, &mut bufs) {
                assert!(more && res > 0, "connection {tag}: {res}");
                let piece = piece.expect("a buffer");
                got[tag as usize].extend_from_slice(bufs.bytes(&piece));
                n += res as usize;
                bufs.recycle(piece);
            }
            bufs.publish();
            if n == pairs.len() * 16 {
                break;
            }
        }
        for (i, g) in got.iter().enumerate() {
            assert_eq!(g, &[i as u8 ^ round; 16], "connection {i} round {round}");
        }
        // Every piece is back: no buffer is out.
        assert_eq!(bufs.out(), 0);
    }
    drop(ring);
}

/// A receive that runs out of buffers ends with ENOBUFS; armed again once the
/// buffers are back, it goes on where it stopped: no byte lost or repeated.
fn enobufs_rearm_loses_no_byte(inc: bool) {
    let Some((mut ring, mut bufs)) = setup(2, 4096, inc) else {
        return;
    };
    let (ours, mut theirs) = UnixStream::pair().expect("pair");
    let sent: Vec<u8> = (0..20_000u32).map(|i| (i * 7 % 251) as u8).collect();
    theirs.write_all(&sent).expect("write");
    arm(&mut ring, &ours, 1);
    let (mut got, mut held, mut enobufs) = (Vec::new(), Vec::new(), 0);
    for _ in 0..1000 {
        for (_, res, piece, more) in reap(&mut ring, &mut bufs) {
            if let Some(piece) = piece {
                got.extend_from_slice(bufs.bytes(&piece));
                // Held until the receive stops, as input waiting its turn is.
                held.push(piece);
            }
            if more {
                continue;
            }
            assert_eq!(res, -libc::ENOBUFS, "the pool ran out");
            enobufs += 1;
            assert_eq!(bufs.out(), 2);
            assert!(!bufs.half_free());
            for piece in held.drain(..) {
                bufs.recycle(piece);
            }
            assert_eq!(bufs.out(), 0);
            assert!(bufs.half_free());
            bufs.publish();
            arm(&mut ring, &ours, 1);
        }
        if got.len() == sent.len() {
            break;
        }
    }
    assert_eq!(got.len(), sent.len());
    assert!(got == sent, "bytes differ");
    assert!(enobufs >= 2, "{enobufs} ENOBUFS");
    drop(ring);
}

#[test]
fn enobufs_rearm_loses_no_byte_incremental() {
    enobufs_rearm_loses_no_byte(true);
}

#[test]
fn enobufs_rearm_loses_no_byte_whole_buffers() {
    enobufs_rearm_loses_no_byte(false);
}

#[test]
fn a_buffer_returns_only_when_the_kernel_and_every_piece_are_done() {
    let Some((mut ring, mut bufs)) = setup(2, 4096, true) else {
        return;
    };
    let (ours, mut theirs) = UnixStream::pair().expect("pair");
    arm(&mut ring, &ours, 1);
    ring.submit().expect("enter");
    let mut pieces = Vec::new();
    for chunk in [&[1u8; 1000][..], &[2; 1000], &[3; 2096], &[4; 10]] {
        theirs.write_all(chunk).expect("write");
        let got = reap(&mut ring, &mut bufs);
        assert_eq!(got.len(), 1);
        let (_, res, piece, more) = got.into_iter().next().expect("one");
        assert!(more && res == chunk.len() as i32, "{res}");
        let piece = piece.expect("a buffer");
        assert_eq!(bufs.bytes(&piece), chunk);
        pieces.push(piece);
    }
    // The first three filled buffer A exactly; the fourth is in buffer B.
    assert_eq!(bufs.out(), 2);
    let last = pieces.pop().expect("four");
    let first = pieces.remove(0);
    bufs.recycle(first);
    assert_eq!(bufs.out(), 2, "A has pieces out");
    for p in pieces.drain(..) {
        bufs.recycle(p);
    }
    assert_eq!(bufs.out(), 1, "A is back; B is still the kernel's");
    bufs.recycle(last);
    assert_eq!(bufs.out(), 0, "B is the kernel's, still being filled");
    drop(ring);
}
