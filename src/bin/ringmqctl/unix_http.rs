//! HTTP/1.1 over a Unix domain socket (`--socket PATH`, the broker's
//! `--http-unix-path`): one request per connection, `Connection: close`, the
//! reply read to the end. ureq (the TCP client) has no Unix socket transport,
//! and these requests need no more than this.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use crate::error::CtlError;

/// A reply's head (status line and headers) is at most this long.
const HEAD_BYTES_MAX: usize = 64 << 10;

/// One request: method, target (path and query, already encoded), extra
/// headers and an optional body.
pub struct Call<'a> {
    pub method: &'a str,
    pub target: &'a str,
    pub headers: &'a [(&'a str, String)],
    pub body: Option<&'a str>,
}

/// Sends `call` over the socket at `socket`; the reply's status and body
/// (at most `body_max` bytes).
pub fn request(socket: &Path, timeout: Duration, call: &Call<'_>, body_max: u64) -> Result<(u16, Vec<u8>), CtlError> {
    let unavailable =
        |what: String| CtlError::Unavailable(format!("cannot reach the API on {}: {what}", socket.display()));
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nUser-Agent: ringmqctl/{}\r\n",
        call.method,
        call.target,
        env!("CARGO_PKG_VERSION")
    );
    for (name, value) in call.headers {
        if value.contains(['\r', '\n']) || name.contains(['\r', '\n', ':']) {
            return Err(CtlError::Usage(format!("header {name}: line breaks are not allowed")));
        }
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = call.body {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut s = UnixStream::connect(socket).map_err(|e| unavailable(e.to_string()))?;
    s.set_read_timeout(Some(timeout))
        .map_err(|e| unavailable(e.to_string()))?;
    s.set_write_timeout(Some(timeout))
        .map_err(|e| unavailable(e.to_string()))?;
    s.write_all(head.as_bytes())
        .and_then(|()| s.write_all(call.body.unwrap_or_default().as_bytes()))
        .map_err(|e| unavailable(e.to_string()))?;
    let mut reply = Vec::new();
    (&mut s)
        .take(HEAD_BYTES_MAX as u64 + body_max + 1)
        .read_to_end(&mut reply)
        .map_err(|e| unavailable(format!("reading the reply: {e}")))?;
    parse_reply(&reply, body_max)
}

/// Status and body of a whole HTTP/1.1 reply (the server closed after it).
fn parse_reply(reply: &[u8], body_max: u64) -> Result<(u16, Vec<u8>), CtlError> {
    let bad = |what: &str| CtlError::Other(format!("the API's reply is not HTTP/1.1: {what}"));
    let end = reply
        .windows(4)
        .take(HEAD_BYTES_MAX)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of head"))?;
    let head = std::str::from_utf8(&reply[..end]).map_err(|_| bad("head is not text"))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse::<u16>().ok())
        .ok_or_else(|| bad("status line"))?;
    let (mut length, mut chunked) = (None, false);
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            return Err(bad("header line"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-length") {
            length = Some(value.parse::<usize>().map_err(|_| bad("Content-Length"))?);
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.eq_ignore_ascii_case("chunked");
        }
    }
    let rest = &reply[end + 4..];
    let body = if chunked {
        dechunk(rest).ok_or_else(|| bad("chunked body"))?
    } else if let Some(n) = length {
        rest.get(..n)
            .ok_or_else(|| bad("body shorter than its Content-Length"))?
            .to_vec()
    } else {
        rest.to_vec()
    };
    if body.len() as u64 > body_max {
        return Err(CtlError::Other(format!("reply larger than {body_max} bytes")));
    }
    Ok((status, body))
}

/// A chunked body's data; `None` if malformed or cut short.
fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = rest.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&rest[..eol]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        rest = &rest[eol + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size..)?.strip_prefix(b"\r\n")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_by_length_chunks_or_to_the_end() {
        let r = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}";
        assert_eq!(parse_reply(r, 100).unwrap(), (200, b"{}".to_vec()));
        let r = b"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2;x=y\r\nde\r\n0\r\n\r\n";
        assert_eq!(parse_reply(r, 100).unwrap(), (404, b"abcde".to_vec()));
        let r = b"HTTP/1.1 204 No Content\r\n\r\n";
        assert_eq!(parse_reply(r, 100).unwrap(), (204, Vec::new()));
    }

    #[test]
    fn broken_or_oversized_replies_are_errors() {
        for r in [
            &b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nab"[..],
            b"HTTP/1.1 200 OK\r\n",
            b"SSH-2.0-OpenSSH\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        ] {
            assert!(matches!(parse_reply(r, 100), Err(CtlError::Other(_))), "{r:?}");
        }
        let r = b"HTTP/1.1 200 OK\r\n\r\n0123456789";
        assert!(matches!(parse_reply(r, 5), Err(CtlError::Other(_))));
    }
}
