//! Where the packages install hamn's parts: the lab guests put them at the same paths, so
//! that what the lab tests is what ships (tests/packages.rs checks both packages hold
//! them there).

pub const HAMN: &str = "/usr/sbin/hamn";
pub const FENCE_HAMN: &str = "/usr/sbin/fence_hamn";
pub const OCF_TAKEOVER: &str = "/usr/lib/ocf/resource.d/hamn/takeover";
pub const CONFIG: &str = "/etc/hamn/hamn.toml";

/// Every file both packages must hold, with its mode.
pub const FILES: &[(&str, u32)] = &[
    (HAMN, 0o755),
    (FENCE_HAMN, 0o755),
    (OCF_TAKEOVER, 0o755),
    ("/usr/share/hamn/hw-profiles/bmc/generic.toml", 0o644),
    ("/usr/share/hamn/hw-profiles/bmc/dell-idrac.toml", 0o644),
    ("/usr/share/hamn/hw-profiles/storage/lio.toml", 0o644),
    (
        "/usr/share/hamn/hw-profiles/server/hamn-lab-box.toml",
        0o644,
    ),
    ("/usr/share/bash-completion/completions/hamn", 0o644),
    ("/usr/lib/systemd/system/hamn-unfence.service", 0o644),
    ("/usr/lib/systemd/system/hamn-preflight.service", 0o644),
    ("/usr/lib/systemd/system/hamn-preflight.timer", 0o644),
    (CONFIG, 0o600),
];

/// The man pages (compressed or not, as each packaging tool does).
pub const MAN_PAGES: &[&str] = &[
    "/usr/share/man/man8/hamn.8",
    "/usr/share/man/man8/fence_hamn.8",
    "/usr/share/man/man5/hamn.toml.5",
];
