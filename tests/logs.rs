//! What the log looks like to a machine: no ANSI colour codes when stdout is not
//! a terminal, and `--log-format json` writes one JSON object per line.

mod common;

use common::*;

#[test]
fn text_logs_have_no_colour_codes_when_not_on_a_terminal() {
    let b = Broker::new();
    if b.skip_external("text_logs_have_no_colour_codes_when_not_on_a_terminal") {
        return;
    }
    run(async {
        let (_conn, _ch) = open(&b).await;
    });
    let log = std::fs::read_to_string(b.log_path()).unwrap();
    assert!(log.contains("connection opened"), "{log}");
    assert!(
        !log.contains('\u{1b}'),
        "ANSI escapes in a log written to a file:\n{log}"
    );
}

#[test]
fn json_logs_are_one_object_per_line() {
    let b = Broker::with_args(&["--log-format", "json"]);
    if b.skip_external("json_logs_are_one_object_per_line") {
        return;
    }
    run(async {
        let (_conn, _ch) = open(&b).await;
    });
    let log = std::fs::read_to_string(b.log_path()).unwrap();
    let mut seen_open = false;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["timestamp"].is_string(), "{line}");
        assert!(v["level"].is_string(), "{line}");
        assert!(v["message"].is_string(), "{line}");
        if v["message"] == "connection opened" {
            seen_open = true;
            assert_eq!(v["vhost"], "/", "fields are keys of the object: {line}");
        }
    }
    assert!(seen_open, "{log}");
}
