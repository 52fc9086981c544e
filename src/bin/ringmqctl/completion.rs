//! `ringmqctl completion bash|zsh|fish`: shell completion scripts made from the
//! command and option tables, so they cannot fall behind them. The parser is
//! hand-written (no clap), so there is no generator to borrow; the scripts
//! complete commands (and rabbitmqctl's `list_KIND` forms), each command's
//! options, the global options, `list` kinds and `completion` shells.
//!
//! bash: `source <(ringmqctl completion bash)`; zsh: the same with `zsh` (it
//! loads zsh's `bashcompinit` and uses the bash function); fish:
//! `ringmqctl completion fish > ~/.config/fish/completions/ringmqctl.fish`.

use std::fmt::Write as _;

use crate::error::CtlError;
use crate::lists;
use crate::spec::{OptSpec, COMMANDS, COMMAND_OPTS, GLOBAL_OPTS};

pub const SHELLS: &[&str] = &["bash", "zsh", "fish"];

pub fn script(shell: &str) -> Result<String, CtlError> {
    match shell {
        "bash" => Ok(bash()),
        "zsh" => Ok(format!(
            "#compdef ringmqctl\n# zsh: source <(ringmqctl completion zsh)\n\
             (( $+functions[compdef] )) || {{ autoload -U +X compinit && compinit }}\n\
             autoload -U +X bashcompinit && bashcompinit\n{}",
            bash()
        )),
        "fish" => Ok(fish()),
        other => Err(CtlError::Usage(format!(
            "completion: unknown shell {other:?}; one of: {}",
            SHELLS.join(", ")
        ))),
    }
}

/// `--long` and `-s` forms of options.
fn forms(opts: &[&OptSpec]) -> Vec<String> {
    let mut out = Vec::new();
    for o in opts {
        out.push(format!("--{}", o.long));
        out.extend(o.shorts.iter().map(|c| format!("-{c}")));
    }
    out
}

fn command_words() -> Vec<String> {
    let mut words: Vec<String> = COMMANDS.iter().map(|c| c.name.to_owned()).collect();
    words.extend(lists::names().iter().map(|k| format!("list_{k}")));
    words
}

fn bash() -> String {
    let globals: Vec<&OptSpec> = GLOBAL_OPTS.iter().collect();
    let with_value: Vec<&OptSpec> = GLOBAL_OPTS
        .iter()
        .chain(COMMAND_OPTS)
        .filter(|o| o.value.is_some())
        .collect();
    let mut s = String::new();
    s.push_str("# bash completion for ringmqctl: source <(ringmqctl completion bash)\n");
    s.push_str("_ringmqctl() {\n");
    s.push_str("    local cur=\"${COMP_WORDS[COMP_CWORD]}\" prev=\"${COMP_WORDS[COMP_CWORD-1]}\"\n");
    let _ = writeln!(s, "    local commands=\"{}\"", command_words().join(" "));
    let _ = writeln!(s, "    local globals=\"{}\"", forms(&globals).join(" "));
    let _ = writeln!(
        s,
        "    case \"$prev\" in\n        {}) return 0 ;;\n    esac",
        forms(&with_value).join("|")
    );
    // The command is the first word that is neither an option nor its value.
    s.push_str("    local cmd=\"\" argn=0 i w\n");
    s.push_str("    for ((i = 1; i < COMP_CWORD; i++)); do\n");
    s.push_str("        w=\"${COMP_WORDS[i]}\"\n");
    let _ = writeln!(
        s,
        "        case \"$w\" in\n            {}) ((i++)) ;;\n            -*) ;;\n            *) if [ -z \"$cmd\" ]; then cmd=\"$w\"; else ((argn++)); fi ;;\n        esac",
        forms(&with_value).join("|")
    );
    s.push_str("    done\n");
    s.push_str("    local opts=\"\"\n    case \"$cmd\" in\n");
    for c in COMMANDS.iter().filter(|c| !c.opts.is_empty()) {
        let own: Vec<&OptSpec> = COMMAND_OPTS.iter().filter(|o| c.opts.contains(&o.long)).collect();
        let _ = writeln!(s, "        {}) opts=\"{}\" ;;", c.name, forms(&own).join(" "));
    }
    s.push_str("    esac\n");
    s.push_str("    if [[ \"$cur\" == -* ]]; then\n");
    s.push_str("        COMPREPLY=($(compgen -W \"$globals $opts\" -- \"$cur\"))\n");
    s.push_str("    elif [ -z \"$cmd\" ]; then\n");
    s.push_str("        COMPREPLY=($(compgen -W \"$commands\" -- \"$cur\"))\n");
    let _ = writeln!(
        s,
        "    elif [ \"$cmd\" = list ] && [ \"$argn\" = 0 ]; then\n        COMPREPLY=($(compgen -W \"{}\" -- \"$cur\"))",
        lists::names().join(" ")
    );
    let _ = writeln!(
        s,
        "    elif [ \"$cmd\" = completion ] && [ \"$argn\" = 0 ]; then\n        COMPREPLY=($(compgen -W \"{}\" -- \"$cur\"))",
        SHELLS.join(" ")
    );
    s.push_str("    fi\n}\ncomplete -F _ringmqctl ringmqctl\n");
    s
}

/// A description in fish's single quotes.
fn quoted(text: &str) -> String {
    format!("'{}'", text.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn fish_option(s: &mut String, condition: Option<&str>, o: &OptSpec) {
    let _ = write!(s, "complete -c ringmqctl");
    if let Some(c) = condition {
        let _ = write!(s, " -n {}", quoted(c));
    }
    let _ = write!(s, " -l {}", o.long);
    for c in o.shorts {
        let _ = write!(s, " -s {c}");
    }
    if o.value.is_some() {
        s.push_str(" -r");
    }
    let _ = writeln!(s, " -d {}", quoted(o.help));
}

fn fish() -> String {
    let mut s = String::from("# fish completion for ringmqctl: ringmqctl completion fish > ~/.config/fish/completions/ringmqctl.fish\ncomplete -c ringmqctl -f\n");
    for c in COMMANDS {
        let _ = writeln!(
            s,
            "complete -c ringmqctl -n '__fish_use_subcommand' -a {} -d {}",
            c.name,
            quoted(c.about)
        );
    }
    for k in lists::names() {
        let _ = writeln!(
            s,
            "complete -c ringmqctl -n '__fish_use_subcommand' -a list_{k} -d 'list {k}'"
        );
    }
    for o in GLOBAL_OPTS {
        fish_option(&mut s, None, o);
    }
    for c in COMMANDS {
        for o in COMMAND_OPTS.iter().filter(|o| c.opts.contains(&o.long)) {
            fish_option(&mut s, Some(&format!("__fish_seen_subcommand_from {}", c.name)), o);
        }
    }
    let _ = writeln!(
        s,
        "complete -c ringmqctl -n '__fish_seen_subcommand_from list' -a {}",
        quoted(&lists::names().join(" "))
    );
    let _ = writeln!(
        s,
        "complete -c ringmqctl -n '__fish_seen_subcommand_from completion' -a {}",
        quoted(&SHELLS.join(" "))
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_name_every_command_and_option() {
        for shell in SHELLS {
            let text = script(shell).unwrap();
            for c in COMMANDS {
                assert!(text.contains(c.name), "{shell}: {}", c.name);
            }
            for o in GLOBAL_OPTS.iter().chain(COMMAND_OPTS) {
                assert!(text.contains(o.long), "{shell}: --{}", o.long);
            }
            assert!(
                text.contains("list_queues") && text.contains("topic_permissions"),
                "{shell}"
            );
        }
        assert!(matches!(script("powershell"), Err(CtlError::Usage(_))));
        // A quote in a description cannot end fish's string early.
        assert_eq!(quoted("it's"), "'it\\'s'");
    }
}
