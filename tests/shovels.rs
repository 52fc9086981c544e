//! Dynamic shovels between real brokers: two ringmq binaries (a source and a
//! destination), shovels configured through the API as RabbitMQ users do.
//! Queue to queue and exchange to exchange in each ack mode, delete-after
//! queue-length, a destination killed and restarted mid-stream with
//! on-confirm (nothing lost), wrong credentials, a deleted parameter.

mod common;

use std::time::Duration;

use common::http::Api;
use common::links::{self, count, declare, drain, publish};
use common::shovel_api::{names, put_shovel, shovel_status, wait_shovel_state, wait_until};
use common::*;
use serde_json::json;

fn api(b: &Broker) -> Api {
    Api::new(b.http_url(), b.user(), b.pass())
}

/// A source and a destination broker; the shovel runs on the source.
fn pair() -> (Broker, Broker) {
    let (src, dest) = (Broker::new(), Broker::new());
    assert!(!src.is_external(), "shovel tests start their own brokers");
    (src, dest)
}

#[test]
fn queue_to_queue_in_each_ack_mode() {
    let (src, dest) = pair();
    for mode in ["on-confirm", "on-publish", "no-ack"] {
        let (sq, dq) = (format!("src-{mode}"), format!("dest-{mode}"));
        declare(src.uri(), &sq, None);
        publish(src.uri(), "", &sq, "m", 300);
        put_shovel(
            &api(&src),
            mode,
            json!({"src-uri": "amqp://", "src-queue": sq, "dest-uri": dest.uri(), "dest-queue": dq,
                   "ack-mode": mode, "src-prefetch-count": 50}),
        );
        let s = wait_shovel_state(&api(&src), mode, "running");
        assert_eq!(
            (s["src_queue"].as_str(), s["dest_queue"].as_str()),
            (Some(&*sq), Some(&*dq))
        );
        assert_eq!(s["type"], "dynamic");
        wait_until(&format!("{mode}: 300 on the destination"), WAIT, || {
            count(dest.uri(), &dq) == 300
        });
        wait_until(&format!("{mode}: the source empty"), WAIT, || {
            count(src.uri(), &sq) == 0
        });
        assert_eq!(drain(dest.uri(), &dq), names("m", 300), "{mode}: all, in order, once");
        // Messages published while it runs follow.
        publish(src.uri(), "", &sq, "late", 5);
        wait_until(&format!("{mode}: the late ones"), WAIT, || count(dest.uri(), &dq) == 5);
        // Stopped, the shovel's connection goes: had it left any message
        // unacknowledged, the source would have it back.
        assert_eq!(
            api(&src).delete(&format!("/api/parameters/shovel/%2F/{mode}")).status,
            204
        );
        wait_until("no consumer", WAIT, || {
            api(&src).ok(&format!("/api/queues/%2F/{sq}"))["consumers"].as_u64() == Some(0)
        });
        std::thread::sleep(QUIET);
        assert_eq!(
            count(src.uri(), &sq),
            0,
            "{mode}: every message acknowledged (or taken with no-ack)"
        );
    }
}

#[test]
fn exchange_to_exchange_in_each_ack_mode() {
    let (src, dest) = pair();
    for mode in ["on-confirm", "on-publish", "no-ack"] {
        let dq = format!("x-dest-{mode}");
        declare(dest.uri(), &dq, Some(("amq.direct", mode)));
        put_shovel(
            &api(&src),
            mode,
            json!({"src-uri": "amqp://", "src-exchange": "amq.topic", "src-exchange-key": format!("{mode}.#"),
                   "dest-uri": [dest.uri()], "dest-exchange": "amq.direct", "dest-exchange-key": mode,
                   "ack-mode": mode, "dest-add-forward-headers": true}),
        );
        let s = wait_shovel_state(&api(&src), mode, "running");
        assert_eq!(s["src_exchange"], "amq.topic");
        assert_eq!(s["dest_exchange_key"], mode);
        publish(src.uri(), "amq.topic", &format!("{mode}.a"), "x", 100);
        publish(src.uri(), "amq.topic", "other.a", "no", 10);
        wait_until(&format!("{mode}: 100 routed on"), WAIT, || {
            count(dest.uri(), &dq) == 100
        });
        assert_eq!(drain(dest.uri(), &dq), names("x", 100));
    }
}

#[test]
fn delete_after_queue_length_moves_what_was_there_and_deletes_itself() {
    let (src, dest) = pair();
    declare(src.uri(), "dl", None);
    publish(src.uri(), "", "dl", "m", 20);
    put_shovel(
        &api(&src),
        "once",
        json!({"src-uri": "amqp://", "src-queue": "dl", "dest-uri": dest.uri(), "dest-queue": "dl-out",
               "src-delete-after": "queue-length", "src-prefetch-count": 7}),
    );
    wait_until("the parameter deleted", WAIT, || {
        api(&src).get("/api/parameters/shovel/%2F/once").status == 404
    });
    wait_until("its status gone", WAIT, || shovel_status(&api(&src), "once").is_none());
    assert_eq!(count(dest.uri(), "dl-out"), 20);
    publish(src.uri(), "", "dl", "after", 3);
    std::thread::sleep(QUIET);
    assert_eq!(count(src.uri(), "dl"), 3, "nothing more moved");
    assert_eq!(drain(dest.uri(), "dl-out"), names("m", 20));
}

/// The destination frozen (SIGSTOP) while the shovel has messages in flight
/// to it, then killed (-9) and started again: with on-confirm the source
/// acknowledged none of what the destination never confirmed (the source's
/// count stays at N - prefetch while frozen), and every message arrives.
#[test]
fn on_confirm_loses_nothing_when_the_destination_is_killed_mid_stream() {
    let (src, mut dest) = pair();
    const N: usize = 3000;
    const PREFETCH: u32 = 500;
    declare(src.uri(), "big", None);
    declare(dest.uri(), "big-out", None);
    put_shovel(
        &api(&src),
        "tough",
        json!({"src-uri": "amqp://", "src-queue": "big", "dest-uri": dest.uri(), "dest-queue": "big-out",
               "reconnect-delay": 1, "src-prefetch-count": PREFETCH}),
    );
    wait_shovel_state(&api(&src), "tough", "running");
    dest.signal(libc::SIGSTOP);
    publish(src.uri(), "", "big", "m", N);
    // The shovel takes a prefetch's worth and publishes it into the frozen
    // destination's socket; none of it may be acknowledged at the source.
    wait_until("a prefetch taken", WAIT, || {
        count(src.uri(), "big") <= N as u32 - PREFETCH
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        count(src.uri(), "big"),
        N as u32 - PREFETCH,
        "nothing acked before it was confirmed"
    );
    dest.kill9();
    let st = wait_shovel_state(&api(&src), "tough", "terminated");
    assert!(st["reason"].as_str().unwrap().contains("destination"), "{st}");
    dest.start();
    wait_shovel_state(&api(&src), "tough", "running");
    wait_until("the source drained", Duration::from_secs(60), || {
        count(src.uri(), "big") == 0
    });
    let got = drain(dest.uri(), "big-out");
    let mut unique: Vec<&String> = got.iter().collect();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        N,
        "every message arrived (at least once): {} of {N}",
        unique.len()
    );
}

#[test]
fn wrong_credentials_terminate_with_the_reason() {
    let (src, dest) = pair();
    let bad = format!("amqp://guest:wrong@127.0.0.1:{}/", dest.port());
    put_shovel(
        &api(&src),
        "badpw",
        json!({"src-uri": "amqp://", "src-queue": "q", "dest-uri": bad, "dest-queue": "q2", "reconnect-delay": 1}),
    );
    let s = wait_shovel_state(&api(&src), "badpw", "terminated");
    let reason = s["reason"].as_str().unwrap();
    assert!(
        reason.contains("ACCESS_REFUSED") && reason.contains("destination"),
        "{reason}"
    );
    assert!(!reason.contains("wrong"), "no password in the reason: {reason}");
    // It keeps trying: starting again after the delay, and failing again.
    wait_shovel_state(&api(&src), "badpw", "starting");
}

#[test]
fn deleting_the_parameter_stops_the_shovel() {
    let (src, dest) = pair();
    declare(src.uri(), "del", None);
    put_shovel(
        &api(&src),
        "gone",
        json!({"src-uri": "amqp://", "src-queue": "del", "dest-uri": dest.uri(), "dest-queue": "del-out"}),
    );
    wait_shovel_state(&api(&src), "gone", "running");
    publish(src.uri(), "", "del", "a", 5);
    wait_until("moved while it ran", WAIT, || count(dest.uri(), "del-out") == 5);
    let r = api(&src).delete("/api/parameters/shovel/%2F/gone");
    assert_eq!(r.status, 204, "{}", r.text);
    wait_until("its status gone", WAIT, || shovel_status(&api(&src), "gone").is_none());
    // Its connections are closed: the source queue has no consumer left.
    wait_until("no consumer", WAIT, || {
        api(&src).ok("/api/queues/%2F/del")["consumers"].as_u64() == Some(0)
    });
    publish(src.uri(), "", "del", "b", 5);
    std::thread::sleep(QUIET);
    assert_eq!((count(src.uri(), "del"), count(dest.uri(), "del-out")), (5, 5));
}

#[test]
fn a_bad_value_is_refused_with_rabbitmqs_text() {
    let b = Broker::new();
    if b.skip_external("a_bad_value_is_refused_with_rabbitmqs_text") {
        return;
    }
    let r = api(&b).put(
        "/api/parameters/shovel/%2F/s1",
        json!({"value": {"src-uri": "amqp://"}}),
    );
    assert_eq!(r.status, 400);
    assert_eq!(
        r.json["reason"],
        "Validation failed\n\nMust specify 'src-exchange' or 'src-queue'\nKey \"dest-uri\" not found in s1\n"
    );
    let r = api(&b).put(
        "/api/parameters/shovel/%2F/s1",
        json!({"value": {"src-uri": "amqp://", "src-queue": "q", "dest-uri": "amqps://example.invalid/"}}),
    );
    assert_eq!(r.status, 400, "amqps:// without a CA to trust: {}", r.text);
    assert!(r.text.contains("needs cacertfile"), "{}", r.text);
    assert_eq!(api(&b).get("/api/parameters/shovel/%2F/s1").status, 404);
}

fn ctl(b: &Broker, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_ringmqctl"))
        .args(["--uri", b.http_url(), "-u", b.user(), "--password", b.pass()])
        .args(args)
        .output()
        .expect("run ringmqctl")
}

/// A shovel set with ringmqctl is listed by it, restarted through the API,
/// runs again after the broker restarts (its parameter loaded at start), and
/// a definitions import with a bad shovel is refused as the API refuses it.
#[test]
fn ctl_restart_and_broker_restart() {
    let (mut src, dest) = pair();
    declare(src.uri(), "persist", None);
    let value =
        json!({"src-uri": "amqp://", "src-queue": "persist", "dest-uri": dest.uri(), "dest-queue": "persist-out"});
    let out = ctl(&src, &["set_parameter", "shovel", "kept", &value.to_string()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let before = wait_shovel_state(&api(&src), "kept", "running");
    let out = ctl(&src, &["list_shovels"]);
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.contains("kept") && listed.contains("running"), "{listed}");
    let bad = ctl(&src, &["set_parameter", "shovel", "nope", r#"{"src-uri": "amqp://"}"#]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("Must specify 'src-exchange' or 'src-queue'"));

    // Restart: it goes down and comes back running (a new run, a new timestamp or state change).
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(api(&src).delete("/api/shovels/vhost/%2F/kept/restart").status, 204);
    assert_eq!(api(&src).delete("/api/shovels/vhost/%2F/none/restart").status, 404);
    wait_until("restarted", WAIT, || {
        shovel_status(&api(&src), "kept")
            .is_some_and(|s| s["state"] == "running" && s["timestamp"] != before["timestamp"])
    });

    src.restart();
    wait_shovel_state(&api(&src), "kept", "running");
    publish(src.uri(), "", "persist", "p", 10);
    wait_until("moved after the restart", WAIT, || {
        count(dest.uri(), "persist-out") == 10
    });

    let defs = json!({"parameters": [{"vhost": "/", "component": "shovel", "name": "imported",
                                       "value": {"src-uri": "amqp://", "src-queue": "q", "dest-uri": "ftp://h"}}]});
    let r = api(&src).post("/api/definitions", defs);
    assert_eq!(r.status, 400, "{}", r.text);
    assert!(r.text.contains("unexpected_uri_scheme"), "{}", r.text);
}

/// The shovel on the destination, pulling from a source that is killed -9
/// mid-stream and started again: every message published (and confirmed) at
/// the source arrives at least once.
#[test]
fn a_source_killed_mid_stream_loses_nothing() {
    let (mut src, dest) = pair();
    const N: usize = 3000;
    declare(src.uri(), "far", None);
    declare(dest.uri(), "near", None);
    publish(src.uri(), "", "far", "m", N);
    put_shovel(
        &api(&dest),
        "pull",
        json!({"src-uri": src.uri(), "src-queue": "far", "dest-uri": "amqp://", "dest-queue": "near",
               "reconnect-delay": 1, "src-prefetch-count": 10}),
    );
    wait_until("some moved", WAIT, || count(dest.uri(), "near") > 0);
    let left = count(src.uri(), "far");
    src.kill9();
    assert!(left > 0, "killed mid-stream, not after");
    let st = wait_shovel_state(&api(&dest), "pull", "terminated");
    assert!(st["reason"].as_str().unwrap().contains("source"), "{st}");
    src.start();
    wait_shovel_state(&api(&dest), "pull", "running");
    wait_until("the source drained", Duration::from_secs(60), || {
        count(src.uri(), "far") == 0
    });
    let got = drain(dest.uri(), "near");
    let mut unique: Vec<&String> = got.iter().collect();
    unique.sort();
    unique.dedup();
    assert_eq!(
        unique.len(),
        N,
        "every message arrived (at least once): {} of {N}",
        unique.len()
    );
}

/// The broker that runs the shovel (and holds its source) killed -9
/// mid-stream and started again: the stored parameter starts the shovel
/// anew, every confirmed message arrives at least once, and every copy that
/// repeats an earlier one is flagged (`redelivered` in its `x-shovelled`
/// entry: the source redelivered it after the crash).
#[test]
fn the_hosting_broker_killed_mid_stream_loses_nothing_and_flags_repeats() {
    use ringmq_codec::{BasicProperties, FieldValue};
    let (mut src, dest) = pair();
    const N: usize = 3000;
    declare(src.uri(), "home", None);
    declare(dest.uri(), "home-out", None);
    publish(src.uri(), "", "home", "m", N);
    put_shovel(
        &api(&src),
        "homebound",
        json!({"src-uri": "amqp://", "src-queue": "home", "dest-uri": dest.uri(), "dest-queue": "home-out",
               "reconnect-delay": 1, "src-prefetch-count": 100, "dest-add-forward-headers": true}),
    );
    wait_until("some moved", WAIT, || count(dest.uri(), "home-out") > 0);
    src.kill9();
    let before = count(dest.uri(), "home-out") as usize;
    assert!(before < N, "killed mid-stream, not after: {before} of {N} moved");
    src.start();
    wait_shovel_state(&api(&src), "homebound", "running");
    wait_until("the source drained", Duration::from_secs(60), || {
        count(src.uri(), "home") == 0
    });
    let got = links::drain_contents(dest.uri(), "home-out");
    let flagged = |c: &ringmq_client::Content| {
        let p = BasicProperties::decode(&c.properties_raw).unwrap();
        let h = p.headers.expect("x-shovelled").to_owned_table();
        let Some(FieldValue::Array(entries)) = h.get("x-shovelled") else {
            panic!("no x-shovelled: {h:?}")
        };
        let Some(FieldValue::Table(entry)) = entries.first() else {
            panic!("{entries:?}")
        };
        entry.get("redelivered") == Some(&FieldValue::Bool(true))
    };
    let mut seen = std::collections::HashSet::new();
    let mut repeats = 0;
    for c in &got {
        if !seen.insert(c.body.clone()) {
            repeats += 1;
            assert!(
                flagged(c),
                "a repeat not flagged: {:?}",
                String::from_utf8_lossy(&c.body)
            );
        }
    }
    assert_eq!(
        seen.len(),
        N,
        "every message arrived (at least once): {} of {N}",
        seen.len()
    );
    // The shovel held up to a prefetch of unacked deliveries when it died: the
    // restarted source redelivers them, flagged whether or not they repeat.
    let redelivered = got.iter().filter(|c| flagged(c)).count();
    println!(
        "moved before the kill {before}, copies {}, repeats {repeats}, flagged {redelivered}",
        got.len()
    );
    assert!(redelivered > 0, "the deliveries in flight came back as redeliveries");
}

/// The source queue deleted under a running shovel: it stops with the reason
/// and, after the delay, starts again (declaring the queue anew).
#[test]
fn a_deleted_source_queue_terminates_and_restarts() {
    let (src, dest) = pair();
    declare(src.uri(), "doomed", None);
    put_shovel(
        &api(&src),
        "orphan",
        json!({"src-uri": "amqp://", "src-queue": "doomed", "dest-uri": dest.uri(), "dest-queue": "d-out",
               "reconnect-delay": 1}),
    );
    wait_shovel_state(&api(&src), "orphan", "running");
    assert_eq!(api(&src).delete("/api/queues/%2F/doomed").status, 204);
    let st = wait_shovel_state(&api(&src), "orphan", "terminated");
    assert!(st["reason"].as_str().unwrap().contains("cancelled"), "{st}");
    wait_shovel_state(&api(&src), "orphan", "running");
    publish(src.uri(), "", "doomed", "again", 3);
    wait_until("moved from the new queue", WAIT, || count(dest.uri(), "d-out") == 3);
}

/// A minimal HTTP endpoint on a thread: answers its first `fail_first`
/// requests 503, then 200; records each request's head (lowercased) and body.
/// The requests an endpoint got: (head, body) each.
type Requests = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

fn http_endpoint(fail_first: usize) -> (u16, Requests) {
    use std::io::{BufRead, BufReader, Read, Write};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen = Requests::default();
    let got = seen.clone();
    std::thread::spawn(move || {
        let mut answered = 0;
        for conn in l.incoming() {
            let Ok(conn) = conn else { return };
            let mut r = BufReader::new(conn.try_clone().unwrap());
            let mut w = conn;
            loop {
                let mut head = String::new();
                loop {
                    let mut line = String::new();
                    if r.read_line(&mut line).unwrap_or(0) == 0 {
                        break;
                    }
                    if line == "\r\n" {
                        break;
                    }
                    head.push_str(&line.to_ascii_lowercase());
                }
                if head.is_empty() {
                    break;
                }
                let len: usize = head
                    .lines()
                    .find_map(|l| l.strip_prefix("content-length:"))
                    .map_or(0, |v| v.trim().parse().unwrap());
                let mut body = vec![0; len];
                r.read_exact(&mut body).unwrap();
                let status = if answered < fail_first {
                    "503 Service Unavailable"
                } else {
                    "200 OK"
                };
                answered += 1;
                got.lock().unwrap().push((head, String::from_utf8(body).unwrap()));
                write!(w, "HTTP/1.1 {status}\r\ncontent-length: 0\r\n\r\n").unwrap();
            }
        }
    });
    (port, seen)
}

/// `dest-uri` `http://`: each message POSTed with its properties as headers;
/// the endpoint's first answers are 503, the message is retried (in order,
/// none skipped), and acknowledged at the source only on a 2xx.
#[test]
fn an_http_destination_gets_each_message_retried_until_2xx() {
    let b = Broker::new();
    if b.skip_external("an_http_destination_gets_each_message_retried_until_2xx") {
        return;
    }
    let (port, seen) = http_endpoint(2);
    declare(b.uri(), "to-http", None);
    put_shovel(
        &api(&b),
        "web",
        json!({"src-uri": "amqp://", "src-queue": "to-http", "dest-uri": format!("http://u:p@127.0.0.1:{port}/in"),
               "dest-add-forward-headers": true}),
    );
    let s = wait_shovel_state(&api(&b), "web", "running");
    assert_eq!(s["dest_uri"], format!("http://127.0.0.1:{port}/in"));
    publish(b.uri(), "", "to-http", "h", 4);
    wait_until("4 accepted", Duration::from_secs(15), || {
        seen.lock().unwrap().len() == 6
    });
    wait_until("all acked", WAIT, || count(b.uri(), "to-http") == 0);
    let reqs = seen.lock().unwrap().clone();
    let bodies: Vec<&str> = reqs.iter().map(|(_, b)| b.as_str()).collect();
    assert_eq!(
        bodies,
        ["h0", "h0", "h0", "h1", "h2", "h3"],
        "the first retried until a 2xx, then in order"
    );
    let head = &reqs[0].0;
    assert!(head.starts_with("post /in http/1.1"), "{head}");
    assert!(head.contains("authorization: basic dtpw"), "{head}");
    assert!(
        head.contains("x-amqp-delivery-mode: 2") && head.contains("x-amqp-routing-key: to-http"),
        "{head}"
    );
    // While it was refused, the message stayed unacknowledged at the source:
    // stopping the shovel now leaves nothing to requeue.
    assert_eq!(api(&b).delete("/api/parameters/shovel/%2F/web").status, 204);
    std::thread::sleep(QUIET);
    assert_eq!(count(b.uri(), "to-http"), 0);
}
