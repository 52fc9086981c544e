//! AMQP field tables as JSON and back: the one conversion used by the
//! management API (queue and exchange arguments, message headers) and by
//! definitions import and export.
//!
//! JSON to AMQP follows RabbitMQ's management plugin: integers become signed
//! 64-bit (`l`), other numbers doubles, strings long strings, arrays arrays,
//! objects tables, null void. AMQP to JSON is lossy where JSON has no type
//! (byte arrays and long strings both become strings; decimals numbers).

use ringmq_codec::ShortString;
use ringmq_codec::{FieldTable, FieldValue};
use serde_json::{Map, Number, Value};

/// How deep nested tables and arrays may go (the codec's decode bound is the
/// same idea: no unbounded recursion on input).
pub const JSON_NESTING_MAX: usize = 32;

pub fn value_to_json(v: &FieldValue) -> Value {
    match v {
        FieldValue::Bool(b) => Value::Bool(*b),
        FieldValue::I8(n) => Value::from(*n),
        FieldValue::U8(n) => Value::from(*n),
        FieldValue::I16(n) => Value::from(*n),
        FieldValue::U16(n) => Value::from(*n),
        FieldValue::I32(n) => Value::from(*n),
        FieldValue::U32(n) => Value::from(*n),
        FieldValue::I64(n) => Value::from(*n),
        FieldValue::F32(f) => Number::from_f64(f64::from(*f)).map_or(Value::Null, Value::Number),
        FieldValue::F64(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
        FieldValue::Decimal { scale, value } => {
            Number::from_f64(f64::from(*value) / 10f64.powi(i32::from(*scale))).map_or(Value::Null, Value::Number)
        }
        FieldValue::LongString(b) | FieldValue::ByteArray(b) => Value::String(String::from_utf8_lossy(b).into_owned()),
        FieldValue::Array(a) => Value::Array(a.iter().map(value_to_json).collect()),
        FieldValue::Timestamp(t) => Value::from(*t),
        FieldValue::Table(t) => table_to_json(t),
        FieldValue::Void => Value::Null,
    }
}

pub fn table_to_json(t: &FieldTable) -> Value {
    Value::Object(
        t.0.iter()
            .map(|(k, v)| (k.to_string(), value_to_json(v)))
            .collect::<Map<_, _>>(),
    )
}

fn value_from_json(v: &Value, depth: usize) -> Result<FieldValue, String> {
    if depth > JSON_NESTING_MAX {
        return Err(format!("arguments nested deeper than {JSON_NESTING_MAX} levels"));
    }
    Ok(match v {
        Value::Null => FieldValue::Void,
        Value::Bool(b) => FieldValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => FieldValue::I64(i),
            None if n.is_u64() => return Err(format!("integer {n} does not fit a signed 64-bit field")),
            None => FieldValue::F64(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => FieldValue::LongString(s.as_bytes().to_vec()),
        Value::Array(a) => FieldValue::Array(
            a.iter()
                .map(|x| value_from_json(x, depth + 1))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(_) => FieldValue::Table(table_from_json_at(v, depth + 1)?),
    })
}

fn table_from_json_at(v: &Value, depth: usize) -> Result<FieldTable, String> {
    match v {
        Value::Null => Ok(FieldTable::default()),
        Value::Object(m) => {
            let mut t = FieldTable::default();
            for (k, x) in m {
                // A key AMQP cannot carry is refused here, by length alone: the
                // message used to quote `&k[..32]`, which panicked on a character
                // across byte 32 (issue 15, defect 3).
                let key = ShortString::new(k).map_err(|e| e.text("argument name"))?;
                t.0.insert(key, value_from_json(x, depth)?);
            }
            Ok(t)
        }
        other => Err(format!("arguments must be a JSON object, got {other}")),
    }
}

/// A JSON object (or null: empty) as a field table.
pub fn table_from_json(v: &Value) -> Result<FieldTable, String> {
    table_from_json_at(v, 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn round_trips_the_json_types() {
        let j = json!({"x-max-length": 10, "x-dead-letter-exchange": "dlx", "ratio": 0.5,
                       "flag": true, "list": [1, "a"], "nested": {"k": null}});
        let t = table_from_json(&j).unwrap();
        assert_eq!(t.0["x-max-length"], FieldValue::I64(10));
        assert_eq!(t.0["x-dead-letter-exchange"], FieldValue::LongString(b"dlx".to_vec()));
        assert_eq!(t.0["ratio"], FieldValue::F64(0.5));
        assert_eq!(table_to_json(&t), j);
        assert_eq!(table_from_json(&Value::Null).unwrap(), FieldTable::default());
    }

    #[test]
    fn refuses_what_amqp_cannot_hold() {
        assert!(table_from_json(&json!([1])).is_err());
        assert!(table_from_json(&json!({"big": u64::MAX})).is_err());
        let mut deep = json!(1);
        for _ in 0..40 {
            deep = json!({ "d": deep });
        }
        assert!(table_from_json(&deep).is_err());
    }

    /// Keys with a two-byte character across byte 32 (where the old error text
    /// cut its quote, and panicked: issue 15, defect 3) and across byte 255 (the
    /// short-string bound): refused with the length when too long, kept whole
    /// when not, never a panic on a character boundary.
    #[test]
    fn multi_byte_keys_across_byte_32_and_255() {
        let across_32 = format!("{}é", "a".repeat(31));
        assert_eq!((across_32.len(), across_32.is_char_boundary(32)), (33, false));
        let t = table_from_json(&json!({ across_32.clone(): 1 })).unwrap();
        assert_eq!(t.0[across_32.as_str()], FieldValue::I64(1));

        let both = format!("{}é{}é", "a".repeat(31), "b".repeat(221));
        assert_eq!(
            (both.len(), both.is_char_boundary(32), both.is_char_boundary(255)),
            (256, false, false)
        );
        let e = table_from_json(&json!({ both.clone(): 1 })).unwrap_err();
        assert_eq!(e, "argument name should be less than 255 bytes, actually was 256");
        let e = table_from_json(&json!({"nested": { both: 1 }})).unwrap_err();
        assert_eq!(e, "argument name should be less than 255 bytes, actually was 256");

        let fits = format!("{}é", "a".repeat(253));
        assert_eq!(fits.len(), 255);
        let t = table_from_json(&json!({ fits.clone(): "v" })).unwrap();
        assert_eq!(t.0[fits.as_str()], FieldValue::LongString(b"v".to_vec()));
    }
}
