//! `hamn pr` between two management nodes on one shared LUN, two paths each, against
//! tgtd and against the in-kernel LIO target, cross-checked with `sg_persist` in the same
//! guests. The nodes run one after the other; the target keeps the registrations across
//! their boots, as a SAN keeps them across a node's crash.

mod support;

use support::lab::{
    GuestRun, GuestSpec, LioSan, LocalDisk, Lun, LunSpec, San, make_disk, run_guest,
};

fn config(node: &str, peer: &str) -> String {
    format!(
        "node = \"{node}\"\n\n[peers.{peer}.bmc]\naddress = \"10.0.2.2\"\nuser = \"admin\"\npassword_env = \"HAMN_UNUSED\"\n"
    )
}

/// A guest that is `node` with `peer` as its only peer, running `script`.
fn node(name: &str, peer: &str, lun: &Lun, script: &str) -> GuestSpec {
    let mut g = GuestSpec::new(name, &format!("{PRELUDE}\n{script}"));
    g.luns = vec![(lun.clone(), 2)];
    g.with_binary(support::layout::HAMN, &assert_cmd::cargo::cargo_bin("hamn"));
    g.with_file("/etc/hamn/hamn.toml", config(name, peer).as_bytes());
    g
}

const PRELUDE: &str = r#"
set -e
map=$(multipath -ll | awk '/ dm-/ {print $3; exit}')
paths=$(ls /sys/block/$map/slaves)
first=$(echo $paths | cut -d' ' -f1)
# A write that reaches the target (O_DIRECT: no page cache between us and the LUN).
write() { dd if=/dev/zero of=/dev/$1 bs=4096 count=1 seek=100 oflag=direct conv=notrunc 2>&1; }
"#;

fn check(run: &GuestRun) {
    run.assert_ok();
    print!("{}", run.out("log.txt"));
}

/// mn1 takes the LUN and writes; mn2 preempts it (after mn1 is "off") and writes; mn1
/// comes back and its writes fail with RESERVATION CONFLICT. `sg_persist` agrees with
/// `hamn pr status` at each step.
fn takeover_between_two_nodes(lun: &Lun, target: &str) {
    let mn1 = run_guest(&node(
        "mn1",
        "mn2",
        lun,
        r#"
{
hamn pr reserve $map
write $map
hamn --json pr status $map > /out/status1.json
sg_persist --in -k -d /dev/$first
sg_persist --in -r -d /dev/$first
} > /out/log.txt 2>&1
"#,
    ));
    check(&mn1);
    let s1: serde_json::Value = serde_json::from_str(&mn1.out("status1.json")).expect("json");
    let mn1_key = s1["own_key"].as_str().expect("key").to_string();
    let paths = s1["luns"][0]["paths"].as_array().expect("paths");
    assert_eq!(paths.len(), 2, "{target}: both paths reported");
    for p in paths {
        assert_eq!(
            p["holder"].as_str(),
            Some(mn1_key.as_str()),
            "{target}: mn1 holds the LUN on {}",
            p["path"]
        );
    }
    let log = mn1.out("log.txt");
    if target == "LIO" {
        // LIO reports PTPL_C in REPORT CAPABILITIES: registrations persist.
        assert!(log.contains("registered with APTPL"), "{target}: {log}");
    }
    let short = mn1_key.trim_start_matches("0x").trim_start_matches('0');
    assert!(
        log.contains(short),
        "{target}: sg_persist shows mn1's key {mn1_key}:\n{log}"
    );

    let mn2 = run_guest(&node(
        "mn2",
        "mn1",
        lun,
        r#"
{
# Without a fencing proof hamn refuses to preempt.
if hamn pr preempt $map --victim-key KEYHERE; then echo "PREEMPT WITHOUT PROOF"; exit 1; fi
hamn pr preempt $map --victim mn1 --i-know-the-peer-is-off
write $map
hamn --json pr status $map > /out/status2.json
sg_persist --in -k -d /dev/$first
sg_persist --in -r -d /dev/$first
} > /out/log.txt 2>&1
"#
        .replace("KEYHERE", &mn1_key)
        .as_str(),
    ));
    check(&mn2);
    let s2: serde_json::Value = serde_json::from_str(&mn2.out("status2.json")).expect("json");
    let mn2_key = s2["own_key"].as_str().expect("key").to_string();
    for p in s2["luns"][0]["paths"].as_array().expect("paths") {
        assert_eq!(
            p["holder"].as_str(),
            Some(mn2_key.as_str()),
            "{target}: mn2 holds the LUN"
        );
        assert!(
            !p["keys"]
                .as_array()
                .expect("keys")
                .iter()
                .any(|k| k == &mn1_key),
            "{target}: mn1's key is gone"
        );
    }
    assert!(
        mn2.out("log.txt")
            .contains(mn2_key.trim_start_matches("0x").trim_start_matches('0'))
    );
    if target == "LIO" {
        // LIO answers READ FULL STATUS: each registration names its initiator.
        let regs = s2["luns"][0]["paths"][0]["registrants"]
            .as_array()
            .expect("registrants");
        assert!(
            regs.iter().any(|r| r["holder"] == true
                && r["initiator"]
                    .as_str()
                    .is_some_and(|i| i.contains(":mn2-p"))),
            "{target}: READ FULL STATUS names mn2's initiators: {regs:?}"
        );
    }

    let back = run_guest(&node(
        "mn1",
        "mn2",
        lun,
        r#"
{
# The failed node, back, sees the standby as the holder on both paths.
hamn --json pr status $map > /out/status3.json
hamn pr status $map > /out/named.txt
if write $map; then echo "MN1 COULD STILL WRITE"; exit 1; fi
dmesg | grep -i "reservation conflict" | tail -2 || true
# A new user on a node without hamn.toml: the read-only status still works.
rm /etc/hamn/hamn.toml
name=$(multipath -ll | awk '/ dm-/ {print $1; exit}')
hamn pr status /dev/mapper/$name > /out/noconf.txt
hamn --json pr status /dev/mapper/$name > /out/noconf.json
sg_persist --in -k -d /dev/$first > /out/sg-keys.txt
sg_persist --in -r -d /dev/$first > /out/sg-res.txt
} > /out/log.txt 2>&1
"#,
    ));
    check(&back);
    // With hamn.toml, keys are named by their node.
    assert!(
        back.out("named.txt")
            .contains(&format!("{mn2_key} (mn1's peer mn2)"))
            || back.out("named.txt").contains(&format!("{mn2_key} (mn2)")),
        "{target}: {}",
        back.out("named.txt")
    );
    // Without it, the keys as read, agreeing with sg_persist.
    let noconf: serde_json::Value = serde_json::from_str(&back.out("noconf.json")).expect("json");
    assert!(noconf["own_key"].is_null(), "{noconf}");
    let hex = |t: &str| u64::from_str_radix(t.trim().trim_start_matches("0x"), 16).ok();
    let sg_keys: std::collections::BTreeSet<u64> = back
        .out("sg-keys.txt")
        .lines()
        .filter(|l| l.trim().starts_with("0x"))
        .filter_map(hex)
        .collect();
    let sg_holder = back
        .out("sg-res.txt")
        .lines()
        .find_map(|l| l.trim().strip_prefix("Key=").and_then(hex));
    let path0 = &noconf["luns"][0]["paths"][0];
    let hamn_keys: std::collections::BTreeSet<u64> = path0["keys"]
        .as_array()
        .expect("keys")
        .iter()
        .filter_map(|k| k.as_str().and_then(hex))
        .collect();
    assert_eq!(hamn_keys, sg_keys, "{target}: {}", back.out("sg-keys.txt"));
    assert_eq!(
        path0["holder"].as_str().and_then(hex),
        sg_holder,
        "{target}: {}",
        back.out("sg-res.txt")
    );
    assert!(
        back.out("noconf.txt").contains("no hamn.toml"),
        "{target}: {}",
        back.out("noconf.txt")
    );
    let s3: serde_json::Value = serde_json::from_str(&back.out("status3.json")).expect("json");
    for p in s3["luns"][0]["paths"].as_array().expect("paths") {
        assert_eq!(
            p["holder"].as_str(),
            Some(mn2_key.as_str()),
            "{target}: mn1 sees mn2 as holder"
        );
    }
}

#[test]
fn a_standby_takes_a_tgtd_lun_from_the_failed_primary() {
    let Some(mut san) = San::start().unwrap_or_else(|e| panic!("SAN: {e}")) else {
        return;
    };
    let lun = san.add_lun(&LunSpec::new(7));
    takeover_between_two_nodes(&lun, "tgtd");
}

#[test]
fn a_standby_takes_a_lio_lun_from_the_failed_primary_with_preempt_and_abort() {
    let Some(lio) = LioSan::start(&[LunSpec::new(8)]).unwrap_or_else(|e| panic!("LIO SAN: {e}"))
    else {
        return;
    };
    let lun = lio.luns()[0].clone();
    takeover_between_two_nodes(&lun, "LIO");
}

#[test]
fn a_path_down_during_preempt_is_partial_and_a_rerun_completes() {
    let Some(mut san) = San::start().unwrap_or_else(|e| panic!("SAN: {e}")) else {
        return;
    };
    let lun = san.add_lun(&LunSpec::new(9));
    let dir = tempfile::tempdir().expect("tmp");
    let image = dir.path().join("plain.img");
    make_disk(&image, 16);
    let mut spec = node(
        "mn2",
        "mn1",
        &lun,
        r#"
{
second=$(echo $paths | cut -d' ' -f2)
echo offline > /sys/block/$second/device/state
set +e
hamn pr preempt $map --victim mn1 --i-know-the-peer-is-off; echo "exit=$?"
set -e
echo running > /sys/block/$second/device/state
sleep 1
hamn pr preempt $map --victim mn1 --i-know-the-peer-is-off; echo "rerun exit=$?"
# A LUN without persistent reservations at all: QEMU's emulated disk.
hamn pr status /dev/$(lsblk -dno NAME,SERIAL | awk '$2=="plain-1" {print $1}') || true
} > /out/log.txt 2>&1
"#,
    );
    spec.disks = vec![LocalDisk {
        image,
        serial: "plain-1".into(),
        wwn: None,
    }];
    let run = run_guest(&spec);
    run.assert_ok();
    let log = run.out("log.txt");
    assert!(
        log.contains("succeeded on 1 of 2 paths") && log.contains("exit=1"),
        "partial: {log}"
    );
    assert!(log.contains("rerun exit=0"), "rerun: {log}");
    assert!(
        log.contains("does not support persistent reservations"),
        "scsi-hd: {log}"
    );
}

/// While the failed node is still running, the standby preempts it; the failed node's
/// next PR command meets the unit attention "registrations preempted" on its paths,
/// which hamn consumes and retries. The nodes signal each other through a second LUN.
/// multipathd's path checker is stopped on the failed node first: its TEST UNIT READY
/// would consume the unit attention before hamn could.
#[test]
fn the_failed_nodes_next_command_meets_the_unit_attention_and_hamn_consumes_it() {
    let Some(mut san) = San::start().unwrap_or_else(|e| panic!("SAN: {e}")) else {
        return;
    };
    let shared = san.add_lun(&LunSpec::new(12));
    let signal = san.add_lun(&LunSpec::new(13));
    let with_signal = |name: &str, peer: &str, script: &str| {
        let mut g = node(name, peer, &shared, &format!("{SIGNAL}\n{script}"));
        g.luns.push((signal.clone(), 1));
        g.timeout = std::time::Duration::from_secs(240);
        g
    };
    let mn1 = with_signal(
        "mn1",
        "mn2",
        r#"
{
hamn pr reserve $map
multipathd shutdown || killall multipathd || true
say READY1
wait_for TAKEN2
HAMN_LOG=debug hamn pr status $map
} > /out/log.txt 2>&1
"#,
    );
    let mn2 = with_signal(
        "mn2",
        "mn1",
        r#"
{
wait_for READY1
hamn pr preempt $map --victim mn1 --i-know-the-peer-is-off
say TAKEN2
} > /out/log.txt 2>&1
"#,
    );
    let runs = support::lab::run_guests(&[mn1, mn2]);
    for r in &runs {
        r.assert_ok();
    }
    let log = runs[0].out("log.txt");
    assert!(
        log.contains("unit attention consumed") && log.contains("asc=42"),
        "mn1's first command after the preempt meets UNIT ATTENTION (ASC 0x2A) and hamn retries:\n{log}"
    );
    let mn2_key = format!("0x{:016x}", hamn::config::node_key("mn2"));
    assert!(
        log.contains(&format!("holder {mn2_key}")),
        "after the retry mn1 reads mn2 ({mn2_key}) as the holder:\n{log}"
    );
}

/// Signalling between two guests through a small LUN both see (not the shared one, so
/// the signal itself never touches its unit attentions): `say WORD`, `wait_for WORD`.
const SIGNAL: &str = r#"
map=$(multipath -ll | awk '/a0000c/ {print $3; exit}')
sig=/dev/$(multipath -ll | awk '/a0000d/ {print $3; exit}')
say() { printf '%-16s' "$1" | dd of=$sig bs=512 count=1 oflag=direct conv=sync 2>/dev/null; }
wait_for() { i=0; while [ $i -lt 600 ]; do w=$(dd if=$sig bs=512 count=1 iflag=direct 2>/dev/null | tr -d '\0 '); [ "$w" = "$1" ] && return 0; sleep 0.2; i=$((i+1)); done; echo "timeout waiting for $1"; return 1; }
"#;
