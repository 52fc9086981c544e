//! SASL EXTERNAL over the io contract: offered in connection.start only to a
//! connection whose TLS client certificate the io layer reported, logging in
//! the user its CN names; an unknown name is refused as a wrong password is.

use ringmq_codec::*;

use crate::core::access::auth::CertIdentity;
use crate::core::amqp::broker::Broker;
use crate::core::config::CoreConfig;
use crate::core::model::ids::ConnId;

fn frames(mut bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (frame, used) = decode_frame(bytes, 0).expect("frame from broker");
        bytes = &bytes[used..];
        out.push(match frame {
            Frame::Method {
                method: Method::ConnectionStart(s),
                ..
            } => format!("start {}", String::from_utf8_lossy(s.mechanisms)),
            Frame::Method {
                method: Method::ConnectionClose(c),
                ..
            } => format!("close {} {}", c.reply_code, c.reply_text.as_str()),
            Frame::Method { method, .. } => method.name().to_owned(),
            other => format!("{other:?}"),
        });
    }
    out
}

fn output(b: &mut Broker, id: ConnId, now: u64) -> Vec<String> {
    let mut out = Vec::new();
    b.poll_output(id, &mut out, now);
    b.handle_output_drained(id);
    frames(&out)
}

/// start-ok from a client with RabbitMQ's `authentication_failure_close`
/// capability (it gets a connection.close on a refused login).
fn start_ok(mechanism: &str) -> Vec<u8> {
    let mut caps = FieldTable::default();
    caps.insert(short!("authentication_failure_close"), FieldValue::Bool(true));
    let mut props = FieldTable::default();
    props.insert(short!("capabilities"), FieldValue::Table(caps));
    let props = props.to_bytes();
    let mut out = Vec::new();
    let start_ok = ConnectionStartOk {
        client_properties: Table::parse(&props).expect("own table"),
        mechanism: ShortStr::new(mechanism).expect("short"),
        response: b"",
        locale: short!("en_US"),
    };
    encode_method(&mut out, 0, &Method::ConnectionStartOk(start_ok));
    out
}

/// Connects (with the certificate's identity, if any) and reads connection.start.
fn connect(b: &mut Broker, identity: Option<CertIdentity>) -> (ConnId, Vec<String>) {
    let id = b.handle_connect("127.0.0.1:1".into(), true, 1);
    if let Some(identity) = identity {
        b.handle_peer_certificate(id, identity);
    }
    b.handle_input(id, &PROTOCOL_HEADER, 1);
    let start = output(b, id, 1);
    (id, start)
}

#[test]
fn external_is_offered_with_a_certificate_and_logs_in_its_cn() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut b = Broker::open(CoreConfig::for_tests(dir.path()), 1).expect("open");

    let (_, start) = connect(&mut b, None);
    assert_eq!(start, ["start PLAIN AMQPLAIN"], "no certificate: no EXTERNAL");

    let (id, start) = connect(&mut b, Some(CertIdentity::Name("guest".into())));
    assert_eq!(start, ["start PLAIN AMQPLAIN EXTERNAL"]);
    b.handle_input(id, &start_ok("EXTERNAL"), 2);
    assert_eq!(output(&mut b, id, 2), ["connection.tune"], "logged in as the CN's user");
    let conn = b.conns.get(&id).expect("open");
    assert_eq!((conn.user(), conn.auth_mechanism()), (Some("guest"), "EXTERNAL"));

    // Refused, with the close a wrong password gets, a second later.
    let refused = [
        Some(CertIdentity::Name("nobody".into())),
        Some(CertIdentity::NoName),
        None,
    ];
    for identity in refused {
        let (id, _) = connect(&mut b, identity.clone());
        b.handle_input(id, &start_ok("EXTERNAL"), 2);
        assert!(
            output(&mut b, id, 2).is_empty(),
            "{identity:?}: answered before the delay"
        );
        b.handle_tick(id, 2 + crate::core::amqp::connection::LOGIN_FAILURE_DELAY_MS);
        let close = output(&mut b, id, 2 + crate::core::amqp::connection::LOGIN_FAILURE_DELAY_MS);
        assert_eq!(
            close,
            ["close 403 ACCESS_REFUSED - Login was refused using authentication mechanism EXTERNAL. For details see the broker logfile."],
            "{identity:?}"
        );
    }
}
