//! Benchmark (not a test): persistent reservations on a 4-path LUN inside lab guests,
//! hamn next to what an admin would otherwise run in the same guest: `sg_persist` on
//! every path, and `mpathpersist` on the map. Run with `cargo bench --bench pr_lab`.
//! Times come from /proc/uptime inside the TCG guest (10 ms resolution); compare the
//! ratios, not the absolute values.

#[path = "../tests/support/mod.rs"]
mod support;

use support::lab::{GuestSpec, Lun, LunSpec, San, run_guest};

const PRELUDE: &str = r#"
set -e
map=$(multipath -ll | awk '/ dm-/ {print $3; exit}')
name=$(multipath -ll | awk '/ dm-/ {print $1; exit}')
paths=$(ls /sys/block/$map/slaves)
first=$(echo $paths | cut -d' ' -f1)
now() { cut -d' ' -f1 /proc/uptime; }
ms() { awk -v s="$1" -v e="$2" -v n="$3" 'BEGIN {printf "%.1f", (e - s) * 1000 / n}'; }
"#;

fn guest(name: &str, peer: &str, lun: &Lun, script: &str) -> GuestSpec {
    let mut g = GuestSpec::new(name, &format!("{PRELUDE}\n{script}"));
    g.luns = vec![(lun.clone(), 4)];
    g.with_binary("/usr/sbin/hamn", &assert_cmd::cargo::cargo_bin("hamn"));
    let cfg = format!(
        "node = \"{name}\"\n[peers.{peer}.bmc]\naddress = \"10.0.2.2\"\nuser = \"a\"\npassword_env = \"UNUSED\"\n"
    );
    g.with_file("/etc/hamn/hamn.toml", cfg.as_bytes());
    g
}

fn main() {
    // `cargo test --all-targets` runs this binary without --bench: nothing to do then.
    if !std::env::args().any(|a| a == "--bench") {
        return;
    }
    let Some(mut san) = San::start().unwrap_or_else(|e| panic!("SAN: {e}")) else {
        return;
    };
    let lun = san.add_lun(&LunSpec::new(11));
    let key = |node: &str| format!("0x{:016x}", hamn::config::node_key(node));
    let (k1, k2) = (key("mn1"), key("mn2"));

    run_guest(&guest(
        "mn1",
        "mn2",
        &lun,
        "hamn pr reserve $map >/dev/null",
    ))
    .assert_ok();
    let status_and_hamn_preempt = r#"
s=$(now); for i in 1 2 3 4 5 6 7 8 9 10; do hamn pr status $map >/dev/null; done; e=$(now)
echo "hamn_status_ms=$(ms $s $e 10)"
s=$(now); for i in 1 2 3 4 5 6 7 8 9 10; do for p in $paths; do sg_persist --in -k -d /dev/$p >/dev/null; sg_persist --in -r -d /dev/$p >/dev/null; done; done; e=$(now)
echo "sg_persist_status_ms=$(ms $s $e 10)"
s=$(now); for i in 1 2 3 4 5 6 7 8 9 10; do mpathpersist --in -k -d /dev/mapper/$name >/dev/null 2>&1; mpathpersist --in -r -d /dev/mapper/$name >/dev/null 2>&1; done; e=$(now)
echo "mpathpersist_status_ms=$(ms $s $e 10)"
s=$(now); hamn pr preempt $map --victim mn1 --i-know-the-peer-is-off >/dev/null 2>&1; e=$(now)
echo "hamn_preempt_ms=$(ms $s $e 1)"
"#;
    let b = run_guest(&guest(
        "mn2",
        "mn1",
        &lun,
        &format!("{{ {status_and_hamn_preempt} }} > /out/r.txt 2>&1"),
    ));
    b.assert_ok();
    // The victim comes back and registers again, so the same preempt can be timed by hand.
    run_guest(&guest(
        "mn1",
        "mn2",
        &lun,
        "hamn pr register $map >/dev/null",
    ))
    .assert_ok();
    let by_hand = format!(
        r#"
s=$(now)
for p in $paths; do sg_persist --out --register-ignore --param-sark={k2} -d /dev/$p >/dev/null; done
sg_persist --out --preempt-abort --param-rk={k2} --param-sark={k1} --prout-type=5 -d /dev/$first >/dev/null 2>&1 || \
  sg_persist --out --preempt --param-rk={k2} --param-sark={k1} --prout-type=5 -d /dev/$first >/dev/null
for p in $paths; do sg_persist --in -k -d /dev/$p >/dev/null; sg_persist --in -r -d /dev/$p >/dev/null; done
e=$(now)
echo "sg_persist_preempt_ms=$(ms $s $e 1)"
"#
    );
    let c = run_guest(&guest(
        "mn2",
        "mn1",
        &lun,
        &format!("{{ {by_hand} }} > /out/r.txt 2>&1"),
    ));
    c.assert_ok();
    let text = format!("{}{}", b.out("r.txt"), c.out("r.txt"));
    let get = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .unwrap_or(f64::NAN)
    };
    println!("persistent reservations on a 4-path LUN (tgtd), inside a TCG guest:");
    let hs = get("hamn_status_ms");
    println!("  hamn pr status                     {hs:8.1} ms");
    for k in ["sg_persist_status_ms", "mpathpersist_status_ms"] {
        let v = get(k);
        println!(
            "  {:<34} {v:8.1} ms   ratio {:5.1}x",
            k.trim_end_matches("_ms"),
            v / hs
        );
    }
    let hp = get("hamn_preempt_ms");
    let sp = get("sg_persist_preempt_ms");
    println!("  hamn pr preempt (register x4, preempt, read back x4)  {hp:8.1} ms");
    println!(
        "  same with sg_persist                                  {sp:8.1} ms   ratio {:5.1}x",
        sp / hp
    );
}
