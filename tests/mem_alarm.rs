//! The memory high watermark (issue 15, defect 15): with a limit below the
//! broker's RSS (a tiny absolute limit set by flag) the memory alarm trips,
//! /api/nodes reports it with its limit, and a client that publishes is told
//! connection.blocked with RabbitMQ's reason "low on memory". (Clearing shares
//! the disk alarm's path, which tests/disk_full.rs drives both ways.)

mod common;

use common::http::Api;
use common::raw::{plain, RawConn};
use common::*;
use ringmq_codec::{
    decode_frame, encode_content, encode_method, BasicPublish, ConnectionStartOk, DecodeError, Frame, Method, Table,
};
use tokio::io::AsyncReadExt;

#[test]
fn a_tiny_memory_limit_blocks_publishers_with_low_on_memory() {
    let b = Broker::with_args(&["--memory-high-watermark", "1MiB"]);
    if b.skip_external("mem_alarm") {
        return;
    }
    let api = Api::new(b.http_url(), b.user(), b.pass());
    run(async {
        eventually("the memory alarm", || async {
            api.ok("/api/nodes")[0]["mem_alarm"].as_bool().unwrap()
        })
        .await;
        let node = &api.ok("/api/nodes")[0];
        assert_eq!(node["mem_limit"], 1 << 20);
        assert_eq!(node["disk_free_alarm"], false);

        let mut c = RawConn::connect(b.addr()).await;
        c.start().await;
        let mut caps = ringmq_codec::FieldTable::new();
        caps.insert(ringmq_codec::short!("connection.blocked"), true);
        let mut props = ringmq_codec::FieldTable::new();
        props.insert(ringmq_codec::short!("capabilities"), caps);
        let props = props.to_bytes();
        let response = plain(b.user(), b.pass());
        let ok = Method::ConnectionStartOk(ConnectionStartOk {
            client_properties: Table::parse(&props).expect("table"),
            mechanism: ringmq_codec::short!("PLAIN"),
            response: &response,
            locale: ringmq_codec::short!("en_US"),
        });
        c.send_method(0, &ok).await;
        c.tune_open().await;
        c.open_channel(1).await;
        let mut out = Vec::new();
        let publish = Method::BasicPublish(BasicPublish {
            ticket: 0,
            exchange: ringmq_codec::short!(""),
            routing_key: ringmq_codec::short!("nowhere"),
            mandatory: false,
            immediate: false,
        });
        encode_method(&mut out, 1, &publish);
        encode_content(&mut out, 1, 60, &[0, 0], b"hello", 131072);
        c.send(&out).await;
        // The next frame is connection.blocked, with RabbitMQ's reason.
        let mut buf = Vec::new();
        let reason = within("connection.blocked", async {
            loop {
                match decode_frame(&buf, 0) {
                    Ok((
                        Frame::Method {
                            method: Method::ConnectionBlocked(m),
                            ..
                        },
                        _,
                    )) => return m.reason.to_string(),
                    Ok((f, used)) => {
                        assert!(
                            matches!(f, Frame::Heartbeat { .. }),
                            "expected connection.blocked, got {f:?}"
                        );
                        buf.drain(..used);
                        continue;
                    }
                    Err(DecodeError::Incomplete(_)) => {}
                    Err(e) => panic!("{e:?}"),
                }
                let mut chunk = [0u8; 4096];
                let n = c.socket().read(&mut chunk).await.expect("read");
                assert!(n > 0, "the broker closed the connection");
                buf.extend_from_slice(&chunk[..n]);
            }
        })
        .await;
        assert_eq!(reason, "low on memory");
    });
}
