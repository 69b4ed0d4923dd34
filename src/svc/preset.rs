//! Presets: the services a known product needs, in the order its own documentation
//! starts them, so that an admin does not have to write them into hamn.toml.

/// One entry of a preset.
pub(super) struct PresetEntry {
    pub(super) name: &'static str,
    pub(super) start: &'static [&'static str],
    pub(super) ready: &'static [&'static str],
    pub(super) stop: &'static [&'static str],
    pub(super) timeout_secs: u64,
}

/// xCAT's takeover, from "Setup HA Mgmt Node With Shared Data", section "Failover / Bring
/// up the New Primary Management Node" (xcat-core docs/source/advanced/hamn), and the
/// `activate-mn` script xCAT ships (xCAT-server/share/xcat/hamn): the database, xcatd,
/// the daemons, then `makedns -n`, `makedhcp -n`, `makedhcp -a`, `makeconservercf`, then
/// the NFS exports. Each regeneration runs right after the daemon it configures, so that a
/// failure names the service it belongs to. `makedhcp -a` talks to the running dhcpd
/// (OMAPI), so dhcpd must be up first.
///
/// The database is PostgreSQL, activate-mn's default; sites on MariaDB/MySQL (or with
/// other unit names, e.g. Debian's isc-dhcp-server) give a [[takeover.service]] entry of
/// the same name ("database", "dhcpd", ...), which replaces the preset's in place.
///
/// xCAT's own commands are named by their path: they live in /opt/xcat, which is on an
/// admin's PATH through /etc/profile.d but not on a cluster manager's.
///
/// Never `xcatconfig -c` or `xcatconfig -d`: they regenerate xCAT's CA and credentials and
/// re-initialise its database, destroying the very data the standby takes over and every
/// node's trust in this management node. `services` refuses them in hamn.toml too.
pub(super) const XCAT_PRESET: &[PresetEntry] = &[
    PresetEntry {
        name: "database",
        start: &["systemctl", "start", "postgresql"],
        ready: &["systemctl", "is-active", "--quiet", "postgresql"],
        stop: &["systemctl", "stop", "postgresql"],
        timeout_secs: 120,
    },
    // lsxcatd -a is answered by the running xcatd over its socket with the database behind
    // it: stronger than "the unit is active".
    PresetEntry {
        name: "xcatd",
        start: &["systemctl", "start", "xcatd"],
        ready: &["/opt/xcat/bin/lsxcatd", "-a"],
        stop: &["systemctl", "stop", "xcatd"],
        timeout_secs: 120,
    },
    PresetEntry {
        name: "named",
        start: &["systemctl", "start", "named"],
        ready: &["systemctl", "is-active", "--quiet", "named"],
        stop: &["systemctl", "stop", "named"],
        timeout_secs: 60,
    },
    PresetEntry {
        name: "makedns",
        start: &["/opt/xcat/sbin/makedns", "-n"],
        ready: &[],
        stop: &[],
        timeout_secs: 600,
    },
    PresetEntry {
        name: "dhcpd",
        start: &["systemctl", "start", "dhcpd"],
        ready: &["systemctl", "is-active", "--quiet", "dhcpd"],
        stop: &["systemctl", "stop", "dhcpd"],
        timeout_secs: 60,
    },
    PresetEntry {
        name: "makedhcp-n",
        start: &["/opt/xcat/sbin/makedhcp", "-n"],
        ready: &[],
        stop: &[],
        timeout_secs: 600,
    },
    PresetEntry {
        name: "makedhcp-a",
        start: &["/opt/xcat/sbin/makedhcp", "-a"],
        ready: &[],
        stop: &[],
        timeout_secs: 600,
    },
    PresetEntry {
        name: "conserver",
        start: &["systemctl", "start", "conserver"],
        ready: &["systemctl", "is-active", "--quiet", "conserver"],
        stop: &["systemctl", "stop", "conserver"],
        timeout_secs: 60,
    },
    PresetEntry {
        name: "makeconservercf",
        start: &["/opt/xcat/sbin/makeconservercf"],
        ready: &[],
        stop: &[],
        timeout_secs: 600,
    },
    PresetEntry {
        name: "nfs-server",
        start: &["systemctl", "start", "nfs-server"],
        ready: &["systemctl", "is-active", "--quiet", "nfs-server"],
        stop: &["systemctl", "stop", "nfs-server"],
        timeout_secs: 60,
    },
    // Giveback unexports first (services stop in reverse order): xCAT's documented
    // `exportfs -ua` before the shared filesystems can be unmounted.
    PresetEntry {
        name: "exportfs",
        start: &["exportfs", "-ra"],
        ready: &[],
        stop: &["exportfs", "-ua"],
        timeout_secs: 60,
    },
];

pub(super) const PRESETS: &[(&str, &[PresetEntry])] = &[("xcat", XCAT_PRESET), ("none", &[])];

/// xcatconfig's options that regenerate credentials (-c, --credentials) or the database
/// (-d, --database), also inside bundled short options such as -cd.
pub(super) fn destroys_xcat_state(argv: &[String]) -> bool {
    let Some((program, args)) = argv.split_first() else {
        return false;
    };
    program.rsplit('/').next() == Some("xcatconfig")
        && args.iter().any(|a| {
            a == "--credentials"
                || a == "--database"
                || (a.starts_with('-')
                    && !a.starts_with("--")
                    && a.chars().any(|c| c == 'c' || c == 'd'))
        })
}
