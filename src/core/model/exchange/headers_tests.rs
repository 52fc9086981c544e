//! Tests of the headers exchange (a separate file to keep `headers.rs` short).

use super::super::{validate_binding_arguments, Bindings, ExchangeKind};
use super::{erlang, XMatch};
use ringmq_codec::{FieldTable, FieldValue, Table};

fn table(pairs: &[(&str, FieldValue)]) -> FieldTable {
    pairs
        .iter()
        .map(|(k, v)| (ringmq_codec::ShortString::new(k).unwrap(), v.clone()))
        .collect()
}

fn s(v: &str) -> FieldValue {
    FieldValue::LongString(v.as_bytes().to_vec())
}

/// Which of `bindings` (destination = index) a message with `headers` reaches.
fn route(bindings: &[FieldTable], headers: Option<&FieldTable>) -> Vec<u32> {
    let mut b = Bindings::new(ExchangeKind::Headers);
    for (i, a) in bindings.iter().enumerate() {
        assert_eq!(validate_binding_arguments(ExchangeKind::Headers, a), Ok(()));
        assert!(b.bind(i as u32, ringmq_codec::short!("ignored"), a));
    }
    let bytes = headers.map(FieldTable::to_bytes);
    let parsed = bytes.as_deref().map(|b| Table::parse(b).unwrap());
    let mut out = Vec::new();
    b.route("any.routing.key", parsed, &mut out);
    out.sort();
    out
}

fn matches(binding: &FieldTable, headers: &FieldTable) -> bool {
    route(std::slice::from_ref(binding), Some(headers)) == vec![0]
}

#[test]
fn all_and_any() {
    let all = table(&[("x-match", s("all")), ("format", s("pdf")), ("type", s("report"))]);
    let any = table(&[("x-match", s("any")), ("format", s("pdf")), ("type", s("log"))]);
    let implicit_all = table(&[("format", s("pdf")), ("type", s("report"))]);
    let both = table(&[
        ("format", s("pdf")),
        ("type", s("report")),
        ("extra", FieldValue::I32(1)),
    ]);
    let one = table(&[("format", s("pdf"))]);
    let wrong = table(&[("format", s("zip")), ("type", s("report"))]);
    assert_eq!(
        route(&[all.clone(), any.clone(), implicit_all.clone()], Some(&both)),
        vec![0, 1, 2]
    );
    assert_eq!(
        route(&[all.clone(), any.clone(), implicit_all.clone()], Some(&one)),
        vec![1]
    );
    assert_eq!(
        route(&[all.clone(), any.clone(), implicit_all], Some(&wrong)),
        Vec::<u32>::new()
    );
    assert!(matches(&any, &table(&[("type", s("log"))])));
}

#[test]
fn empty_patterns_match_all_for_all_and_nothing_for_any() {
    let bindings = [
        FieldTable::new(),
        table(&[("x-match", s("all"))]),
        table(&[("x-match", s("any"))]),
        table(&[("x-match", s("all")), ("x-ignored", s("v"))]),
        table(&[("x-match", s("any")), ("x-ignored", s("v"))]),
        table(&[("x-match", s("all-with-x"))]),
        table(&[("x-match", s("any-with-x"))]),
    ];
    // With no headers property at all, and with some headers.
    assert_eq!(route(&bindings, None), vec![0, 1, 3, 5]);
    assert_eq!(route(&bindings, Some(&table(&[("a", s("b"))]))), vec![0, 1, 3, 5]);
    // A non-empty `all` pattern never matches a message without headers.
    assert_eq!(route(&[table(&[("a", s("b"))])], None), Vec::<u32>::new());
}

#[test]
fn x_keys_are_ignored_unless_with_x() {
    let headers = table(&[("x-tenant", s("acme")), ("kind", s("a"))]);
    let all = table(&[("x-match", s("all")), ("x-tenant", s("other")), ("kind", s("a"))]);
    let all_x = table(&[("x-match", s("all-with-x")), ("x-tenant", s("other")), ("kind", s("a"))]);
    let all_x_ok = table(&[("x-match", s("all-with-x")), ("x-tenant", s("acme")), ("kind", s("a"))]);
    let any = table(&[("x-match", s("any")), ("x-tenant", s("acme"))]);
    let any_x = table(&[("x-match", s("any-with-x")), ("x-tenant", s("acme")), ("kind", s("z"))]);
    assert_eq!(
        route(&[all, all_x, all_x_ok, any, any_x], Some(&headers)),
        vec![0, 2, 4]
    );
    // `x-match` itself is never compared, even in a -with-x mode.
    let h = table(&[("x-match", s("nope")), ("kind", s("a"))]);
    assert!(matches(&table(&[("x-match", s("all-with-x")), ("kind", s("a"))]), &h));
}

#[test]
fn void_means_present_with_any_value() {
    let b = table(&[("flag", FieldValue::Void)]);
    assert!(matches(&b, &table(&[("flag", s("anything"))])));
    assert!(matches(&b, &table(&[("flag", FieldValue::Void)])));
    assert!(!matches(&b, &table(&[("other", FieldValue::Void)])));
    let any = table(&[("x-match", s("any")), ("flag", FieldValue::Void), ("k", s("v"))]);
    assert!(matches(&any, &table(&[("flag", FieldValue::I8(0))])));
    // A void header does not satisfy a non-void binding value.
    assert!(!matches(&table(&[("k", s("v"))]), &table(&[("k", FieldValue::Void)])));
}

#[test]
fn numbers_compare_by_value_across_types_like_erlang() {
    let one = [
        FieldValue::I8(1),
        FieldValue::U8(1),
        FieldValue::I16(1),
        FieldValue::U16(1),
        FieldValue::I32(1),
        FieldValue::U32(1),
        FieldValue::I64(1),
        FieldValue::Timestamp(1),
        FieldValue::F32(1.0),
        FieldValue::F64(1.0),
    ];
    for want in &one {
        for have in &one {
            assert!(
                matches(&table(&[("n", want.clone())]), &table(&[("n", have.clone())])),
                "{want:?} {have:?}"
            );
        }
        for other in [FieldValue::I64(2), FieldValue::F64(1.5), FieldValue::Bool(true), s("1")] {
            assert!(
                !matches(&table(&[("n", want.clone())]), &table(&[("n", other.clone())])),
                "{want:?} {other:?}"
            );
        }
    }
    // Exact int/float comparison: 2^53 + 1 is not the float 2^53.
    let big = table(&[("n", FieldValue::I64((1 << 53) + 1))]);
    assert!(!matches(&big, &table(&[("n", FieldValue::F64(9007199254740992.0))])));
    assert!(matches(
        &table(&[("n", FieldValue::U32(u32::MAX))]),
        &table(&[("n", FieldValue::I64(u32::MAX.into()))])
    ));
    assert!(matches(
        &table(&[("n", FieldValue::F64(-0.0))]),
        &table(&[("n", FieldValue::I8(0))])
    ));
    assert!(!matches(
        &table(&[("n", FieldValue::F64(f64::NAN))]),
        &table(&[("n", FieldValue::F64(f64::NAN))])
    ));
}

#[test]
fn strings_bytes_bools_decimals() {
    let text = table(&[("k", s("abc"))]);
    assert!(matches(&text, &table(&[("k", FieldValue::ByteArray(b"abc".to_vec()))])));
    assert!(!matches(&text, &table(&[("k", s("ABC"))])));
    let t = table(&[("k", FieldValue::Bool(true))]);
    assert!(matches(&t, &table(&[("k", FieldValue::Bool(true))])));
    assert!(!matches(&t, &table(&[("k", FieldValue::I8(1))])));
    let d = table(&[("k", FieldValue::Decimal { scale: 1, value: 10 })]);
    assert!(matches(
        &d,
        &table(&[("k", FieldValue::Decimal { scale: 1, value: 10 })])
    ));
    assert!(!matches(
        &d,
        &table(&[("k", FieldValue::Decimal { scale: 2, value: 100 })])
    ));
    assert!(!matches(&d, &table(&[("k", FieldValue::I64(1))])));
}

#[test]
fn nested_values_keep_their_types() {
    let arr = |v: Vec<FieldValue>| table(&[("k", FieldValue::Array(v))]);
    assert!(matches(
        &arr(vec![FieldValue::I32(1), s("a")]),
        &arr(vec![FieldValue::I32(1), s("a")])
    ));
    assert!(!matches(&arr(vec![FieldValue::I32(1)]), &arr(vec![FieldValue::I64(1)])));
    assert!(!matches(
        &arr(vec![FieldValue::I32(1)]),
        &arr(vec![FieldValue::I32(1), FieldValue::I32(1)])
    ));
    assert!(!matches(
        &arr(vec![FieldValue::I32(1), FieldValue::I32(1)]),
        &arr(vec![FieldValue::I32(1)])
    ));
    let inner = table(&[("a", FieldValue::I32(1)), ("b", s("x"))]);
    let nested = table(&[("k", FieldValue::Table(inner.clone()))]);
    assert!(matches(&nested, &nested));
    let retyped = table(&[("a", FieldValue::I64(1)), ("b", s("x"))]);
    assert!(!matches(&nested, &table(&[("k", FieldValue::Table(retyped))])));
    // Erlang: [] == [] whatever the field type said.
    assert!(matches(
        &arr(vec![]),
        &table(&[("k", FieldValue::Table(FieldTable::new()))])
    ));
    assert!(!matches(&arr(vec![]), &nested));
}

#[test]
fn first_duplicate_header_is_the_one_compared() {
    // FieldTable cannot hold duplicates, so encode the headers by hand.
    let mut bytes = table(&[("k", s("first"))]).to_bytes();
    bytes.extend_from_slice(&table(&[("k", s("second"))]).to_bytes());
    let headers = Table::parse(&bytes).unwrap();
    let mut b = Bindings::new(ExchangeKind::Headers);
    b.bind(1u32, ringmq_codec::short!(""), &table(&[("k", s("first"))]));
    b.bind(2u32, ringmq_codec::short!(""), &table(&[("k", s("second"))]));
    let mut out = Vec::new();
    b.route("", Some(headers), &mut out);
    assert_eq!(out, vec![1]);
}

#[test]
fn unbind_removes_the_right_rule_and_duplicates_deliver_once() {
    let mut b = Bindings::new(ExchangeKind::Headers);
    let a = table(&[("k", s("v"))]);
    let any = table(&[("x-match", s("any")), ("k", s("v")), ("j", s("w"))]);
    b.bind(1u32, ringmq_codec::short!(""), &a);
    b.bind(1, ringmq_codec::short!(""), &any);
    b.bind(2, ringmq_codec::short!(""), &any);
    let h = table(&[("k", s("v"))]).to_bytes();
    let mut out = Vec::new();
    b.route("", Some(Table::parse(&h).unwrap()), &mut out);
    out.sort();
    assert_eq!(out, vec![1, 2]);
    assert!(b.unbind(&1, "", &any));
    assert!(b.unbind(&2, "", &any));
    out.clear();
    b.route("", Some(Table::parse(&h).unwrap()), &mut out);
    assert_eq!(out, vec![1]);
}

#[test]
fn x_match_validation_texts_match_rabbitmq() {
    let check = |v: FieldValue| validate_binding_arguments(ExchangeKind::Headers, &table(&[("x-match", v)]));
    for ok in ["all", "any", "all-with-x", "any-with-x"] {
        assert_eq!(check(s(ok)), Ok(()));
    }
    assert_eq!(
        check(s("some")),
        Err(r#"Invalid x-match field value <<"some">>; expected all, any, all-with-x, or any-with-x"#.to_owned())
    );
    assert_eq!(check(s("ALL")).unwrap_err(), check(s("ALL")).unwrap_err());
    assert_eq!(
        check(FieldValue::I32(1)),
        Err("Invalid x-match field type signedint (value 1); expected longstr".to_owned())
    );
    assert_eq!(
        check(FieldValue::ByteArray(b"all".to_vec())),
        Err(r#"Invalid x-match field type binary (value <<"all">>); expected longstr"#.to_owned())
    );
    // Other exchange types do not look at x-match.
    let bad = table(&[("x-match", s("some"))]);
    for kind in [ExchangeKind::Direct, ExchangeKind::Fanout, ExchangeKind::Topic] {
        assert_eq!(validate_binding_arguments(kind, &bad), Ok(()));
    }
    // Unvalidated bindings (say, restored from old definitions) act as `all`.
    assert_eq!(XMatch::of_arguments(&bad), XMatch::All);
    assert_eq!(
        XMatch::of_arguments(&table(&[("x-match", FieldValue::I8(1))])),
        XMatch::All
    );
    assert_eq!(
        XMatch::of_arguments(&table(&[("x-match", s("any-with-x"))])),
        XMatch::AnyWithX
    );
}

#[test]
fn erlang_printing() {
    assert_eq!(erlang::binary(b"a\"b\\c\n"), r#"<<"a\"b\\c\n">>"#);
    assert_eq!(erlang::binary("é".as_bytes()), "<<\"é\"/utf8>>");
    assert_eq!(erlang::binary(&[0, 255]), "<<0,255>>");
    assert_eq!(erlang::term(&FieldValue::Decimal { scale: 2, value: 5 }), "{2,5}");
    assert_eq!(erlang::term(&FieldValue::Void), "undefined");
    assert_eq!(erlang::term(&FieldValue::F64(1.0)), "1.0");
    assert_eq!(
        erlang::term(&FieldValue::Array(vec![FieldValue::I64(1), s("a")])),
        r#"[{long,1},{longstr,<<"a">>}]"#
    );
}

#[test]
fn many_headers_take_the_table_path_with_the_same_result() {
    let mut headers = FieldTable::new();
    for i in 0..40 {
        headers.insert(
            ringmq_codec::ShortString::try_from(format!("h{i:02}")).unwrap(),
            FieldValue::I32(i),
        );
    }
    let last = table(&[("h39", FieldValue::I64(39)), ("h00", FieldValue::U8(0))]);
    let missing = table(&[("h39", FieldValue::I64(39)), ("h40", FieldValue::Void)]);
    assert_eq!(route(&[last, missing], Some(&headers)), vec![0]);
}
