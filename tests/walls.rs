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

/// Every `.rs` file under `dir` (relative to the crate root), line by line.
fn lines_under(dir: &str) -> Vec<Line> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    collect_rs(&root.join(dir), &mut files);
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

/// The model is protocol-neutral: it knows no AMQP session, management seam,
/// access rules or definitions log (policies are its own: they shape queues).
fn the_model_imports_no_session_seam_access_or_definitions() {
    let mut found = Vec::new();
    for forbidden in [
        "crate::core::amqp",
        "crate::core::mgmt",
        "crate::core::access",
        "crate::core::definitions",
        "crate::core::{",
    ] {
        found.extend(crossings("src/core/model", forbidden, &[]));
    }
    assert_no_crossings(
        "src/core/model imports nothing from amqp, mgmt, access or definitions",
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

/// `unsafe` only in the io layer's io_uring backend and the OS helpers'
/// statvfs: the compiler refuses it elsewhere (`#![deny(unsafe_code)]` in
/// lib.rs, `forbid` in the binaries), and the two `allow`s that open it stay
/// on those two modules.
fn unsafe_only_in_the_io_layer() {
    let blocks_in = [Path::new("src/io/uring"), Path::new("src/sys/disk.rs")];
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
    assert_no_crossings("unsafe code only in src/io/uring and src/sys/disk.rs", found);
}

#[test]
fn model_wall() {
    the_model_imports_no_session_seam_access_or_definitions();
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
}
