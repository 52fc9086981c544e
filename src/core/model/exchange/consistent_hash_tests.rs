//! Tests of the `x-consistent-hash` exchange (kept apart so
//! `consistent_hash.rs` stays about the algorithm).

use ringmq_codec::{short, ShortStr};
use ringmq_codec::{BasicProperties, FieldTable, FieldValue, Table};

use super::*;

/// A seeded generator so the random keys are the same in every run (STYLE §7);
/// failures print the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        field_bytes::mix64(self.0)
    }

    fn keys(seed: u64, n: usize) -> Vec<String> {
        let mut r = Rng(seed);
        (0..n).map(|_| format!("key-{:x}", r.next())).collect()
    }
}

const SEED: u64 = 0x5eed_c0ff_ee00_0001;

fn chx(weights: &[(u32, &str)]) -> Bindings<u32> {
    let mut b = Bindings::new(ExchangeKind::ConsistentHash);
    for (dest, w) in weights {
        assert!(b.bind(*dest, ShortStr::new(w).unwrap(), &FieldTable::new()));
    }
    b
}

fn one(b: &Bindings<u32>, key: RouteKey<'_>) -> Option<u32> {
    let mut out = Vec::new();
    b.route_with(key, &mut out);
    assert!(out.len() <= 1, "{out:?}");
    out.first().copied()
}

fn rk(key: &str) -> RouteKey<'_> {
    RouteKey::new(key, None)
}

fn args(pairs: &[(&str, FieldValue)]) -> FieldTable {
    pairs
        .iter()
        .map(|(k, v)| (ringmq_codec::ShortString::new(k).unwrap(), v.clone()))
        .collect()
}

#[test]
fn weights_are_validated_like_rabbitmq() {
    assert_eq!(parse_weight("1"), Ok(1));
    assert_eq!(parse_weight("+7"), Ok(7));
    assert_eq!(parse_weight("007"), Ok(7));
    assert_eq!(parse_weight("1000"), Ok(WEIGHT_MAX));
    for zero in ["0", "-0", "-3", "000"] {
        assert_eq!(
            parse_weight(zero),
            Err("The binding key must be greater than 0".to_owned()),
            "{zero}"
        );
    }
    for bad in ["", "abc", " 1", "1.5", "+", "1e3"] {
        assert_eq!(
            parse_weight(bad),
            Err(format!("The binding key must be an integer: <<\"{bad}\">>")),
            "{bad}"
        );
    }
    assert_eq!(
        parse_weight("1001"),
        Err("The binding key must be at most 1000".to_owned())
    );
    assert!(parse_weight("99999999999999999999999").is_err());

    let none = FieldTable::new();
    assert!(validate_binding(ExchangeKind::ConsistentHash, "3", &none).is_ok());
    assert!(validate_binding(ExchangeKind::ConsistentHash, "q", &none).is_err());
    // Other kinds keep their old checks and ignore the key.
    assert!(validate_binding(ExchangeKind::Direct, "q", &none).is_ok());
    let bad_match = args(&[("x-match", "some".into())]);
    assert_eq!(
        validate_binding(ExchangeKind::Headers, "", &bad_match),
        validate_binding_arguments(ExchangeKind::Headers, &bad_match)
    );
    assert!(validate_binding(ExchangeKind::Headers, "", &bad_match).is_err());
}

#[test]
fn exchange_arguments_choose_what_is_hashed() {
    let kind = ExchangeKind::ConsistentHash;
    let on = |a: &FieldTable| Bindings::<u32>::new_with_args(kind, a).map(|b| b.hash_on().cloned());
    assert_eq!(on(&FieldTable::new()), Ok(Some(HashOn::RoutingKey)));
    assert_eq!(
        on(&args(&[("hash-header", "user".into())])),
        Ok(Some(HashOn::Header("user".into())))
    );
    assert_eq!(
        on(&args(&[("x-hash-on", "user".into())])),
        Ok(Some(HashOn::Header("user".into())))
    );
    for (prop, want) in [
        ("message_id", HashOn::MessageId),
        ("correlation_id", HashOn::CorrelationId),
        ("timestamp", HashOn::Timestamp),
    ] {
        assert_eq!(on(&args(&[("hash-property", prop.into())])), Ok(Some(want)));
    }
    assert_eq!(
        on(&args(&[("hash-property", "app_id".into())])),
        Err("Unsupported property: app_id".to_owned())
    );
    assert_eq!(
        on(&args(&[
            ("hash-header", "a".into()),
            ("hash-property", "message_id".into())
        ])),
        Err("hash-header and hash-property are mutually exclusive".to_owned())
    );
    assert!(on(&args(&[("hash-header", FieldValue::I32(1))])).is_err());
    assert_eq!(
        validate_exchange_arguments(kind, &args(&[("hash-property", "x".into())])),
        Err("Unsupported property: x".to_owned())
    );
    // Other kinds read no arguments.
    assert!(validate_exchange_arguments(ExchangeKind::Topic, &args(&[("hash-property", "x".into())])).is_ok());
    assert_eq!(Bindings::<u32>::new(ExchangeKind::Topic).hash_on(), None);
}

#[test]
fn same_key_same_queue_and_exactly_one_queue() {
    let b = chx(&[(1, "1"), (2, "1"), (3, "1")]);
    for key in Rng::keys(SEED, 1000) {
        let first = one(&b, rk(&key)).expect("routed");
        for _ in 0..3 {
            assert_eq!(one(&b, rk(&key)), Some(first), "seed {SEED:#x} key {key}");
        }
    }
}

#[test]
fn spread_follows_the_weights() {
    let b = chx(&[(1, "1"), (2, "2"), (3, "3")]);
    let keys = Rng::keys(SEED, 10_000);
    let mut counts = [0usize; 4];
    for key in &keys {
        counts[one(&b, rk(key)).unwrap() as usize] += 1;
    }
    for (dest, weight) in [(1, 1.0), (2, 2.0), (3, 3.0)] {
        let want = keys.len() as f64 * weight / 6.0;
        let got = counts[dest] as f64;
        assert!(
            (got - want).abs() <= want * 0.2,
            "seed {SEED:#x}: queue {dest} got {got}, want {want} ± 20% ({counts:?})"
        );
    }
}

#[test]
fn unbinding_moves_only_the_keys_of_that_binding() {
    let mut b = chx(&[(1, "1"), (2, "2"), (3, "3"), (4, "1")]);
    let keys = Rng::keys(SEED, 10_000);
    let before: Vec<u32> = keys.iter().map(|k| one(&b, rk(k)).unwrap()).collect();
    assert!(b.unbind(&2, "2", &FieldTable::new()));
    let mut moved_others = 0;
    for (key, was) in keys.iter().zip(&before) {
        let now = one(&b, rk(key)).unwrap();
        assert_ne!(now, 2);
        if *was != 2 && now != *was {
            moved_others += 1;
        }
    }
    // A ring guarantees none move; RabbitMQ's renumbered buckets would move many.
    assert_eq!(moved_others, 0, "seed {SEED:#x}");
    // Binding it again restores the old layout exactly.
    b.bind(2, short!("2"), &FieldTable::new());
    let again: Vec<u32> = keys.iter().map(|k| one(&b, rk(k)).unwrap()).collect();
    assert_eq!(again, before);
}

#[test]
fn layout_does_not_depend_on_bind_order() {
    let a = chx(&[(1, "1"), (2, "2"), (3, "3")]);
    let b = chx(&[(3, "3"), (1, "1"), (2, "2")]);
    for key in Rng::keys(SEED, 2000) {
        assert_eq!(one(&a, rk(&key)), one(&b, rk(&key)), "{key}");
    }
}

#[test]
fn first_binding_to_a_destination_sets_its_weight() {
    let mut b = chx(&[(1, "1")]);
    let points = POINTS_PER_WEIGHT as usize;
    let ring_len = |b: &Bindings<u32>| match &b.matcher {
        Matcher::ConsistentHash(m) => m.ring_len(),
        _ => unreachable!(),
    };
    assert_eq!(ring_len(&b), points);
    // A second binding to the same queue is listed but ignored, as in RabbitMQ.
    assert!(b.bind(1, short!("5"), &FieldTable::new()));
    assert_eq!((b.len(), ring_len(&b)), (2, points));
    // When the first goes, the one left takes over (RabbitMQ would route the
    // queue nothing until it is rebound).
    assert!(b.unbind(&1, "1", &FieldTable::new()));
    assert_eq!(ring_len(&b), 5 * points);
    assert_eq!(one(&b, rk("x")), Some(1));
    assert_eq!(b.remove_destination(&1), 1);
    assert_eq!((ring_len(&b), one(&b, rk("x"))), (0, None));
}

#[test]
fn unvalidated_bad_weights_route_nothing() {
    // Bindings restored from before validation must not panic or route.
    let mut b = chx(&[(1, "zero"), (2, "0")]);
    assert_eq!(b.len(), 2);
    assert_eq!(one(&b, rk("k")), None);
    b.bind(3, short!("1"), &FieldTable::new());
    assert_eq!(one(&b, rk("k")), Some(3));
    assert!(b.unbind(&1, "zero", &FieldTable::new()));
    assert_eq!(one(&b, rk("k")), Some(3));
}

#[test]
fn hash_header_uses_the_header_value_with_its_type() {
    let x = args(&[("hash-header", "user".into())]);
    let mut b = Bindings::new_with_args(ExchangeKind::ConsistentHash, &x).unwrap();
    for d in 1..=8u32 {
        b.bind(d, short!("1"), &FieldTable::new());
    }
    let table = |v: FieldValue| args(&[("user", v), ("other", "x".into())]).to_bytes();
    let mut spread = std::collections::BTreeSet::new();
    for user in Rng::keys(SEED, 200) {
        let bytes = table(user.as_str().into());
        let headers = Some(Table::parse(&bytes).unwrap());
        // The routing key no longer matters.
        let a = one(&b, RouteKey::new("rk-a", headers)).unwrap();
        assert_eq!(one(&b, RouteKey::new("rk-b", headers)), Some(a));
        // The old entry point reads headers too.
        let mut out = Vec::new();
        b.route("rk-c", headers, &mut out);
        assert_eq!(out, vec![a]);
        spread.insert(a);
    }
    assert!(spread.len() >= 6, "{spread:?}");
    // Messages without the header all go to one queue (RabbitMQ hashes undefined).
    let missing = one(&b, RouteKey::new("a", None)).unwrap();
    let bytes = args(&[("other", "y".into())]).to_bytes();
    assert_eq!(
        one(&b, RouteKey::new("b", Some(Table::parse(&bytes).unwrap()))),
        Some(missing)
    );
}

#[test]
fn hash_property_needs_route_with_the_properties() {
    let x = args(&[("hash-property", "message_id".into())]);
    let mut b = Bindings::new_with_args(ExchangeKind::ConsistentHash, &x).unwrap();
    for d in 1..=8u32 {
        b.bind(d, short!("1"), &FieldTable::new());
    }
    let mut spread = std::collections::BTreeSet::new();
    for id in Rng::keys(SEED, 200) {
        let props = BasicProperties {
            message_id: Some(ringmq_codec::ShortStr::new(&id).unwrap()),
            ..BasicProperties::default()
        };
        let a = one(&b, RouteKey::from_properties("rk-a", &props)).unwrap();
        assert_eq!(one(&b, RouteKey::from_properties("rk-b", &props)), Some(a));
        spread.insert(a);
    }
    assert!(spread.len() >= 6, "{spread:?}");
    // Without properties every message lacks the id: one fixed queue.
    assert_eq!(one(&b, rk("a")), one(&b, rk("b")));

    let x = args(&[("hash-property", "timestamp".into())]);
    let mut t = Bindings::new_with_args(ExchangeKind::ConsistentHash, &x).unwrap();
    t.bind(1, short!("1"), &FieldTable::new());
    t.bind(2, short!("1"), &FieldTable::new());
    let at = |ts| RouteKey {
        timestamp: Some(ts),
        ..rk("k")
    };
    assert_eq!(one(&t, at(1_700_000_000)), one(&t, at(1_700_000_000)));
}

#[test]
fn route_skips_destinations_already_in_out() {
    let b = chx(&[(1, "1")]);
    let mut out = vec![1];
    b.route("k", None, &mut out);
    assert_eq!(out, vec![1]);
}
