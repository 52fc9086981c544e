//! Shovels through the management API, for the shovel tests (a ringmq or the
//! peer RabbitMQ): create one, read its status, wait for a state.

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::http::{enc, Api};
use super::WAIT;

/// Polls `check` until it is true, for at most `within`.
pub fn wait_until(what: &str, within: Duration, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !check() {
        assert!(Instant::now() < deadline, "timed out after {within:?}: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// PUTs shovel `name` of vhost `/` with `value` (created or updated).
pub fn put_shovel(api: &Api, name: &str, value: Value) {
    let r = api.put(
        &format!("/api/parameters/shovel/%2F/{}", enc(name)),
        json!({ "value": value }),
    );
    assert!(
        r.status == 201 || r.status == 204,
        "PUT shovel {name}: {} {}",
        r.status,
        r.text
    );
}

/// Shovel `name`'s row of `/api/shovels/%2F`, if listed.
pub fn shovel_status(api: &Api, name: &str) -> Option<Value> {
    let all = api.ok("/api/shovels/%2F");
    all.as_array()
        .expect("a list")
        .iter()
        .find(|s| s["name"] == name)
        .cloned()
}

/// Waits (up to `WAIT`) until shovel `name` is in `state`; its row then.
pub fn wait_shovel_state(api: &Api, name: &str, state: &str) -> Value {
    let mut last = None;
    wait_until(&format!("shovel {name} {state}"), WAIT, || {
        last = shovel_status(api, name);
        last.as_ref().is_some_and(|s| s["state"] == state)
    });
    last.expect("seen")
}

/// `{prefix}0` .. `{prefix}{n-1}`.
pub fn names(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}{i}")).collect()
}
