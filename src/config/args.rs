//! The command line against the settings table of `flags`: splitting the
//! arguments into flags and values, and the `--help` text.

use super::flags::{flags, Flag, FLAGS};

/// One flag as written, with its value if it takes one.
#[derive(Debug, Clone)]
pub(crate) struct Given {
    pub flag: &'static Flag,
    /// How the user spelled it, for error messages (`-p` or `--amqp-port`).
    pub spelled: String,
    pub value: Option<String>,
}

/// Why the arguments could not be split into flags.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TokenError {
    Unknown(String),
    MissingValue(String),
    UnexpectedValue(String),
}

/// Splits the arguments into flags and values without applying anything, so that
/// `--help` and `-c` can be acted on before the config file is read. Accepts
/// `--long=V`, `--long V`, `-sV` and `-s V`, as Crystal's OptionParser does.
pub(crate) fn tokenize<I: IntoIterator<Item = String>>(args: I) -> Result<Vec<Given>, TokenError> {
    let mut args = args.into_iter();
    let mut out = Vec::new();
    while let Some(arg) = args.next() {
        let (flag, spelled, inline) = if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_owned())),
                None => (long, None),
            };
            let flag = flags()
                .find(|f| f.long == name)
                .ok_or_else(|| TokenError::Unknown(arg.clone()))?;
            (flag, format!("--{name}"), inline)
        } else if let Some(short) = arg.strip_prefix('-').filter(|s| !s.is_empty()) {
            let mut chars = short.chars();
            let c = chars.next().unwrap_or_default();
            let rest = chars.as_str();
            let flag = flags()
                .find(|f| f.short == Some(c))
                .ok_or_else(|| TokenError::Unknown(arg.clone()))?;
            (
                flag,
                format!("-{c}"),
                (!rest.is_empty()).then(|| rest.trim_start_matches('=').to_owned()),
            )
        } else {
            // The broker takes no positional arguments; a stray word is most likely a
            // flag value that lost its flag, so say so rather than ignore it.
            return Err(TokenError::Unknown(arg));
        };
        let takes_value = !flag.metavar.is_empty();
        let value = match (takes_value, inline) {
            (true, Some(v)) => Some(v),
            (true, None) => Some(args.next().ok_or_else(|| TokenError::MissingValue(spelled.clone()))?),
            (false, Some(_)) => return Err(TokenError::UnexpectedValue(spelled)),
            (false, None) => None,
        };
        out.push(Given { flag, spelled, value });
    }
    Ok(out)
}

/// The `--help` text.
pub(crate) fn help_text() -> String {
    let mut out = String::from("Usage: ringmq -D DIR [options]\n");
    for (group, flags) in FLAGS {
        out.push_str(&format!("\n{group}:\n"));
        for f in flags.iter().filter(|f| f.is_flag()) {
            let mut names = match f.short {
                Some(c) => format!("-{c}, --{}", f.long),
                None => format!("    --{}", f.long),
            };
            if !f.metavar.is_empty() {
                names.push('=');
                names.push_str(f.metavar);
            }
            let default = f
                .default
                .filter(|d| !d.is_empty())
                .map(|d| format!(" (default: {d})"))
                .unwrap_or_default();
            let not_yet = if f.not_yet.is_some() {
                " [not in effect yet: refused]"
            } else {
                ""
            };
            out.push_str(&format!("  {names:<40} {}{default}{not_yet}\n", f.help));
        }
    }
    out
}
