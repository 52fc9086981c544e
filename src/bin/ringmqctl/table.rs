//! Aligned text tables from JSON objects: a column is a dotted path into each row
//! (`message_stats.publish_details.rate`), numbers are right-aligned.

use serde_json::Value;

/// The value at a dotted path, or `None` where a step is missing.
pub fn lookup<'a>(row: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(v) = row.get(path) {
        // Keys such as `apply-to` or a literal dotted key win over the path reading.
        return Some(v);
    }
    path.split('.').try_fold(row, |v, key| v.get(key))
}

/// One cell: strings bare, arrays of scalars joined by commas, objects as compact JSON,
/// rates to at most two decimals, control characters escaped so a row stays one line.
pub fn cell(v: Option<&Value>) -> String {
    let text = match v {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => i.to_string(),
            (_, Some(u), _) => u.to_string(),
            (_, _, Some(f)) => format_float(f),
            _ => n.to_string(),
        },
        Some(Value::Array(items)) if items.iter().all(|i| !i.is_object() && !i.is_array()) => {
            items.iter().map(|i| cell(Some(i))).collect::<Vec<_>>().join(",")
        }
        Some(other) => other.to_string(),
    };
    escape_controls(&text)
}

fn format_float(f: f64) -> String {
    let s = format!("{f:.2}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() || s == "-" {
        "0".into()
    } else {
        s.to_string()
    }
}

fn escape_controls(s: &str) -> String {
    if !s.chars().any(char::is_control) {
        return s.to_string();
    }
    s.chars()
        .map(|c| match c {
            '\n' => "\\n".to_string(),
            '\r' => "\\r".to_string(),
            '\t' => "\\t".to_string(),
            c if c.is_control() => format!("\\u{{{:x}}}", c as u32),
            c => c.to_string(),
        })
        .collect()
}

/// The rows of a list reply: a plain array, or the paged shape `{"items": [...]}`.
pub fn rows(reply: &Value) -> Vec<Value> {
    match reply {
        Value::Array(items) => items.clone(),
        Value::Object(o) => match o.get("items") {
            Some(Value::Array(items)) => items.clone(),
            _ => vec![reply.clone()],
        },
        Value::Null => Vec::new(),
        other => vec![other.clone()],
    }
}

/// Renders the header and one line per row; columns are separated by two spaces, the
/// last column is not padded (no trailing blanks).
pub fn render(columns: &[String], rows: &[Value]) -> String {
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| columns.iter().map(|c| cell(lookup(r, c))).collect())
        .collect();
    render_cells(columns, &cells)
}

pub fn render_cells(columns: &[String], cells: &[Vec<String>]) -> String {
    let width = |s: &str| s.chars().count();
    let mut widths: Vec<usize> = columns.iter().map(|c| width(c)).collect();
    let mut numeric = vec![true; columns.len()];
    for row in cells {
        for (i, c) in row.iter().enumerate() {
            widths[i] = widths[i].max(width(c));
            if !c.is_empty() && c.parse::<f64>().is_err() {
                numeric[i] = false;
            }
        }
    }
    let mut out = String::new();
    let mut line = |row: &[String], is_header: bool| {
        let mut text = String::new();
        for (i, c) in row.iter().enumerate() {
            let last = i + 1 == row.len();
            let pad = widths[i] - width(c);
            if i > 0 {
                text.push_str("  ");
            }
            if numeric[i] && !is_header {
                text.push_str(&" ".repeat(pad));
                text.push_str(c);
            } else {
                text.push_str(c);
                if !last {
                    text.push_str(&" ".repeat(pad));
                }
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(columns, true);
    for row in cells {
        line(row, false);
    }
    out
}

/// `key: value` lines with the values aligned, for single objects (`status`).
pub fn render_pairs(pairs: &[(String, String)]) -> String {
    let w = pairs.iter().map(|(k, _)| k.chars().count()).max().unwrap_or(0);
    pairs
        .iter()
        .map(|(k, v)| format!("{k:<w$}  {v}\n", w = w + 1, k = format!("{k}:")))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn cols(c: &[&str]) -> Vec<String> {
        c.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn lookup_follows_dotted_paths_and_prefers_literal_keys() {
        let row = json!({"a": {"b": {"c": 1}}, "apply-to": "queues", "x.y": 2, "x": {"y": 3}});
        assert_eq!(lookup(&row, "a.b.c"), Some(&json!(1)));
        assert_eq!(lookup(&row, "apply-to"), Some(&json!("queues")));
        assert_eq!(lookup(&row, "x.y"), Some(&json!(2)));
        assert_eq!(lookup(&row, "a.z"), None);
    }

    #[test]
    fn cells_format_each_json_kind() {
        assert_eq!(cell(None), "");
        assert_eq!(cell(Some(&json!(null))), "");
        assert_eq!(cell(Some(&json!("q"))), "q");
        assert_eq!(cell(Some(&json!(true))), "true");
        assert_eq!(cell(Some(&json!(42))), "42");
        assert_eq!(cell(Some(&json!(1.23456))), "1.23");
        assert_eq!(cell(Some(&json!(2.0))), "2");
        assert_eq!(cell(Some(&json!(0.0))), "0");
        assert_eq!(
            cell(Some(&json!(["administrator", "monitoring"]))),
            "administrator,monitoring"
        );
        assert_eq!(cell(Some(&json!({"x-max-length": 10}))), r#"{"x-max-length":10}"#);
        assert_eq!(cell(Some(&json!("a\nb\tc"))), "a\\nb\\tc");
    }

    #[test]
    fn tables_align_and_right_align_numbers() {
        let rows = vec![
            json!({"name": "a", "messages": 5, "durable": true}),
            json!({"name": "long-name", "messages": 12345, "durable": false}),
        ];
        let out = render(&cols(&["name", "messages", "durable"]), &rows);
        assert_eq!(
            out,
            "name       messages  durable\n\
             a                 5  true\n\
             long-name     12345  false\n"
        );
    }

    #[test]
    fn empty_list_prints_the_header_and_missing_cells_are_blank() {
        assert_eq!(render(&cols(&["name", "vhost"]), &[]), "name  vhost\n");
        let out = render(&cols(&["name", "state", "x"]), &[json!({"name": "q", "x": 1})]);
        assert_eq!(out, "name  state  x\nq            1\n");
    }

    #[test]
    fn paged_and_plain_replies_give_rows() {
        assert_eq!(rows(&json!([1, 2])).len(), 2);
        assert_eq!(rows(&json!({"items": [1], "page": 1})).len(), 1);
        assert!(rows(&Value::Null).is_empty());
    }

    #[test]
    fn pairs_align_values() {
        let out = render_pairs(&[("a".into(), "1".into()), ("long".into(), "2".into())]);
        assert_eq!(out, "a:     1\nlong:  2\n");
    }
}
