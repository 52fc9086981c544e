//! Settings from the environment (RINGMQ_* and LavinMQ's names).

use super::super::{Config, ConfigError, DefaultPassword};

fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn load(args: &[&str], pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
    Config::from_args_and_env(args.iter().map(|s| s.to_string()), env(pairs))
}

#[test]
fn a_user_from_the_environment_may_log_in_from_anywhere() {
    let c = load(
        &["-D", "/d"],
        &[
            ("RINGMQ_DEFAULT_USER", "admin"),
            ("RINGMQ_DEFAULT_PASS", "s3cret"),
            ("HOME", "/x"),
        ],
    )
    .unwrap();
    assert_eq!(c.main.default_user, "admin");
    assert!(matches!(&c.main.default_password, DefaultPassword::Plain(p) if p == "s3cret"));
    assert!(!c.main.default_user_only_loopback);
}

#[test]
fn guest_stays_loopback_only_unless_told() {
    let c = load(
        &["-D", "/d"],
        &[("RINGMQ_DEFAULT_USER", "guest"), ("RINGMQ_DEFAULT_PASS", "other")],
    )
    .unwrap();
    assert!(c.main.default_user_only_loopback);
    let c = load(
        &["-D", "/d"],
        &[
            ("RINGMQ_DEFAULT_USER", "admin"),
            ("RINGMQ_DEFAULT_PASS", "p"),
            ("RINGMQ_DEFAULT_USER_ONLY_LOOPBACK", "true"),
        ],
    )
    .unwrap();
    assert!(c.main.default_user_only_loopback);
}

#[test]
fn flags_win_over_the_environment() {
    let c = load(
        &[
            "-D",
            "/d",
            "--default-user",
            "flag",
            "--default-user-only-loopback",
            "true",
        ],
        &[("RINGMQ_DEFAULT_USER", "admin"), ("RINGMQ_DEFAULT_PASS", "p")],
    )
    .unwrap();
    assert_eq!(c.main.default_user, "flag");
    assert!(c.main.default_user_only_loopback);
}

#[test]
fn a_user_without_a_password_is_refused() {
    let e = load(&["-D", "/d"], &[("RINGMQ_DEFAULT_USER", "admin")]).unwrap_err();
    assert!(e.to_string().contains("RINGMQ_DEFAULT_PASS"), "{e}");
    let e = load(
        &["-D", "/d"],
        &[("RINGMQ_DEFAULT_USER", "admin"), ("RINGMQ_DEFAULT_PASS", "")],
    )
    .unwrap_err();
    assert!(e.to_string().contains("non-empty"), "{e}");
    let e = load(&["-D", "/d"], &[("RINGMQ_DEFAULT_USER_ONLY_LOOPBACK", "perhaps")]).unwrap_err();
    assert!(e.to_string().contains("RINGMQ_DEFAULT_USER_ONLY_LOOPBACK"), "{e}");
}

#[test]
fn the_password_from_a_secret_file() {
    let dir = tempfile::tempdir().unwrap();
    let f = dir.path().join("pass");
    std::fs::write(&f, "from-file\n").unwrap();
    let path = f.to_str().unwrap();
    let c = load(
        &["-D", "/d"],
        &[("RINGMQ_DEFAULT_USER", "admin"), ("RINGMQ_DEFAULT_PASS_FILE", path)],
    )
    .unwrap();
    assert!(matches!(&c.main.default_password, DefaultPassword::Plain(p) if p == "from-file"));
    let e = load(
        &["-D", "/d"],
        &[
            ("RINGMQ_DEFAULT_USER", "a"),
            ("RINGMQ_DEFAULT_PASS", "x"),
            ("RINGMQ_DEFAULT_PASS_FILE", path),
        ],
    )
    .unwrap_err();
    assert!(e.to_string().contains("not both"), "{e}");
    let e = load(&["-D", "/d"], &[("RINGMQ_DEFAULT_PASS_FILE", "/nonexistent/pass")]).unwrap_err();
    assert!(e.to_string().contains("RINGMQ_DEFAULT_PASS_FILE"), "{e}");
}

#[test]
fn help_lists_the_variables() {
    assert!(Config::help_text().contains("RINGMQ_DEFAULT_USER"));
}
