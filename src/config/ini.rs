//! A small INI reader, enough for LavinMQ's `lavinmq.ini`.
//!
//! The grammar is the one Crystal's `INI.parse` accepts (LavinMQ reads its file with
//! it): `[section]` headers, `key = value` pairs, and whole-line comments starting
//! with `#` or `;`. There are no inline comments on purpose: a value such as a
//! password or a password hash may contain `#` or `;`, and LavinMQ keeps them.
//! Keys and values are trimmed; a later duplicate key wins when applied.

/// One meaningful line of the file, in file order. Lines are 1-based.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Item<'a> {
    Section { line: usize, name: &'a str },
    Pair { line: usize, key: &'a str, value: &'a str },
}

/// A line that is not a comment, a header or a pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SyntaxError {
    pub line: usize,
    pub message: &'static str,
}

/// Splits `text` into section headers and pairs. Pairs before the first header are
/// an error: LavinMQ would reject them as the unnamed section "".
pub(crate) fn parse(text: &str) -> Result<Vec<Item<'_>>, SyntaxError> {
    let mut items = Vec::new();
    let mut in_section = false;
    for (index, raw) in text.lines().enumerate() {
        let line = index + 1;
        // A UTF-8 byte order mark from Windows editors is not part of the first line.
        let raw = if line == 1 {
            raw.trim_start_matches('\u{feff}')
        } else {
            raw
        };
        let trimmed = raw.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix('[') {
            let Some(name) = rest.strip_suffix(']') else {
                return Err(SyntaxError {
                    line,
                    message: "section header without a closing ']'",
                });
            };
            let name = name.trim();
            if name.is_empty() {
                return Err(SyntaxError {
                    line,
                    message: "empty section name",
                });
            }
            in_section = true;
            items.push(Item::Section { line, name });
            continue;
        }
        let Some((key, value)) = trimmed.split_once('=') else {
            return Err(SyntaxError {
                line,
                message: "expected `key = value`, `[section]` or a comment",
            });
        };
        let key = key.trim();
        if key.is_empty() {
            return Err(SyntaxError {
                line,
                message: "empty key before '='",
            });
        }
        if !in_section {
            return Err(SyntaxError {
                line,
                message: "key outside of any [section]",
            });
        }
        items.push(Item::Pair {
            line,
            key,
            value: value.trim(),
        });
    }
    Ok(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_pairs_and_comments() {
        let text = "\u{feff}# top comment\n\n[main]\ndata_dir = /var/lib/x\n; another\n  [amqp]  \n port=5673 \nempty =\npassword = a#b;c\n";
        let items = parse(text).unwrap();
        assert_eq!(
            items,
            vec![
                Item::Section { line: 3, name: "main" },
                Item::Pair {
                    line: 4,
                    key: "data_dir",
                    value: "/var/lib/x"
                },
                Item::Section { line: 6, name: "amqp" },
                Item::Pair {
                    line: 7,
                    key: "port",
                    value: "5673"
                },
                Item::Pair {
                    line: 8,
                    key: "empty",
                    value: ""
                },
                Item::Pair {
                    line: 9,
                    key: "password",
                    value: "a#b;c"
                },
            ]
        );
    }

    #[test]
    fn value_may_contain_equals() {
        let items = parse("[main]\nk = a=b\n").unwrap();
        assert_eq!(
            items[1],
            Item::Pair {
                line: 2,
                key: "k",
                value: "a=b"
            }
        );
    }

    #[test]
    fn errors_carry_the_line() {
        assert_eq!(parse("[main]\nnot a pair\n").unwrap_err().line, 2);
        assert_eq!(parse("\n[main\n").unwrap_err().line, 2);
        assert_eq!(parse("[]\n").unwrap_err().line, 1);
        assert_eq!(parse("[main]\n = 1\n").unwrap_err().line, 2);
        assert_eq!(parse("port = 1\n[main]\n").unwrap_err().line, 1);
    }
}
