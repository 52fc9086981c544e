//! The PROXY protocol header, versions 1 and 2 (HAProxy's `proxy-protocol.txt`):
//! what a load balancer in front of the broker sends before the client's first
//! byte, naming the client it accepted the connection from.
//!
//! Sans-IO: [`parse`] looks at the bytes read so far and says "need more",
//! "complete, this long", or why they are not a header; the reader in
//! `super` owns the socket, the buffer and the clock.
//!
//! - v1 is one text line, `PROXY TCP4 <src> <dst> <sport> <dport>\r\n` (or
//!   `TCP6`, or `UNKNOWN` and anything up to the CRLF), 107 bytes at most.
//! - v2 is binary: a 12-byte signature, version and command, address family
//!   and protocol, a 16-bit length, the addresses, then TLVs.
//!
//! A header that names no client (v2 `LOCAL`, the proxy's own health check;
//! v1 `UNKNOWN`; v2 families without IP addresses) is [`Header::Local`]: the
//! spec says the receiver then uses the connection's own endpoints.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The v1 line's longest form, CRLF included (spec §2.1).
pub(crate) const V1_BYTES_MAX: usize = 107;
/// v1's first six bytes.
const V1_PREFIX: &[u8; 6] = b"PROXY ";
/// v2's signature (spec §2.2).
pub(crate) const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// Signature, version and command, family and protocol, length.
const V2_FIXED_BYTES: usize = 16;
/// The largest v2 header taken, addresses and TLVs included. The format allows
/// 64 KiB; what proxies send is far less (haproxy's addresses are 36 bytes at
/// most, its TLVs — ALPN, authority, unique id, TLS facts with a client
/// certificate's CN — a few hundred; AWS's NLB adds a VPC endpoint id), and
/// every connection's header is held whole before the connection counts.
pub(crate) const V2_BYTES_MAX: usize = 4096;
/// The most a reader holds before [`parse`] has an answer other than
/// [`Parsed::Incomplete`].
pub(crate) const HEADER_BYTES_MAX: usize = V2_BYTES_MAX;

/// PP2_TYPE_CRC32C: a checksum of the whole header (spec §2.2.5).
const TLV_CRC32C: u8 = 0x03;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Version {
    V1,
    V2,
}

/// What a complete header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Header {
    /// A proxied TCP connection: the client (`source`) and the address it
    /// reached on the proxy (`destination`).
    Proxied {
        version: Version,
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// No client named: the connection's own endpoints stand.
    Local { version: Version },
}

/// What the bytes so far amount to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// A header may still come: read more (at most [`HEADER_BYTES_MAX`] in all).
    Incomplete,
    /// A header of `len` bytes; what follows is the client's.
    Complete { header: Header, len: usize },
}

/// Why the bytes are not a PROXY header.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HeaderError {
    /// Neither signature: a client that connected directly, not through the
    /// proxy, most likely (an AMQP client's first bytes are `AMQP`).
    #[error("no PROXY protocol header: the connection starts with {0:?}")]
    NotProxy(String),
    #[error("PROXY v1 header without a CRLF in its first {V1_BYTES_MAX} bytes")]
    V1TooLong,
    #[error("PROXY v1 header malformed: {0}")]
    V1Malformed(&'static str),
    #[error("PROXY v2 header of version {0} (only 2 exists)")]
    V2Version(u8),
    #[error("PROXY v2 header with command {0:#x} (0 is LOCAL, 1 is PROXY)")]
    V2Command(u8),
    #[error("PROXY v2 header with address family and protocol {0:#04x}")]
    V2Family(u8),
    #[error("PROXY v2 header names a UDP client ({0:#04x}) on a stream")]
    V2Datagram(u8),
    #[error("PROXY v2 header of {0} bytes, above the limit of {V2_BYTES_MAX}")]
    V2TooLong(usize),
    #[error("PROXY v2 header with {got} bytes of addresses, where its family needs {need}")]
    V2ShortAddresses { got: usize, need: usize },
    #[error("PROXY v2 header whose TLVs do not fit its length")]
    V2Tlv,
    #[error("PROXY v2 header whose CRC32C does not match")]
    V2Checksum,
}

/// Looks at the first bytes of a connection. Never reads past `buf`, never
/// panics, on any input.
pub(crate) fn parse(buf: &[u8]) -> Result<Parsed, HeaderError> {
    let n = buf.len().min(V2_SIGNATURE.len());
    if n > 0 && buf[..n] == V2_SIGNATURE[..n] {
        if buf.len() < V2_FIXED_BYTES {
            return Ok(Parsed::Incomplete);
        }
        return parse_v2(buf);
    }
    let n = buf.len().min(V1_PREFIX.len());
    if buf[..n] == V1_PREFIX[..n] {
        if buf.len() < V1_PREFIX.len() {
            return Ok(Parsed::Incomplete);
        }
        return parse_v1(buf);
    }
    Err(HeaderError::NotProxy(
        buf.iter().take(8).copied().map(char::from).collect(),
    ))
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, HeaderError> {
    use HeaderError::V1Malformed as Bad;
    let window = &buf[..buf.len().min(V1_BYTES_MAX)];
    let Some(lf) = window.iter().position(|&b| b == b'\n') else {
        return if buf.len() >= V1_BYTES_MAX {
            Err(HeaderError::V1TooLong)
        } else {
            Ok(Parsed::Incomplete)
        };
    };
    // lf >= 6: the prefix has no LF.
    if window[lf - 1] != b'\r' {
        return Err(Bad("LF without CR"));
    }
    let line = std::str::from_utf8(&window[..lf - 1]).map_err(|_| Bad("not ASCII"))?;
    if !line.is_ascii() {
        return Err(Bad("not ASCII"));
    }
    let len = lf + 1;
    let mut fields = line.split(' ').skip(1);
    let v6 = match fields.next() {
        // "the receiver must ignore anything presented before the CRLF"
        Some("UNKNOWN") => {
            return Ok(Parsed::Complete {
                header: Header::Local { version: Version::V1 },
                len,
            })
        }
        Some("TCP4") => false,
        Some("TCP6") => true,
        _ => return Err(Bad("protocol is not TCP4, TCP6 or UNKNOWN")),
    };
    let mut next = || fields.next().ok_or(Bad("too few fields"));
    let (src, dst) = (ip(next()?, v6)?, ip(next()?, v6)?);
    let (sport, dport) = (port(next()?)?, port(next()?)?);
    if fields.next().is_some() {
        return Err(Bad("too many fields"));
    }
    Ok(Parsed::Complete {
        header: Header::Proxied {
            version: Version::V1,
            source: SocketAddr::new(src, sport),
            destination: SocketAddr::new(dst, dport),
        },
        len,
    })
}

fn ip(s: &str, v6: bool) -> Result<IpAddr, HeaderError> {
    if v6 {
        s.parse::<Ipv6Addr>()
            .map(IpAddr::V6)
            .map_err(|_| HeaderError::V1Malformed("bad TCP6 address"))
    } else {
        s.parse::<Ipv4Addr>()
            .map(IpAddr::V4)
            .map_err(|_| HeaderError::V1Malformed("bad TCP4 address"))
    }
}

fn port(s: &str) -> Result<u16, HeaderError> {
    let digits = !s.is_empty() && s.len() <= 5 && s.bytes().all(|b| b.is_ascii_digit());
    (digits.then(|| s.parse::<u16>().ok()).flatten()).ok_or(HeaderError::V1Malformed("bad port"))
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, HeaderError> {
    let version_command = buf[12];
    if version_command >> 4 != 2 {
        return Err(HeaderError::V2Version(version_command >> 4));
    }
    let command = version_command & 0x0f;
    if command > 1 {
        return Err(HeaderError::V2Command(command));
    }
    let family = buf[13];
    // Checked before waiting for the rest, so that a bad header is refused at
    // once. LOCAL: "the receiver must accept this connection as valid and must
    // use the real connection endpoints and discard the protocol block
    // including the family".
    let need = match (command, family) {
        (0, _) => 0,
        (_, 0x11) => 12,
        (_, 0x21) => 36,
        (_, 0x31 | 0x32) => 216,
        // UNSPEC: "the receiver ... must use the real endpoints".
        (_, 0x00) => 0,
        (_, 0x12 | 0x22) => return Err(HeaderError::V2Datagram(family)),
        (_, f) => return Err(HeaderError::V2Family(f)),
    };
    let len = V2_FIXED_BYTES + usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if len > V2_BYTES_MAX {
        return Err(HeaderError::V2TooLong(len));
    }
    if len < V2_FIXED_BYTES + need {
        return Err(HeaderError::V2ShortAddresses {
            got: len - V2_FIXED_BYTES,
            need,
        });
    }
    if buf.len() < len {
        return Ok(Parsed::Incomplete);
    }
    let header = &buf[..len];
    let block = &header[V2_FIXED_BYTES..];
    let local = Parsed::Complete {
        header: Header::Local { version: Version::V2 },
        len,
    };
    if command == 0 {
        return Ok(local);
    }
    check_tlvs(header, V2_FIXED_BYTES + need)?;
    let be16 = |at: usize| u16::from_be_bytes([block[at], block[at + 1]]);
    let (source, destination) = match family {
        0x11 => {
            let ip = |at: usize| IpAddr::V4(Ipv4Addr::new(block[at], block[at + 1], block[at + 2], block[at + 3]));
            (SocketAddr::new(ip(0), be16(8)), SocketAddr::new(ip(4), be16(10)))
        }
        0x21 => {
            let ip = |at: usize| {
                let mut octets = [0u8; 16];
                octets.copy_from_slice(&block[at..at + 16]);
                IpAddr::V6(Ipv6Addr::from(octets))
            };
            (SocketAddr::new(ip(0), be16(32)), SocketAddr::new(ip(16), be16(34)))
        }
        // AF_UNIX (a proxy that took the client on a Unix socket) and UNSPEC
        // name no IP client: the spec lets the receiver use the real endpoints.
        _ => return Ok(local),
    };
    Ok(Parsed::Complete {
        header: Header::Proxied {
            version: Version::V2,
            source,
            destination,
        },
        len,
    })
}

/// The TLVs from `at` to the end of `header` must each fit; values are not
/// used (the spec: "unknown types must be ignored"), except a CRC32C, which is
/// checked, as the spec asks of a receiver that gets one.
fn check_tlvs(header: &[u8], mut at: usize) -> Result<(), HeaderError> {
    while at < header.len() {
        let rest = &header[at..];
        if rest.len() < 3 {
            return Err(HeaderError::V2Tlv);
        }
        let value_len = usize::from(u16::from_be_bytes([rest[1], rest[2]]));
        if rest.len() < 3 + value_len {
            return Err(HeaderError::V2Tlv);
        }
        if rest[0] == TLV_CRC32C {
            if value_len != 4 {
                return Err(HeaderError::V2Tlv);
            }
            let value = at + 3;
            let want = u32::from_be_bytes([header[value], header[value + 1], header[value + 2], header[value + 3]]);
            let crc = crc32c::crc32c_append(crc32c::crc32c(&header[..value]), &[0; 4]);
            if crc32c::crc32c_append(crc, &header[value + 4..]) != want {
                return Err(HeaderError::V2Checksum);
            }
        }
        at += 3 + value_len;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn complete(buf: &[u8]) -> (Header, usize) {
        match parse(buf) {
            Ok(Parsed::Complete { header, len }) => (header, len),
            other => panic!("{buf:?}: {other:?}"),
        }
    }

    fn proxied(source: &str, destination: &str, version: Version) -> Header {
        Header::Proxied {
            version,
            source: source.parse().unwrap(),
            destination: destination.parse().unwrap(),
        }
    }

    /// A v2 header for `family` with `addresses` and `tlvs` after them.
    fn v2(command: u8, family: u8, addresses: &[u8], tlvs: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(0x20 | command);
        out.push(family);
        out.extend_from_slice(&((addresses.len() + tlvs.len()) as u16).to_be_bytes());
        out.extend_from_slice(addresses);
        out.extend_from_slice(tlvs);
        out
    }

    fn v4_addresses() -> Vec<u8> {
        let mut a = vec![203, 0, 113, 7, 192, 0, 2, 1];
        a.extend_from_slice(&50412u16.to_be_bytes());
        a.extend_from_slice(&5672u16.to_be_bytes());
        a
    }

    #[test]
    fn v1_tcp4_tcp6_and_unknown() {
        let line = b"PROXY TCP4 203.0.113.7 192.0.2.1 50412 5672\r\nAMQP\0\0\x09\x01";
        assert_eq!(
            complete(line),
            (proxied("203.0.113.7:50412", "192.0.2.1:5672", Version::V1), 45)
        );
        let line = b"PROXY TCP6 2001:db8::7 ::1 65535 0\r\n";
        assert_eq!(
            complete(line),
            (proxied("[2001:db8::7]:65535", "[::1]:0", Version::V1), line.len())
        );
        assert_eq!(
            complete(b"PROXY UNKNOWN\r\n"),
            (Header::Local { version: Version::V1 }, 15)
        );
        // Whatever follows UNKNOWN is ignored, as the spec asks.
        let line = b"PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n";
        assert_eq!(complete(line), (Header::Local { version: Version::V1 }, line.len()));
    }

    #[test]
    fn v1_longest_line_fits_and_one_more_byte_does_not() {
        let a = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
        // The spec's worst case: UNKNOWN followed by two full IPv6 addresses.
        let line = format!("PROXY UNKNOWN {a} {a} 65535 65535\r\n");
        assert_eq!(line.len(), V1_BYTES_MAX);
        assert!(matches!(
            parse(line.as_bytes()),
            Ok(Parsed::Complete { len: V1_BYTES_MAX, .. })
        ));
        let long = format!("PROXY UNKNOWN {}\r\n", "x".repeat(V1_BYTES_MAX));
        assert_eq!(parse(long.as_bytes()), Err(HeaderError::V1TooLong));
        // Not yet 107 bytes and no LF: more may come.
        assert_eq!(parse(&long.as_bytes()[..100]), Ok(Parsed::Incomplete));
    }

    #[test]
    fn v1_malformed_lines_are_refused() {
        for bad in [
            &b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"[..],
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
            b"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n",
            b"PROXY TCP4 ::1 ::1 1 2\r\n",
            b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 +1 2\r\n",
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY \r\n",
            b"PROXY TCP4 1.2.3.\xc3\xa9 5.6.7.8 1 2\r\n",
        ] {
            assert!(
                matches!(parse(bad), Err(HeaderError::V1Malformed(_))),
                "{:?}: {:?}",
                String::from_utf8_lossy(bad),
                parse(bad)
            );
        }
    }

    #[test]
    fn v2_tcp4_tcp6_local_unspec_and_unix() {
        let h = v2(1, 0x11, &v4_addresses(), &[]);
        assert_eq!(
            complete(&h),
            (proxied("203.0.113.7:50412", "192.0.2.1:5672", Version::V2), 28)
        );
        let mut a = Vec::new();
        a.extend_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
        a.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
        a.extend_from_slice(&[0xc4, 0xec, 0x16, 0x28]);
        let h = v2(1, 0x21, &a, &[]);
        assert_eq!(
            complete(&h),
            (proxied("[2001:db8::7]:50412", "[::1]:5672", Version::V2), 52)
        );
        // LOCAL: whatever the block holds, the real endpoints stand.
        let h = v2(0, 0x11, &v4_addresses(), &[]);
        assert_eq!(complete(&h), (Header::Local { version: Version::V2 }, 28));
        let h = v2(0, 0x00, &[], &[]);
        assert_eq!(complete(&h), (Header::Local { version: Version::V2 }, 16));
        let h = v2(1, 0x00, &[], &[]);
        assert_eq!(complete(&h).0, Header::Local { version: Version::V2 });
        let h = v2(1, 0x31, &[0; 216], &[]);
        assert_eq!(complete(&h).0, Header::Local { version: Version::V2 });
        // The client's bytes after the header are not the header's.
        let mut h = v2(1, 0x11, &v4_addresses(), &[]);
        h.extend_from_slice(b"AMQP\0\0\x09\x01");
        assert_eq!(complete(&h).1, 28);
    }

    #[test]
    fn v2_tlvs_are_skipped_and_must_fit() {
        // ALPN "amqp" and a NOOP of 3 bytes.
        let tlvs = [1, 0, 4, b'a', b'm', b'q', b'p', 4, 0, 3, 0, 0, 0];
        let h = v2(1, 0x11, &v4_addresses(), &tlvs);
        assert_eq!(complete(&h).1, 28 + tlvs.len());
        for bad in [&[1u8, 0, 5, b'a'][..], &[1, 0], &[4]] {
            assert_eq!(
                parse(&v2(1, 0x11, &v4_addresses(), bad)),
                Err(HeaderError::V2Tlv),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn v2_crc32c_is_checked() {
        let mut h = v2(1, 0x11, &v4_addresses(), &[TLV_CRC32C, 0, 4, 0, 0, 0, 0]);
        let crc = crc32c::crc32c(&h);
        let at = h.len() - 4;
        h[at..].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(parse(&h), Ok(Parsed::Complete { .. })));
        h[0x10] ^= 1; // the source address changed on the way
        assert_eq!(parse(&h), Err(HeaderError::V2Checksum));
    }

    #[test]
    fn v2_bad_fields_are_refused() {
        let mut h = v2(1, 0x11, &v4_addresses(), &[]);
        h[12] = 0x11;
        assert_eq!(parse(&h), Err(HeaderError::V2Version(1)));
        h[12] = 0x22;
        assert_eq!(parse(&h), Err(HeaderError::V2Command(2)));
        assert_eq!(parse(&v2(1, 0x13, &[0; 12], &[])), Err(HeaderError::V2Family(0x13)));
        assert_eq!(parse(&v2(1, 0x12, &[0; 12], &[])), Err(HeaderError::V2Datagram(0x12)));
        assert_eq!(
            parse(&v2(1, 0x21, &[0; 12], &[])),
            Err(HeaderError::V2ShortAddresses { got: 12, need: 36 })
        );
        // Refused from the fixed part alone, without waiting for the rest.
        let fixed = &v2(1, 0x12, &[0; 12], &[])[..16];
        assert_eq!(parse(fixed), Err(HeaderError::V2Datagram(0x12)));
        let fixed = &v2(1, 0x21, &[0; 12], &[])[..16];
        assert_eq!(parse(fixed), Err(HeaderError::V2ShortAddresses { got: 12, need: 36 }));
        let mut big = V2_SIGNATURE.to_vec();
        big.extend_from_slice(&[0x21, 0x11, 0xff, 0xff]);
        assert_eq!(parse(&big), Err(HeaderError::V2TooLong(16 + 0xffff)));
    }

    #[test]
    fn a_direct_client_is_refused_at_its_first_byte() {
        assert!(matches!(parse(b"A"), Err(HeaderError::NotProxy(_))));
        let e = parse(b"AMQP\0\0\x09\x01").unwrap_err();
        assert!(e.to_string().contains("AMQP"), "{e}");
        // A TLS ClientHello (0x16 0x03 ...).
        assert!(matches!(parse(&[0x16, 3, 1, 0, 0xa5]), Err(HeaderError::NotProxy(_))));
        assert!(matches!(parse(b"PROXZ"), Err(HeaderError::NotProxy(_))));
        assert_eq!(parse(b""), Ok(Parsed::Incomplete));
    }

    #[test]
    fn every_prefix_of_a_valid_header_is_incomplete() {
        let mut tlv_header = v2(1, 0x11, &v4_addresses(), &[1, 0, 2, b'h', b'2']);
        tlv_header.extend_from_slice(b"AMQP");
        for whole in [
            &b"PROXY TCP4 203.0.113.7 192.0.2.1 50412 5672\r\n"[..],
            b"PROXY UNKNOWN\r\n",
            &tlv_header,
        ] {
            let (_, len) = complete(whole);
            for cut in 0..len {
                assert_eq!(
                    parse(&whole[..cut]),
                    Ok(Parsed::Incomplete),
                    "cut at {cut} of {whole:?}"
                );
            }
        }
    }

    /// Fuzz-like: random bytes, random mutations and truncations of valid
    /// headers. Nothing may panic; a complete header is never longer than the
    /// input or the limits; an incomplete one is never at the limit.
    #[test]
    fn random_and_damaged_input_never_panics() {
        use rand::{Rng, SeedableRng};
        let seed: u64 = rand::random();
        eprintln!("seed {seed}");
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let valid: Vec<Vec<u8>> = vec![
            b"PROXY TCP4 203.0.113.7 192.0.2.1 50412 5672\r\n".to_vec(),
            b"PROXY TCP6 2001:db8::7 ::1 65535 0\r\n".to_vec(),
            b"PROXY UNKNOWN\r\n".to_vec(),
            v2(1, 0x11, &v4_addresses(), &[1, 0, 4, b'a', b'm', b'q', b'p']),
            v2(1, 0x21, &[7; 36], &[]),
            v2(0, 0x00, &[], &[]),
            v2(1, 0x11, &v4_addresses(), &[TLV_CRC32C, 0, 4, 1, 2, 3, 4]),
        ];
        for round in 0..20_000 {
            let mut buf: Vec<u8> = if round % 4 == 0 {
                let n = rng.random_range(0..300);
                (0..n).map(|_| rng.random()).collect()
            } else {
                valid[rng.random_range(0..valid.len())].clone()
            };
            for _ in 0..rng.random_range(0..4) {
                if buf.is_empty() {
                    break;
                }
                let at = rng.random_range(0..buf.len());
                match rng.random_range(0..4) {
                    0 => buf[at] = rng.random(),
                    1 => buf.truncate(at),
                    2 => buf.insert(at, rng.random()),
                    _ => {
                        let more: Vec<u8> = (0..rng.random_range(0..600)).map(|_| rng.random()).collect();
                        buf.extend_from_slice(&more);
                    }
                }
            }
            match parse(&buf) {
                Ok(Parsed::Complete { len, .. }) => {
                    assert!(len <= buf.len() && len <= HEADER_BYTES_MAX, "seed {seed}: {buf:?}");
                }
                Ok(Parsed::Incomplete) => assert!(buf.len() < HEADER_BYTES_MAX, "seed {seed}: {buf:?}"),
                Err(e) => {
                    let _ = e.to_string();
                }
            }
        }
    }
}
