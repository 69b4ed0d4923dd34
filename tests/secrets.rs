//! No program hamn starts sees the BMC password: a service's commands (started through
//! the library, as the takeover does) record their own environment and command line,
//! while the variable that hamn.toml names with `password_env` holds the password in
//! hamn's environment. Alone in its test binary: it sets a process-wide variable.

use std::path::Path;
use std::time::Duration;

use hamn::config::Config;
use hamn::fence::Fenced;
use hamn::svc::{self, Service, StartOutcome};

const VAR: &str = "HAMN_SECRETS_TEST_PW";
const PASSWORD: &str = "pw-7c1f9e-not-for-children";

fn config(dir: &Path) -> String {
    format!(
        r#"node = "mn2"

[takeover]
peer = "mn1"
journal = "{}/takeover.json"

[peers.mn1]
fencing = ["power"]

[peers.mn1.bmc]
address = "192.0.2.1"
user = "admin"
password_env = "{VAR}"
"#,
        dir.display()
    )
}

/// A shell command that writes its own /proc/$$/environ and cmdline under `dir`, named
/// by `tag`, then runs `then`.
fn record(dir: &Path, tag: &str, then: &str) -> Vec<String> {
    let d = dir.display();
    vec![
        "sh".into(),
        "-c".into(),
        format!(
            "tr '\\0' '\\n' < /proc/$$/environ > {d}/{tag}.environ; \
             tr '\\0' ' ' < /proc/$$/cmdline > {d}/{tag}.cmdline; {then}"
        ),
    ]
}

#[test]
fn service_commands_see_no_password_in_their_environment_or_argv() {
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path();
    // Loading hamn.toml is what tells hamn which variable is a secret.
    let cfg = Config::parse(&d.join("hamn.toml"), &config(d)).expect("parses");
    // SAFETY: this test binary has no other thread reading the environment.
    unsafe { std::env::set_var(VAR, PASSWORD) };
    // hamn itself can read it.
    let pw = cfg.peer("mn1").expect("mn1").password().expect("password");
    assert_eq!(pw.expose(), PASSWORD.as_bytes());

    let flag = d.join("up");
    let s = Service {
        name: "recorder".into(),
        start: record(d, "start", &format!("touch {}", flag.display())),
        ready: record(d, "ready", &format!("test -e {}", flag.display())),
        stop: vec!["true".into()],
        timeout: Duration::from_secs(30),
    };
    let out = svc::start(&s, &Fenced::for_tests("mn1")).expect("starts");
    assert!(matches!(out, StartOutcome::Started { .. }), "{out:?}");

    for tag in ["start", "ready"] {
        let environ = std::fs::read_to_string(d.join(format!("{tag}.environ"))).expect("environ");
        let cmdline = std::fs::read_to_string(d.join(format!("{tag}.cmdline"))).expect("cmdline");
        // It is the child's environment that was recorded (exec sets LC_ALL=C).
        assert!(environ.lines().any(|l| l == "LC_ALL=C"), "{environ}");
        assert!(cmdline.starts_with("sh -c "), "{cmdline}");
        for (what, text) in [("environment", &environ), ("command line", &cmdline)] {
            assert!(
                !text.contains(PASSWORD),
                "the {tag} command's {what} holds the password:\n{text}"
            );
            assert!(
                !text.contains(VAR),
                "the {tag} command's {what} holds {VAR}:\n{text}"
            );
        }
    }
}
