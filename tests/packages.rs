//! The packages an admin installs, built by `scripts/package` (CI runs it before the
//! tests): read with rpm and dpkg-deb, the RPM installed into an empty root, the deb
//! installed on this machine, used from the installed paths, removed (the edited
//! configuration stays), installed again (the edit is kept) and purged.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::layout;

fn newest(dir: &str, ext: &str) -> Option<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
    let mut found: Vec<PathBuf> = std::fs::read_dir(&dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == ext))
        .collect();
    found.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    found.pop()
}

/// The package `scripts/package` built, or a SKIP (a failure in CI).
fn package(dir: &str, ext: &str) -> Option<PathBuf> {
    let p = newest(dir, ext);
    if p.is_none() {
        support::skip_or_panic(&format!(
            "no {ext} package in {dir}: run `bash scripts/package` first"
        ));
    }
    p
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env("LC_ALL", "C")
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

fn ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?}: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o7777
}

#[test]
fn the_rpm_holds_the_layout_requires_what_hamn_runs_and_installs_into_an_empty_root() {
    if !support::require_tool("rpm") {
        return;
    }
    let Some(rpm) = package("target/generate-rpm", "rpm") else {
        return;
    };
    let rpm = rpm.to_string_lossy().into_owned();
    let q = |what: &[&str]| {
        let mut args = vec!["-qp"];
        args.extend_from_slice(what);
        args.push(&rpm);
        ok("rpm", &args)
    };
    assert_eq!(
        q(&["--qf", "%{VERSION} %{LICENSE}"]),
        format!("{} EPL-1.0", env!("CARGO_PKG_VERSION"))
    );
    let files = q(&["-l"]);
    for (path, _) in layout::FILES {
        assert!(files.lines().any(|l| l == *path), "{path} not in:\n{files}");
    }
    for page in layout::MAN_PAGES {
        assert!(files.contains(page), "{page} not in:\n{files}");
    }
    let requires = q(&["--requires"]);
    for r in ["e2fsprogs", "util-linux", "iproute", "systemd-udev"] {
        assert!(
            requires.lines().any(|l| l.starts_with(r)),
            "{r}: {requires}"
        );
    }
    let recommends = q(&["--recommends"]);
    for r in ["xfsprogs", "mdadm", "device-mapper-multipath"] {
        assert!(recommends.contains(r), "{r}: {recommends}");
    }
    let scripts = q(&["--scripts"]);
    assert!(scripts.contains("chmod 0700 /etc/hamn"), "{scripts}");
    // The configuration: marked as such, never replaced once edited.
    let flags = q(&["--qf", "[%{FILENAMES} %{FILEFLAGS:fflags}\n]"]);
    let config = flags
        .lines()
        .find(|l| l.starts_with(&format!("{} ", layout::CONFIG)))
        .unwrap_or_else(|| panic!("{flags}"));
    assert!(
        config.ends_with(" cn") || config.ends_with(" nc"),
        "config, noreplace: {config}"
    );

    // Into an empty root (no dependencies there, and no shell for the scriptlet).
    let root = tempfile::tempdir().expect("tempdir");
    let root_s = root.path().to_string_lossy().into_owned();
    ok(
        "rpm",
        &["--root", &root_s, "--nodeps", "--noscripts", "-i", &rpm],
    );
    for (path, want) in layout::FILES {
        let got = mode(&root.path().join(path.trim_start_matches('/')));
        assert_eq!(got, *want, "{path}: {got:o}, want {want:o}");
    }
    let hamn = root.path().join(layout::HAMN.trim_start_matches('/'));
    let version = ok(&hamn.to_string_lossy(), &["--version"]);
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
}

/// Removes the deb at the end, whatever happened: the machine keeps nothing of the test.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let _ = run("dpkg", &["--purge", "hamn"]);
    }
}

#[test]
fn the_deb_installs_works_from_its_paths_and_keeps_an_edited_configuration() {
    if !support::require_tool("dpkg") || !support::require_tool("systemd-analyze") {
        return;
    }
    let Some(deb) = package("target/debian", "deb") else {
        return;
    };
    let deb = deb.to_string_lossy().into_owned();
    let field = |f: &str| ok("dpkg-deb", &["-f", &deb, f]);
    assert_eq!(
        field("Version").trim(),
        format!("{}-1", env!("CARGO_PKG_VERSION"))
    );
    for d in ["e2fsprogs", "util-linux", "iproute2", "udev"] {
        assert!(field("Depends").contains(d), "{d}: {}", field("Depends"));
    }
    for r in ["xfsprogs", "mdadm", "multipath-tools"] {
        assert!(
            field("Recommends").contains(r),
            "{r}: {}",
            field("Recommends")
        );
    }
    if nix::unistd::geteuid().as_raw() != 0 {
        support::skip_or_panic("installing the deb needs root");
        return;
    }
    if Path::new(layout::HAMN).exists() && run("dpkg", &["-s", "hamn"]).status.code() != Some(0) {
        support::skip_or_panic(&format!(
            "{} exists and is not from the hamn package: not overwriting it",
            layout::HAMN
        ));
        return;
    }
    let _purge = Purge;
    ok("dpkg", &["-i", &deb]);
    for (path, want) in layout::FILES {
        assert_eq!(mode(Path::new(path)), *want, "{path}");
    }
    assert_eq!(mode(Path::new("/etc/hamn")), 0o700, "/etc/hamn");
    let version = ok(layout::HAMN, &["--version"]);
    assert!(version.contains(env!("CARGO_PKG_VERSION")), "{version}");
    let page = ok("man", &["-w", "hamn"]);
    assert!(page.starts_with("/usr/share/man/man8/hamn.8"), "{page}");
    let metadata = ok(layout::FENCE_HAMN, &["-o", "metadata"]);
    assert!(
        metadata.contains("<resource-agent name=\"fence_hamn\""),
        "{metadata}"
    );
    // The packaged example configures nothing: read-only commands work as without one.
    let status = ok(layout::HAMN, &["status", "--no-bmc"]);
    assert!(status.contains("no hamn.toml"), "{status}");
    for unit in [
        "hamn-unfence.service",
        "hamn-preflight.service",
        "hamn-preflight.timer",
    ] {
        let out = run(
            "systemd-analyze",
            &[
                "verify",
                "--man=no",
                &format!("/usr/lib/systemd/system/{unit}"),
            ],
        );
        let said = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let own: Vec<&str> = said.lines().filter(|l| l.contains("hamn")).collect();
        assert!(out.status.success() && own.is_empty(), "{unit}: {said}");
    }

    // The admin edits the configuration; removing the package keeps it, and installing
    // again keeps the edit.
    let edited = "node = \"mn2\"\n";
    std::fs::write(layout::CONFIG, edited).expect("edit hamn.toml");
    ok("dpkg", &["-r", "hamn"]);
    assert!(!Path::new(layout::HAMN).exists(), "removed");
    assert!(!Path::new(layout::OCF_TAKEOVER).exists(), "removed");
    assert_eq!(
        std::fs::read_to_string(layout::CONFIG).expect("kept"),
        edited,
        "dpkg -r keeps the configuration"
    );
    ok("dpkg", &["-i", &deb]);
    assert_eq!(
        std::fs::read_to_string(layout::CONFIG).expect("kept"),
        edited,
        "reinstalling keeps the edited configuration"
    );
    ok("dpkg", &["--purge", "hamn"]);
    assert!(!Path::new(layout::CONFIG).exists(), "purged");
}
