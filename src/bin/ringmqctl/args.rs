//! The command line: global options and a hand-written parser over the tables of
//! `spec.rs`.
//! Options may come before or after the command; `--` ends options so a payload or a
//! name may start with `-`.

use std::time::Duration;

use crate::client::Endpoint;
use crate::error::CtlError;
use crate::lists;
pub use crate::spec::{find_command, CommandSpec, OptSpec, COMMANDS, COMMAND_OPTS, GLOBAL_OPTS};

pub const DEFAULT_URI: &str = "http://127.0.0.1:15672";
/// The broker's `control_unix_path` default (`config::DEFAULT_CONTROL_UNIX_PATH`):
/// tried first when no connection option is given.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/ringmq/ringmqctl.sock";
/// Another control socket path to try first (as lavinmqctl's
/// `LAVINMQCTL_CONTROL_UNIX_PATH`): a broker started with `--control-unix-path`.
pub const CONTROL_SOCKET_ENV: &str = "RINGMQCTL_CONTROL_UNIX_PATH";
const DEFAULT_TIMEOUT_SECS: u64 = 60;

#[derive(Default)]
pub struct Globals {
    pub uri: Option<String>,
    pub host: Option<String>,
    pub port: Option<u16>,
    pub user: Option<String>,
    pub password: Option<String>,
    /// `None` unless given: export/import then cover the whole broker.
    pub vhost: Option<String>,
    pub json: bool,
    pub timeout_secs: Option<u64>,
    /// `--socket PATH`: the API over this Unix socket.
    pub socket: Option<std::path::PathBuf>,
}

impl Globals {
    pub fn vhost(&self) -> &str {
        self.vhost.as_deref().unwrap_or("/")
    }

    /// The API endpoint: `--uri` (user info in it allowed), then `--host`/`--port`
    /// over its authority, then `--user`/`--password` over its user info.
    pub fn endpoint(&self) -> Result<Endpoint, CtlError> {
        if self.socket.is_some() && (self.host.is_some() || self.port.is_some()) {
            return Err(CtlError::Usage(
                "--socket replaces the API's host and port: --host and --port do not apply".into(),
            ));
        }
        let uri = self.uri.as_deref().unwrap_or(DEFAULT_URI);
        let (scheme, rest) = uri
            .split_once("://")
            .ok_or_else(|| CtlError::Usage(format!("--uri {uri}: expected http://HOST:PORT")))?;
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let (host, port) =
            split_host_port(hostport).ok_or_else(|| CtlError::Usage(format!("--uri {uri}: bad host or port")))?;
        let host = self.host.as_deref().unwrap_or(host);
        let port = self.port.or(port).unwrap_or(15672);
        let (uri_user, uri_pass) = match userinfo {
            Some(u) => match u.split_once(':') {
                Some((a, b)) => (Some(a), Some(b)),
                None => (Some(u), None),
            },
            None => (None, None),
        };
        let host = if host.contains(':') && !host.starts_with('[') {
            format!("[{host}]")
        } else {
            host.to_string()
        };
        Ok(Endpoint {
            base: format!("{scheme}://{host}:{port}{}", path.trim_end_matches('/')),
            socket: match &self.socket {
                Some(s) => Some(s.clone()),
                None if self.uri.is_none() && self.host.is_none() && self.port.is_none() => {
                    control_socket(std::env::var_os(CONTROL_SOCKET_ENV))
                }
                None => None,
            },
            user: self.user.as_deref().or(uri_user).unwrap_or("guest").to_string(),
            password: self.password.as_deref().or(uri_pass).unwrap_or("guest").to_string(),
            timeout: Duration::from_secs(self.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS)),
        })
    }
}

/// With no connection option: the broker's control socket (`env`, the
/// variable's value, else the default path) if a connect to it succeeds, else
/// None (the API over TCP at [`DEFAULT_URI`]): no socket there, a stale file, or
/// one this user may not open (mode 0660) all fall back.
fn control_socket(env: Option<std::ffi::OsString>) -> Option<std::path::PathBuf> {
    let path: std::path::PathBuf = env
        .filter(|v| !v.is_empty())
        .map(Into::into)
        .unwrap_or_else(|| DEFAULT_CONTROL_SOCKET.into());
    std::os::unix::net::UnixStream::connect(&path).ok().map(|_| path)
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`.
fn split_host_port(s: &str) -> Option<(&str, Option<u16>)> {
    let (host, port) = if let Some(rest) = s.strip_prefix('[') {
        let (h, tail) = rest.split_once(']')?;
        (h, tail.strip_prefix(':'))
    } else {
        match s.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (s, None),
        }
    };
    if host.is_empty() {
        return None;
    }
    let port = match port {
        Some(p) => Some(p.parse().ok()?),
        None => None,
    };
    Some((host, port))
}

/// Command options given, by long name; flags carry `None`.
#[derive(Default, Debug)]
pub struct Opts(Vec<(&'static str, Option<String>)>);

impl Opts {
    pub fn flag(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| *k == name)
    }

    pub fn value(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| *k == name)
            .and_then(|(_, v)| v.as_deref())
    }

    pub fn parsed<T: std::str::FromStr>(&self, name: &str) -> Result<Option<T>, CtlError> {
        self.value(name)
            .map(|v| {
                v.parse()
                    .map_err(|_| CtlError::Usage(format!("--{name} {v}: not a valid number")))
            })
            .transpose()
    }
}

pub struct Invocation {
    pub globals: Globals,
    pub command: &'static CommandSpec,
    pub args: Vec<String>,
    pub opts: Opts,
}

pub enum Parsed {
    Run(Box<Invocation>),
    /// General help, or one command's.
    Help(Option<&'static CommandSpec>),
    Version,
}

fn find_opt(table: &'static [OptSpec], long: &str) -> Option<&'static OptSpec> {
    table.iter().find(|o| o.long == long)
}

pub fn parse<I: IntoIterator<Item = String>>(argv: I) -> Result<Parsed, CtlError> {
    let mut globals = Globals::default();
    let mut opts = Opts::default();
    let mut positionals = Vec::new();
    let (mut help, mut version) = (false, false);
    let mut it = argv.into_iter();
    while let Some(arg) = it.next() {
        let (spec, inline) = if arg == "--" {
            positionals.extend(it.by_ref());
            break;
        } else if let Some(long) = arg.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v.to_string())),
                None => (long, None),
            };
            let spec = find_opt(GLOBAL_OPTS, name)
                .or_else(|| find_opt(COMMAND_OPTS, name))
                .ok_or_else(|| CtlError::Usage(format!("unknown option --{name}")))?;
            (spec, inline)
        } else if arg.len() >= 2 && arg.starts_with('-') && !arg[1..].starts_with(char::is_numeric) {
            let short = arg[1..].chars().next().unwrap_or_default();
            let spec = GLOBAL_OPTS
                .iter()
                .find(|o| o.shorts.contains(&short))
                .ok_or_else(|| CtlError::Usage(format!("unknown option -{short}")))?;
            let rest = &arg[1 + short.len_utf8()..];
            (spec, (!rest.is_empty()).then(|| rest.to_string()))
        } else {
            positionals.push(arg);
            continue;
        };
        let value = match (spec.value, inline) {
            (None, None) => None,
            (None, Some(_)) => {
                return Err(CtlError::Usage(format!("--{} takes no value", spec.long)));
            }
            (Some(_), Some(v)) => Some(v),
            (Some(name), None) => Some(
                it.next()
                    .ok_or_else(|| CtlError::Usage(format!("--{} needs a value ({name})", spec.long)))?,
            ),
        };
        match spec.long {
            "uri" => globals.uri = value,
            "host" => globals.host = value,
            "port" => globals.port = Some(number("port", value)?),
            "user" => globals.user = value,
            "password" => globals.password = value,
            "vhost" => globals.vhost = value,
            "json" => globals.json = true,
            "timeout" => globals.timeout_secs = Some(number("timeout", value)?),
            "socket" => globals.socket = value.map(Into::into),
            "help" => help = true,
            "version" => version = true,
            long => opts.0.push((long, value)),
        }
    }
    finish(globals, opts, positionals, help, version)
}

fn number<T: std::str::FromStr>(name: &str, value: Option<String>) -> Result<T, CtlError> {
    let v = value.unwrap_or_default();
    v.parse()
        .map_err(|_| CtlError::Usage(format!("--{name} {v}: not a valid number")))
}

fn finish(
    globals: Globals,
    opts: Opts,
    mut positionals: Vec<String>,
    help: bool,
    version: bool,
) -> Result<Parsed, CtlError> {
    if version {
        return Ok(Parsed::Version);
    }
    if positionals.is_empty() {
        return if help {
            Ok(Parsed::Help(None))
        } else {
            Err(CtlError::Usage("no command given".into()))
        };
    }
    let name = positionals.remove(0);
    if name == "help" {
        return match positionals.first() {
            None => Ok(Parsed::Help(None)),
            Some(c) => Ok(Parsed::Help(Some(resolve(c, &mut Vec::new())?))),
        };
    }
    let command = resolve(&name, &mut positionals)?;
    if help {
        return Ok(Parsed::Help(Some(command)));
    }
    for (long, _) in &opts.0 {
        if !command.opts.contains(long) {
            return Err(CtlError::Usage(format!(
                "{}: option --{long} does not apply",
                command.name
            )));
        }
    }
    let count = positionals.len();
    if count < command.min_args || command.max_args.is_some_and(|m| count > m) {
        return Err(CtlError::Usage(format!(
            "{}: wrong number of arguments; usage: ringmqctl {} {}",
            command.name, command.name, command.args
        )));
    }
    if command.name == "list" && lists::find(&positionals[0]).is_none() {
        return Err(CtlError::Usage(format!(
            "list: unknown kind {:?}; one of: {}",
            positionals[0],
            lists::names().join(", ")
        )));
    }
    Ok(Parsed::Run(Box::new(Invocation {
        globals,
        command,
        args: positionals,
        opts,
    })))
}

/// rabbitmqctl's status commands of plugins, as the lists they are here.
const STATUS_ALIASES: &[(&str, &str)] = &[("federation_status", "federation_links"), ("shovel_status", "shovels")];

/// The command by name; rabbitmqctl's `list_queues` is `list queues`,
/// `federation_status` is `list federation_links`.
fn resolve(name: &str, positionals: &mut Vec<String>) -> Result<&'static CommandSpec, CtlError> {
    if let Some((_, kind)) = STATUS_ALIASES.iter().find(|(alias, _)| *alias == name) {
        positionals.insert(0, kind.to_string());
        return Ok(find_command("list").expect("list is a command"));
    }
    if let Some(kind) = name.strip_prefix("list_").filter(|k| lists::find(k).is_some()) {
        positionals.insert(0, kind.to_string());
        return Ok(find_command("list").expect("list is a command"));
    }
    find_command(name)
        .ok_or_else(|| CtlError::Usage(format!("unknown command {name:?}; `ringmqctl --help` lists them")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Invocation, CtlError> {
        match parse(args.iter().map(|s| s.to_string()))? {
            Parsed::Run(inv) => Ok(*inv),
            _ => panic!("expected a command"),
        }
    }

    fn usage_error(args: &[&str]) -> String {
        match parse(args.iter().map(|s| s.to_string())) {
            Err(CtlError::Usage(m)) => m,
            Err(other) => panic!("expected a usage error, got {other:?}"),
            Ok(_) => panic!("expected a usage error for {args:?}"),
        }
    }

    #[test]
    fn globals_anywhere_and_command_options() {
        let inv = run(&[
            "-u",
            "admin",
            "add_user",
            "bob",
            "secret",
            "--tags=a,b",
            "--json",
            "--password=secret2",
        ])
        .unwrap();
        assert_eq!(inv.command.name, "add_user");
        assert_eq!(inv.args, ["bob", "secret"]);
        assert_eq!(inv.opts.value("tags"), Some("a,b"));
        assert_eq!(inv.globals.user.as_deref(), Some("admin"));
        assert_eq!(inv.globals.password.as_deref(), Some("secret2"));
        assert!(inv.globals.json);
        assert_eq!(inv.globals.vhost(), "/");
    }

    #[test]
    fn p_is_the_vhost_as_in_rabbitmqctl_and_lavinmqctl() {
        let inv = run(&["-p", "v1", "list_queues"]).unwrap();
        assert_eq!(inv.globals.vhost(), "v1");
        assert_eq!(inv.globals.password, None);
        let inv = run(&["list_queues", "-pv2"]).unwrap();
        assert_eq!(inv.globals.vhost(), "v2");
        // rabbitmqadmin's -V, lavinmqctl's -U and -P.
        let inv = run(&["-V", "v3", "-U", "http://h:1", "-P", "2", "status"]).unwrap();
        assert_eq!(inv.globals.vhost(), "v3");
        assert_eq!(inv.globals.endpoint().unwrap().base, "http://h:2");
    }

    #[test]
    fn double_dash_ends_options() {
        let inv = run(&["publish", "--", "", "rk", "--not-an-option"]).unwrap();
        assert_eq!(inv.args, ["", "rk", "--not-an-option"]);
        let inv = run(&["publish", "", "rk", "-1"]).unwrap();
        assert_eq!(inv.args[2], "-1");
    }

    #[test]
    fn list_aliases_and_kinds() {
        let inv = run(&["federation_status"]).unwrap();
        assert_eq!((inv.command.name, inv.args[0].as_str()), ("list", "federation_links"));
        let inv = run(&["list_queues", "--columns", "name,messages"]).unwrap();
        assert_eq!((inv.command.name, inv.args[0].as_str()), ("list", "queues"));
        assert_eq!(inv.opts.value("columns"), Some("name,messages"));
        assert!(usage_error(&["list", "nonsense"]).contains("unknown kind"));
    }

    #[test]
    fn usage_errors() {
        assert!(usage_error(&[]).contains("no command"));
        assert!(usage_error(&["frobnicate"]).contains("unknown command"));
        assert!(usage_error(&["status", "--bogus"]).contains("unknown option"));
        assert!(usage_error(&["status", "--tags", "x"]).contains("does not apply"));
        assert!(usage_error(&["add_user", "bob"]).contains("wrong number"));
        assert!(usage_error(&["delete_user", "a", "b"]).contains("wrong number"));
        assert!(usage_error(&["add_user", "bob", "pw", "--tags"]).contains("needs a value"));
        assert!(usage_error(&["declare_queue", "q", "--durable=yes"]).contains("takes no value"));
        assert!(usage_error(&["status", "--port", "x"]).contains("not a valid number"));
    }

    #[test]
    fn help_forms() {
        let p = |a: &[&str]| parse(a.iter().map(|s| s.to_string())).ok().unwrap();
        assert!(matches!(p(&["--help"]), Parsed::Help(None)));
        assert!(matches!(p(&["help"]), Parsed::Help(None)));
        assert!(matches!(p(&["help", "add_user"]), Parsed::Help(Some(c)) if c.name == "add_user"));
        assert!(matches!(p(&["add_user", "-h"]), Parsed::Help(Some(c)) if c.name == "add_user"));
        assert!(matches!(p(&["list_users", "--help"]), Parsed::Help(Some(c)) if c.name == "list"));
        assert!(matches!(p(&["--version"]), Parsed::Version));
    }

    #[test]
    fn endpoint_from_uri_host_port_and_credentials() {
        let g = Globals::default();
        let e = g.endpoint().unwrap();
        assert_eq!(
            (e.base.as_str(), e.user.as_str(), e.password.as_str()),
            (DEFAULT_URI, "guest", "guest")
        );

        let g = Globals {
            uri: Some("http://u:pw@example:1234/prefix/".into()),
            ..Globals::default()
        };
        let e = g.endpoint().unwrap();
        assert_eq!(
            (e.base.as_str(), e.user.as_str(), e.password.as_str()),
            ("http://example:1234/prefix", "u", "pw")
        );

        let g = Globals {
            uri: Some("http://u:pw@example:1234".into()),
            host: Some("::1".into()),
            port: Some(99),
            user: Some("admin".into()),
            ..Globals::default()
        };
        let e = g.endpoint().unwrap();
        assert_eq!(
            (e.base.as_str(), e.user.as_str(), e.password.as_str()),
            ("http://[::1]:99", "admin", "pw")
        );

        let g = Globals {
            uri: Some("http://[::1]".into()),
            ..Globals::default()
        };
        assert_eq!(g.endpoint().unwrap().base, "http://[::1]:15672");
        let g = Globals {
            uri: Some("127.0.0.1:15672".into()),
            ..Globals::default()
        };
        assert!(matches!(g.endpoint(), Err(CtlError::Usage(_))));
        let g = Globals {
            uri: Some("http://h:notaport".into()),
            ..Globals::default()
        };
        assert!(matches!(g.endpoint(), Err(CtlError::Usage(_))));
    }

    #[test]
    fn the_control_socket_only_when_something_listens_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ctl.sock");
        let env = || Some(path.clone().into_os_string());
        assert_eq!(control_socket(env()), None, "no file");
        drop(std::os::unix::net::UnixListener::bind(&path).unwrap());
        assert_eq!(control_socket(env()), None, "a stale file");
        std::fs::remove_file(&path).unwrap();
        let _live = std::os::unix::net::UnixListener::bind(&path).unwrap();
        assert_eq!(control_socket(env()), Some(path.clone()));
        // An option that names the endpoint: no socket is tried.
        let g = Globals {
            port: Some(1),
            ..Globals::default()
        };
        assert_eq!(g.endpoint().unwrap().socket, None);
    }

    #[test]
    fn socket_replaces_host_and_port_only() {
        let inv = run(&["--socket", "/run/ringmq/http.sock", "-u", "a", "list", "queues"]).unwrap();
        let e = inv.globals.endpoint().unwrap();
        assert_eq!(e.socket.as_deref(), Some(std::path::Path::new("/run/ringmq/http.sock")));
        assert_eq!(e.user, "a");
        assert_eq!(e.describe(), "the API on /run/ringmq/http.sock");
        let inv = run(&["--socket=/s", "--port", "1", "list", "queues"]).unwrap();
        assert!(matches!(inv.globals.endpoint(), Err(CtlError::Usage(m)) if m.contains("--socket")));
    }
}
