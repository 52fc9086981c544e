//! The command table and the options: what `--help`, the parser and the shell
//! completion scripts are all made from.

pub struct OptSpec {
    pub long: &'static str,
    /// Single-letter forms, the first shown in help.
    pub shorts: &'static [char],
    /// The value's name in help; `None` for a flag.
    pub value: Option<&'static str>,
    pub help: &'static str,
}

const fn opt(long: &'static str, value: Option<&'static str>, help: &'static str) -> OptSpec {
    OptSpec {
        long,
        shorts: &[],
        value,
        help,
    }
}

const fn short(
    shorts: &'static [char],
    long: &'static str,
    value: Option<&'static str>,
    help: &'static str,
) -> OptSpec {
    OptSpec {
        long,
        shorts,
        value,
        help,
    }
}

/// As rabbitmqctl and lavinmqctl: `-p` is the vhost. The password has no short
/// form (`--password`, as RabbitMQ's CLI and lavinmqctl spell it); `-V` is
/// rabbitmqadmin's vhost flag, `-U` and `-P` lavinmqctl's URI and port.
pub const GLOBAL_OPTS: &[OptSpec] = &[
    short(
        &['U'],
        "uri",
        Some("URI"),
        "management API base (default: the broker's control socket if one answers, see --socket, else http://127.0.0.1:15672)",
    ),
    opt("host", Some("HOST"), "replaces the host of --uri"),
    short(&['P'], "port", Some("PORT"), "replaces the port of --uri"),
    opt(
        "socket",
        Some("PATH"),
        "the API on this Unix socket (the broker's --http-unix-path or --control-unix-path) instead of TCP; without --uri, --host, --port or --socket, the broker's control socket is tried first: $RINGMQCTL_CONTROL_UNIX_PATH, else /run/ringmq/ringmqctl.sock",
    ),
    short(&['u'], "user", Some("USER"), "user (default guest)"),
    opt("password", Some("PASSWORD"), "password (default guest)"),
    short(&['p', 'V'], "vhost", Some("VHOST"), "virtual host (default /)"),
    opt("json", None, "print the API's JSON instead of a table"),
    opt(
        "timeout",
        Some("SECS"),
        "request timeout in seconds (default 60; await_startup's whole wait)",
    ),
    short(&['h'], "help", None, "help (per command too)"),
    opt("version", None, "print the version"),
];

pub const COMMAND_OPTS: &[OptSpec] = &[
    opt(
        "columns",
        Some("A,B"),
        "columns to show (dotted paths into the JSON rows)",
    ),
    opt("all-vhosts", None, "list every vhost instead of --vhost"),
    opt("tags", Some("A,B"), "user tags, comma-separated"),
    opt("description", Some("TEXT"), "vhost description"),
    opt("priority", Some("N"), "policy priority (default 0)"),
    opt("apply-to", Some("WHAT"), "queues, exchanges or all (default all)"),
    opt("durable", None, "survive a broker restart"),
    opt("auto-delete", None, "delete when the last consumer/binding goes"),
    opt("internal", None, "exchange takes no publishes from clients"),
    opt("arguments", Some("JSON"), "x-arguments as a JSON object"),
    opt("if-unused", None, "only delete when unused"),
    opt("if-empty", None, "only delete when empty"),
    opt("destination-type", Some("T"), "queue (default) or exchange"),
    opt("routing-key", Some("KEY"), "binding routing key (default empty)"),
    opt("properties", Some("JSON"), "message properties as a JSON object"),
    opt("count", Some("N"), "messages to get (default 1)"),
    opt("ack", None, "remove the messages got (default: requeue them)"),
];

pub struct CommandSpec {
    pub name: &'static str,
    /// Positional arguments as shown in help.
    pub args: &'static str,
    pub min_args: usize,
    /// `None`: any number from `min_args` on.
    pub max_args: Option<usize>,
    pub opts: &'static [&'static str],
    pub about: &'static str,
}

const fn cmd(
    name: &'static str,
    args: &'static str,
    (min_args, max_args): (usize, Option<usize>),
    opts: &'static [&'static str],
    about: &'static str,
) -> CommandSpec {
    CommandSpec {
        name,
        args,
        min_args,
        max_args,
        opts,
        about,
    }
}

const fn n(k: usize) -> (usize, Option<usize>) {
    (k, Some(k))
}

pub const COMMANDS: &[CommandSpec] = &[
    cmd("status", "", n(0), &[], "version, uptime, object totals, message rates"),
    cmd(
        "ping",
        "[HOST[:PORT]|SOCKET]",
        (0, Some(1)),
        &[],
        "health check without login: the AMQP listener (default 127.0.0.1:5672, or a Unix socket's path) answers the protocol header",
    ),
    cmd("whoami", "", n(0), &[], "the authenticated user and its tags"),
    cmd(
        "cluster_status",
        "",
        n(0),
        &[],
        "the cluster's nodes: role, in the in-sync replica set, replication lag",
    ),
    cmd(
        "list",
        "KIND",
        n(1),
        &["columns", "all-vhosts"],
        "list objects of one kind (see below)",
    ),
    cmd("add_user", "NAME PASSWORD", n(2), &["tags"], "create a user"),
    cmd("delete_user", "NAME", n(1), &[], "delete a user"),
    cmd(
        "change_password",
        "NAME PASSWORD",
        n(2),
        &[],
        "set a user's password, keep its tags",
    ),
    cmd(
        "set_user_tags",
        "NAME [TAG...]",
        (1, None),
        &[],
        "replace a user's tags (none: clear)",
    ),
    cmd(
        "set_permissions",
        "USER CONF WRITE READ",
        n(4),
        &[],
        "set permission regexes in --vhost",
    ),
    cmd(
        "clear_permissions",
        "USER",
        n(1),
        &[],
        "remove a user's permissions in --vhost",
    ),
    cmd(
        "set_topic_permissions",
        "USER EXCHANGE WRITE READ",
        n(4),
        &[],
        "set topic permission regexes (routing keys) on a topic exchange in --vhost",
    ),
    cmd(
        "clear_topic_permissions",
        "USER [EXCHANGE]",
        (1, Some(2)),
        &[],
        "remove a user's topic permissions in --vhost (all, or one exchange's)",
    ),
    cmd("add_vhost", "NAME", n(1), &["description"], "create a virtual host"),
    cmd("delete_vhost", "NAME", n(1), &[], "delete a virtual host and all in it"),
    cmd(
        "set_policy",
        "NAME PATTERN DEFINITION_JSON",
        n(3),
        &["priority", "apply-to"],
        "set a policy in --vhost",
    ),
    cmd("clear_policy", "NAME", n(1), &[], "delete a policy in --vhost"),
    cmd(
        "set_operator_policy",
        "NAME PATTERN DEFINITION_JSON",
        n(3),
        &["priority", "apply-to"],
        "set an operator policy in --vhost",
    ),
    cmd(
        "clear_operator_policy",
        "NAME",
        n(1),
        &[],
        "delete an operator policy in --vhost",
    ),
    cmd(
        "set_vhost_limits",
        "JSON",
        n(1),
        &[],
        "set limits of --vhost, e.g. '{\"max-queues\": 100, \"max-connections\": 10}'",
    ),
    cmd("clear_vhost_limits", "", n(0), &[], "remove all limits of --vhost"),
    cmd(
        "export_definitions",
        "FILE|-",
        n(1),
        &[],
        "write definitions (all, or --vhost) to a file",
    ),
    cmd(
        "import_definitions",
        "FILE|-",
        n(1),
        &[],
        "load definitions (all, or --vhost) from a file",
    ),
    cmd(
        "close_connection",
        "NAME [REASON]",
        (1, Some(2)),
        &[],
        "close a client connection",
    ),
    cmd(
        "declare_queue",
        "NAME",
        n(1),
        &["durable", "auto-delete", "arguments"],
        "declare a queue",
    ),
    cmd("purge_queue", "NAME", n(1), &[], "remove a queue's ready messages"),
    cmd(
        "delete_queue",
        "NAME",
        n(1),
        &["if-unused", "if-empty"],
        "delete a queue",
    ),
    cmd(
        "declare_exchange",
        "NAME TYPE",
        n(2),
        &["durable", "auto-delete", "internal", "arguments"],
        "declare an exchange",
    ),
    cmd("delete_exchange", "NAME", n(1), &["if-unused"], "delete an exchange"),
    cmd(
        "declare_binding",
        "SOURCE DESTINATION",
        n(2),
        &["destination-type", "routing-key", "arguments"],
        "bind a queue (or exchange) to an exchange",
    ),
    cmd(
        "publish",
        "EXCHANGE ROUTING_KEY PAYLOAD",
        n(3),
        &["properties"],
        "publish one message (EXCHANGE \"\" is the default exchange)",
    ),
    cmd("get", "QUEUE", n(1), &["count", "ack"], "get messages from a queue"),
    cmd(
        "delete_binding",
        "SOURCE DESTINATION",
        n(2),
        &["destination-type", "routing-key", "arguments"],
        "remove a binding (the one with --routing-key and --arguments)",
    ),
    cmd(
        "pause_queue",
        "NAME",
        n(1),
        &[],
        "stop deliveries to a queue's consumers until resumed",
    ),
    cmd("resume_queue", "NAME", n(1), &[], "resume a paused queue"),
    cmd(
        "close_all_connections",
        "[REASON]",
        (0, Some(1)),
        &[],
        "close every client connection (only --vhost's when it is given)",
    ),
    cmd(
        "set_user_limits",
        "USER JSON",
        n(2),
        &[],
        "set a user's limits, e.g. '{\"max-connections\": 10, \"max-channels\": 100}'",
    ),
    cmd(
        "clear_user_limits",
        "USER [LIMIT|all]",
        (1, Some(2)),
        &[],
        "remove one of a user's limits, or all (the default)",
    ),
    cmd(
        "set_parameter",
        "COMPONENT NAME JSON",
        n(3),
        &[],
        "set a runtime parameter (federation-upstream, shovel, ...) in --vhost",
    ),
    cmd(
        "clear_parameter",
        "COMPONENT NAME",
        n(2),
        &[],
        "remove a runtime parameter in --vhost",
    ),
    cmd(
        "hash_password",
        "PASSWORD",
        n(1),
        &[],
        "print a salted SHA-256 hash for users.json or definitions (no broker needed)",
    ),
    cmd(
        "await_startup",
        "",
        n(0),
        &[],
        "wait until the management API answers (up to --timeout seconds)",
    ),
    cmd(
        "completion",
        "bash|zsh|fish",
        n(1),
        &[],
        "print a shell completion script (e.g. `source <(ringmqctl completion bash)`)",
    ),
];

pub fn find_command(name: &str) -> Option<&'static CommandSpec> {
    COMMANDS.iter().find(|c| c.name == name)
}
