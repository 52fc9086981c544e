//! The walls between the broker's modules (issue 17), checked over the source
//! tree as text: a `use` or path that crosses a wall fails this test with the
//! offending `file:line`s. Each wall is one function; add new walls the same
//! way and call them from their own `#[test]`.
//!
//! The checks read code, not comments: a line's `//` comment is dropped first,
//! so a doc comment may name a module it does not import.

use std::path::{Path, PathBuf};

/// One line of Rust source under `src/`.
struct Line {
    /// Relative to the crate root, for the failure message.
    file: PathBuf,
    number: usize,
    /// The line without its `//` comment.
    code: String,
}

/// Every `.rs` file under `dir` (relative to the crate root; or that one
/// file), line by line.
fn lines_under(dir: &str) -> Vec<Line> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    if root.join(dir).is_file() {
        files.push(root.join(dir));
    } else {
        collect_rs(&root.join(dir), &mut files);
    }
    assert!(!files.is_empty(), "no .rs files under {dir}: has the tree moved?");
    files.sort();
    let mut out = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let file = path.strip_prefix(root).expect("under the root").to_path_buf();
        for (i, line) in text.lines().enumerate() {
            out.push(Line {
                file: file.clone(),
                number: i + 1,
                code: without_comment(line).to_owned(),
            });
        }
    }
    out
}

fn collect_rs(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            collect_rs(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code before a `//` comment (a `//` inside a string literal is rare in
/// these paths' neighbourhood, and would only hide, never invent, a finding).
fn without_comment(line: &str) -> &str {
    line.find("//").map_or(line, |i| &line[..i])
}

/// Whether `path` starts `code` as a whole path (`crate::io` starts
/// `crate::io::Shared` and `crate::io;`, not `crate::iox`; a `path` that ends
/// in punctuation, as `crate::{`, needs no boundary).
fn starts_path(code: &str, path: &str) -> bool {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    code.strip_prefix(path)
        .is_some_and(|rest| !path.ends_with(ident) || !rest.starts_with(ident))
}

/// Whether `code` names `forbidden` anywhere other than as the start of one of
/// the `allowed` longer paths.
fn crosses(code: &str, forbidden: &str, allowed: &[&str]) -> bool {
    code.match_indices(forbidden).any(|(i, _)| {
        let at = &code[i..];
        starts_path(at, forbidden) && !allowed.iter().any(|a| starts_path(at, a))
    })
}

/// Lines under `dir` that cross: `file:line: code`, for the failure message.
fn crossings(dir: &str, forbidden: &str, allowed: &[&str]) -> Vec<String> {
    lines_under(dir)
        .into_iter()
        .filter(|l| crosses(&l.code, forbidden, allowed))
        .map(|l| format!("{}:{}: {}", l.file.display(), l.number, l.code.trim()))
        .collect()
}

fn assert_no_crossings(wall: &str, found: Vec<String>) {
    assert!(
        found.is_empty(),
        "wall broken: {wall}\n{} offending line(s):\n  {}",
        found.len(),
        found.join("\n  ")
    );
}

/// `src/http` touches the core only through its management seam.
fn http_reaches_the_core_only_through_mgmt() {
    let allowed = ["crate::core::mgmt", "crate::core::Broker", "crate::core::CoreConfig"];
    let mut found = crossings("src/http", "crate::core", &allowed);
    // `http` has no `core` module of its own: `super::core` can only be the crate's.
    found.extend(crossings("src/http", "super::core", &[]));
    assert_no_crossings(
        "src/http uses the core only through crate::core::mgmt (and Broker, CoreConfig as handles)",
        found,
    );
}

/// `http` and `io` do not import each other (both use `crate::shard` and `crate::sys`).
fn http_and_io_do_not_import_each_other() {
    let mut found = crossings("src/http", "crate::io", &[]);
    found.extend(crossings("src/http", "super::io", &[]));
    assert_no_crossings("src/http does not import crate::io", found);
    let mut found = crossings("src/io", "crate::http", &[]);
    found.extend(crossings("src/io", "super::http", &[]));
    assert_no_crossings("src/io does not import crate::http", found);
}

/// The checks above see paths written out: a grouped import from the crate
/// root (`use crate::{core::model, ..}`) would hide one, so the walled folders
/// do not use them.
fn walled_folders_write_crate_paths_out() {
    for dir in ["src/http", "src/io"] {
        assert_no_crossings(
            &format!("{dir} writes crate paths out (no `crate::{{..}}` groups)"),
            crossings(dir, "crate::{", &[]),
        );
    }
}

#[test]
fn http_core_wall() {
    http_reaches_the_core_only_through_mgmt();
}

#[test]
fn http_io_wall() {
    http_and_io_do_not_import_each_other();
}

#[test]
fn walled_paths_are_visible() {
    walled_folders_write_crate_paths_out();
}

/// The model is protocol-neutral and at the bottom: it knows no AMQP session,
/// broker, io contract, management seam, access rules, definitions log or
/// policy operations (the policies it applies are its own types,
/// `model::policy`; validating and changing them is `core::policy`'s). Its
/// state is `model::Model`; `Broker` holds it beside the connections, and what
/// the model cannot do itself (delete an expired queue's consumers, raise the
/// disk alarm) it reports to its caller.
fn the_model_imports_nothing_of_the_core_but_itself() {
    // `pub(in crate::core)` is a visibility, not an import.
    let allowed = [
        "crate::core::model",
        "crate::core::Map",
        "crate::core::NameMap",
        "crate::core::Set",
        "crate::core)",
    ];
    let mut found = crossings("src/core/model", "crate::core", &allowed);
    found.extend(crossings("src/core/model", "crate::{", &[]));
    assert_no_crossings(
        "src/core/model imports nothing from the core but itself (and the core's map types): no Broker, amqp, contract, mgmt, access, definitions, policy or testkit",
        found,
    );
}

/// Files stay small enough to read whole (issue 17: "about 600 lines").
const LINES_MAX: usize = 650;

fn no_file_is_too_long() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    collect_rs(&root.join("src"), &mut files);
    let long: Vec<String> = files
        .iter()
        .filter_map(|path| {
            let rel = path.strip_prefix(root).expect("under the root");
            let n = std::fs::read_to_string(path).expect("readable").lines().count();
            (n > LINES_MAX).then(|| format!("{}: {n} lines", rel.display()))
        })
        .collect();
    assert_no_crossings(&format!("no file under src/ over {LINES_MAX} lines"), long);
}

/// `unsafe` only in the io layer's io_uring backend, its rings between shards
/// and the OS helpers' statvfs: the compiler refuses it elsewhere
/// (`#![deny(unsafe_code)]` in lib.rs, `forbid` in the binaries), and the
/// `allow`s that open it stay on those modules.
fn unsafe_only_in_the_io_layer() {
    let blocks_in = [
        Path::new("src/io/uring"),
        Path::new("src/io/rings/spsc.rs"),
        Path::new("src/io/rings/wake.rs"),
        Path::new("src/sys/disk.rs"),
    ];
    let allows_in = [Path::new("src/io/mod.rs"), Path::new("src/sys/mod.rs")];
    let found: Vec<String> = lines_under("src")
        .into_iter()
        .filter(|l| {
            let block = l.code.contains("unsafe {") || l.code.contains("unsafe fn") || l.code.contains("unsafe impl");
            let allow = l.code.contains("allow(unsafe_code)");
            (block && !blocks_in.iter().any(|a| l.file.starts_with(a)))
                || (allow && !allows_in.iter().any(|a| l.file == *a))
        })
        .map(|l| format!("{}:{}: {}", l.file.display(), l.number, l.code.trim()))
        .collect();
    assert_no_crossings(
        "unsafe code only in src/io/uring, src/io/rings/{spsc,wake}.rs and src/sys/disk.rs",
        found,
    );
}

#[test]
fn model_wall() {
    the_model_imports_nothing_of_the_core_but_itself();
}

#[test]
fn file_length_wall() {
    no_file_is_too_long();
}

#[test]
fn unsafe_wall() {
    unsafe_only_in_the_io_layer();
}

/// The checks themselves: a crossing is found, a longer name is not one, and
/// an allowed path is let through.
#[test]
fn the_matcher_finds_crossings_and_only_those() {
    assert_eq!(without_comment("let x = 1; // crate::io here"), "let x = 1; ");
    assert!(crosses("use crate::io::Shared;", "crate::io", &[]));
    assert!(crosses("use crate::io;", "crate::io", &[]));
    assert!(!crosses("use crate::iox::Shared;", "crate::io", &[]));
    assert!(crosses("use crate::{core::model, shard};", "crate::{", &[]));
    let allowed = ["crate::core::mgmt", "crate::core::Broker"];
    let core = |code: &str| crosses(code, "crate::core", &allowed);
    assert!(core("use crate::core::model::vhost::VHost;"));
    assert!(core("use crate::core;"));
    assert!(core("use crate::core::{mgmt, model};"));
    assert!(core("use crate::core::mgmtx::Y;"));
    assert!(core("use crate::core::mgmt::X; use crate::core::amqp::Y;"));
    assert!(!core("use crate::core::mgmt::views::QueueView;"));
    assert!(!core("fn f(b: &crate::core::Broker) {}"));
    let model = ["crate::core::model", "crate::core::Map", "crate::core)"];
    let in_model = |code: &str| crosses(code, "crate::core", &model);
    assert!(in_model("use crate::core::broker::Broker;"));
    assert!(in_model("fn f(b: &mut crate::core::Broker) {}"));
    assert!(!in_model("pub(in crate::core) fn f() {}"));
    assert!(!in_model("use crate::core::model::ids::QueueId;"));
}

/// The module of each line of a core file, below `src/core` (`access`,
/// `topic_permissions`, then any inline `mod x {` it is in). Inline modules
/// are followed by rustfmt's layout: a block closes with a `}` line at its
/// `mod` line's indent.
fn core_modules(lines: &[Line]) -> Vec<Vec<String>> {
    let mut out = Vec::with_capacity(lines.len());
    let mut open: Vec<(PathBuf, usize, String)> = Vec::new();
    for l in lines {
        open.retain(|(file, _, _)| *file == l.file);
        let rel = l.file.strip_prefix("src/core").expect("a core file");
        let mut module: Vec<String> = rel.iter().map(|c| c.to_string_lossy().into_owned()).collect();
        let last = module.pop().expect("a file name");
        if last != "mod.rs" {
            module.push(last.trim_end_matches(".rs").to_owned());
        }
        let indent = l.code.len() - l.code.trim_start().len();
        if l.code.trim() == "}" && open.last().is_some_and(|(_, i, _)| *i == indent) {
            open.pop();
        }
        module.extend(open.iter().map(|(_, _, name)| name.clone()));
        out.push(module);
        let words: Vec<&str> = l.code.split_whitespace().collect();
        if let Some(at) = words.iter().position(|w| *w == "mod") {
            let visibility = words[..at].iter().all(|w| w.starts_with("pub"));
            if visibility && words.len() == at + 3 && words[at + 2] == "{" {
                open.push((l.file.clone(), indent, words[at + 1].to_owned()));
            }
        }
    }
    out
}

/// The children of the core's root that `code` names by path: the segment
/// after `crate::core::`, or after as many `super::` as climb from `module`
/// (the line's module below `src/core`) to the core's root. A `{` means a
/// grouped import, which hides its names.
fn core_children_named(code: &str, module: &[String]) -> Vec<String> {
    let ident = |c: char| c.is_alphanumeric() || c == '_';
    let segment = |rest: &str| -> String {
        if rest.starts_with('{') {
            return "{".to_owned();
        }
        rest.chars().take_while(|c| ident(*c)).collect()
    };
    let mut out = Vec::new();
    for (i, _) in code.match_indices("crate::core::") {
        if !code[..i].ends_with(ident) {
            out.push(segment(&code[i + "crate::core::".len()..]));
        }
    }
    for (i, _) in code.match_indices("super::") {
        if code[..i].ends_with(ident) || code[..i].ends_with(':') {
            continue; // not the start of a path (or a later `super::` of one)
        }
        let mut rest = &code[i..];
        let mut up = 0;
        while let Some(r) = rest.strip_prefix("super::") {
            rest = r;
            up += 1;
        }
        if up == module.len() {
            out.push(segment(rest));
        }
    }
    out.retain(|s| !s.is_empty());
    out
}

/// The core's folders (each directory right under `src/core`); the root's
/// files (`broker.rs`, `contract.rs`, ...) are the shard that holds them all.
fn core_folders() -> Vec<String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core");
    let mut out: Vec<String> = std::fs::read_dir(&root)
        .expect("src/core")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.is_dir())
        .map(|p| p.file_name().expect("a name").to_string_lossy().into_owned())
        .collect();
    out.sort();
    assert!(out.len() >= 2, "src/core has folders: has the tree moved?");
    out
}

/// Which folder imports which: (from, to) -> the `file:line: code`s that do.
type FolderGraph = std::collections::BTreeMap<(String, String), Vec<String>>;

/// The import graph between the core's folders, and the grouped imports at
/// the core's root that would hide an edge from it.
fn core_folder_graph() -> (FolderGraph, Vec<String>) {
    let folders = core_folders();
    let lines: Vec<Line> = lines_under("src/core")
        .into_iter()
        .filter(|l| l.file.components().count() > 3) // in a folder, not a root file
        .collect();
    let mut graph = FolderGraph::new();
    let mut hidden = Vec::new();
    for (l, module) in lines.iter().zip(core_modules(&lines)) {
        let at = format!("{}:{}: {}", l.file.display(), l.number, l.code.trim());
        for child in core_children_named(&l.code, &module) {
            if child == "{" {
                hidden.push(at.clone());
            } else if folders.contains(&child) && child != module[0] {
                graph.entry((module[0].clone(), child)).or_default().push(at.clone());
            }
        }
    }
    (graph, hidden)
}

/// One cycle of `graph` as its folders in order (the first again at the end),
/// if there is one.
fn a_cycle(graph: &FolderGraph) -> Option<Vec<String>> {
    fn visit(node: &str, graph: &FolderGraph, path: &mut Vec<String>, done: &mut Vec<String>) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|n| n == node) {
            let mut cycle = path[i..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.iter().any(|n| n == node) {
            return None;
        }
        path.push(node.to_owned());
        for (_, to) in graph.keys().filter(|(from, _)| from == node) {
            if let Some(c) = visit(to, graph, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.push(node.to_owned());
        None
    }
    let mut done = Vec::new();
    let starts: Vec<&String> = graph.keys().map(|(from, _)| from).collect();
    starts
        .into_iter()
        .find_map(|s| visit(s, graph, &mut Vec::new(), &mut done))
}

/// No import circle between the core's folders (issue 17): each may use the
/// model, the model none, and the layers above it (access, policy,
/// definitions; amqp; mgmt; testkit) only the ones below. A circle fails with
/// the lines that make it, and the whole graph.
fn the_core_folders_import_no_circle() {
    let (graph, hidden) = core_folder_graph();
    assert_no_crossings(
        "the core's folders write paths to the core's root out (no `crate::core::{..}` or `super::{..}` groups)",
        hidden,
    );
    let Some(cycle) = a_cycle(&graph) else { return };
    let mut text = format!(
        "the core's folders import each other in a circle: {}\n",
        cycle.join(" -> ")
    );
    for pair in cycle.windows(2) {
        let lines = &graph[&(pair[0].clone(), pair[1].clone())];
        text += &format!("  {} -> {} ({} line(s)):\n", pair[0], pair[1], lines.len());
        for l in lines.iter().take(5) {
            text += &format!("    {l}\n");
        }
    }
    text += "the whole graph (lines per edge):\n";
    for ((from, to), lines) in &graph {
        text += &format!("  {from} -> {to}: {}\n", lines.len());
    }
    panic!("{text}");
}

#[test]
fn core_folder_wall() {
    the_core_folders_import_no_circle();
}

/// The middle layers are types and functions over their own state and the
/// model's: `access`, `policy` and `definitions` (and the model below them)
/// name neither the shard (`broker`, `Broker`, `contract`, `alarms`) nor the
/// layers above (`amqp`, `mgmt`), by `crate::core::` or by `super::`s that
/// climb to the core's root, and hold no `impl Broker`. What needs the whole
/// broker (connections, the session's pending work, management commands) is
/// glue in `amqp/` or `mgmt/` that passes them what they need (issue 17).
fn the_middle_layers_name_no_broker() {
    const FOLDERS: [&str; 4] = ["access", "policy", "definitions", "model"];
    const ABOVE: [&str; 6] = ["broker", "Broker", "amqp", "mgmt", "contract", "alarms"];
    let lines: Vec<Line> = FOLDERS
        .iter()
        .flat_map(|f| lines_under(&format!("src/core/{f}")))
        .collect();
    let mut found = Vec::new();
    for (l, module) in lines.iter().zip(core_modules(&lines)) {
        let named = core_children_named(&l.code, &module);
        let reaches = named.iter().any(|c| c == "{" || ABOVE.contains(&c.as_str()));
        if reaches || implements_broker(&l.code) || l.code.contains("crate::{") {
            found.push(format!("{}:{}: {}", l.file.display(), l.number, l.code.trim()));
        }
    }
    assert_no_crossings(
        "src/core/{access,policy,definitions,model} name no broker, amqp, mgmt, contract or alarms (nor `impl Broker`): the glue that needs the whole broker lives in amqp/ or mgmt/",
        found,
    );
}

/// Whether `code` opens an `impl Broker` block (by any path to it).
fn implements_broker(code: &str) -> bool {
    let words: Vec<&str> = code.split_whitespace().collect();
    words.windows(2).any(|w| {
        let ty = w[1].trim_end_matches('{');
        w[0] == "impl" && (ty == "Broker" || ty.ends_with("::Broker"))
    })
}

#[test]
fn middle_layers_wall() {
    the_middle_layers_name_no_broker();
}

/// The AMQP session's state is its own: `Connection`'s and `Channel`'s fields
/// are visible inside `src/core/amqp/` at most; the rest of the core reads them
/// through accessors and changes them through methods named for what they do.
fn the_session_fields_are_the_sessions() {
    const STRUCTS: [(&str, &str); 2] = [
        ("src/core/amqp/connection.rs", "pub struct Connection {"),
        ("src/core/amqp/channel.rs", "pub struct Channel {"),
    ];
    let mut found = Vec::new();
    for (file, opening) in STRUCTS {
        let lines = lines_under(file);
        let start = lines
            .iter()
            .position(|l| l.code.trim() == opening)
            .unwrap_or_else(|| panic!("{file}: no `{opening}`: has the struct moved?"));
        for l in lines[start + 1..].iter().take_while(|l| l.code.trim() != "}") {
            let code = l.code.trim();
            if code.starts_with("pub") && !code.starts_with("pub(in crate::core::amqp)") && code.contains(':') {
                found.push(format!("{}:{}: {}", l.file.display(), l.number, code));
            }
        }
    }
    assert_no_crossings(
        "Connection's and Channel's fields are pub(in crate::core::amqp) at most: outside amqp/, accessors read them and named methods change them",
        found,
    );
}

#[test]
fn session_fields_wall() {
    the_session_fields_are_the_sessions();
}

/// The core's root holds no state a folder must import back: `Broker` (the
/// model with the connections) lives in `amqp/`, and the root's files are the
/// io contract (`contract.rs`, the top: no folder names it), and two leaves the
/// folders may use (`config.rs`, the settings; `alarms.rs`, the alarms'
/// state), which name nothing of the core (issue 17: no circle through the
/// root, as there was through the old `core/broker.rs`).
fn the_core_root_is_a_top_and_leaves() {
    const FOLDERS: [&str; 6] = ["access", "policy", "definitions", "model", "amqp", "mgmt"];
    let mut found = Vec::new();
    for f in FOLDERS {
        for l in lines_under(&format!("src/core/{f}")) {
            if crosses(&l.code, "crate::core::contract", &[]) {
                found.push(format!("{}:{}: {}", l.file.display(), l.number, l.code.trim()));
            }
        }
    }
    for leaf in ["src/core/config.rs", "src/core/alarms.rs"] {
        for l in lines_under(leaf) {
            if l.code.contains("crate::core::") || l.code.contains("super::") && !l.code.contains("use super::*") {
                found.push(format!("{}:{}: {}", l.file.display(), l.number, l.code.trim()));
            }
        }
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/core");
    let mut files: Vec<String> = std::fs::read_dir(&root)
        .expect("src/core")
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    for f in files {
        if !["mod.rs", "contract.rs", "config.rs", "alarms.rs"].contains(&f.as_str()) {
            found.push(format!(
                "src/core/{f}: a new root file (the root is the io contract and two leaves; state goes in a folder)"
            ));
        }
    }
    assert_no_crossings(
        "the core's root is the io contract (which no folder names) and two leaves (config, alarms) that name nothing of the core",
        found,
    );
}

#[test]
fn core_root_wall() {
    the_core_root_is_a_top_and_leaves();
}

/// The graph's reading of paths: `crate::core::X` and the `super::`s that
/// climb to the core's root name X; shorter climbs, longer names and inline
/// `mod tests` blocks do not fool it; and a circle is found.
#[test]
fn the_folder_graph_reads_paths_and_finds_circles() {
    let m = |s: &str| s.split('/').map(str::to_owned).collect::<Vec<_>>();
    let named = |code: &str, module: &str| core_children_named(code, &m(module));
    assert_eq!(named("use crate::core::amqp::error::Exception;", "access/x"), ["amqp"]);
    assert_eq!(named("fn f(b: &crate::core::Broker) {}", "access"), ["Broker"]);
    assert!(named("use mycrate::core::amqp::X;", "access/x").is_empty());
    assert_eq!(named("use super::super::amqp::X;", "access/x"), ["amqp"]);
    assert_eq!(named("use super::amqp::X;", "access"), ["amqp"]);
    assert!(named("use super::permissions::Access;", "access/x").is_empty());
    assert!(named("use super::super::Bindings;", "model/exchange/topic/tests").is_empty());
    assert_eq!(named("use super::{amqp, model};", "access"), ["{"]);
    assert_eq!(named("use crate::core::{amqp, model};", "access/x"), ["{"]);
    assert!(implements_broker("impl Broker {"));
    assert!(implements_broker("impl crate::core::broker::Broker{"));
    assert!(!implements_broker("impl BrokerView {"));
    assert!(!implements_broker("fn implement(b: Broker) {}"));

    let line = |file: &str, code: &str| Line {
        file: PathBuf::from(file),
        number: 1,
        code: code.to_owned(),
    };
    let lines = [
        line("src/core/model/exchange/topic.rs", "use x;"),
        line("src/core/model/exchange/topic.rs", "mod tests {"),
        line("src/core/model/exchange/topic.rs", "    use super::super::Bindings;"),
        line("src/core/model/exchange/topic.rs", "    pub(super) mod inner {"),
        line(
            "src/core/model/exchange/topic.rs",
            "        use super::super::super::Bindings;",
        ),
        line("src/core/model/exchange/topic.rs", "    }"),
        line("src/core/model/exchange/topic.rs", "}"),
        line("src/core/model/mod.rs", "pub mod exchange;"),
    ];
    let modules = core_modules(&lines);
    assert_eq!(modules[0], m("model/exchange/topic"));
    assert_eq!(modules[2], m("model/exchange/topic/tests"));
    assert_eq!(modules[4], m("model/exchange/topic/tests/inner"));
    assert_eq!(modules[6], m("model/exchange/topic"));
    assert_eq!(modules[7], m("model"));

    let mut graph = FolderGraph::new();
    for (from, to) in [
        ("amqp", "model"),
        ("mgmt", "amqp"),
        ("amqp", "access"),
        ("access", "model"),
    ] {
        graph.insert((from.into(), to.into()), vec![]);
    }
    assert_eq!(a_cycle(&graph), None);
    graph.insert(("access".into(), "mgmt".into()), vec![]);
    let cycle = a_cycle(&graph).expect("access -> mgmt -> amqp -> access");
    assert_eq!(cycle.first(), cycle.last());
    assert_eq!(cycle.len(), 4);
}
