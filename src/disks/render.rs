//! The human table for `hamn disks`.

use std::fmt::Write;

use super::model::*;

fn gib(b: Option<u64>) -> String {
    match b {
        Some(b) if b >= 1 << 30 => format!("{:.1}G", b as f64 / (1u64 << 30) as f64),
        Some(b) => format!("{:.0}M", b as f64 / (1u64 << 20) as f64),
        None => "?".into(),
    }
}

fn opt(v: &Option<String>) -> &str {
    v.as_deref().unwrap_or("-")
}

fn fs(f: &Option<Filesystem>) -> String {
    match f {
        None => "-".into(),
        Some(f) => {
            let mut s = format!("{} {}", opt(&f.fs_type), opt(&f.uuid));
            if let Some(l) = &f.label {
                let _ = write!(s, " label={l}");
            }
            if !f.mountpoints.is_empty() {
                let _ = write!(s, " on {}", f.mountpoints.join(","));
            }
            s
        }
    }
}

pub fn table(inv: &Inventory) -> String {
    let mut o = String::new();
    if !inv.multipath.is_empty() {
        let _ = writeln!(o, "MULTIPATH MAPS");
        for m in &inv.multipath {
            let _ = writeln!(
                o,
                "  {} ({})  wwid {}  {}  {} path(s)  fs {}",
                opt(&m.name),
                m.kernel_name,
                opt(&m.wwid),
                gib(m.size_bytes),
                m.paths.len(),
                fs(&m.filesystem)
            );
            for p in &m.paths {
                let _ = writeln!(
                    o,
                    "    {:<6} {:<8} {:<6} {}",
                    p.kernel_name,
                    opt(&p.state),
                    opt(&p.host),
                    opt(&p.id_path)
                );
            }
            for p in &m.partitions {
                let _ = writeln!(
                    o,
                    "    part {}  {}  fs {}",
                    p.kernel_name,
                    gib(p.size_bytes),
                    fs(&p.filesystem)
                );
            }
        }
    }
    if !inv.md.is_empty() {
        let _ = writeln!(o, "MD ARRAYS");
        for a in &inv.md {
            let members: Vec<String> = a
                .members
                .iter()
                .map(|m| format!("{}({})", m.kernel_name, opt(&m.state)))
                .collect();
            let _ = writeln!(
                o,
                "  {}  {}  uuid {}  name {}  {}  state {}{}  members {}  fs {}",
                a.kernel_name,
                opt(&a.level),
                opt(&a.uuid),
                opt(&a.name),
                gib(a.size_bytes),
                opt(&a.state),
                match a.degraded {
                    Some(true) => "  DEGRADED",
                    _ => "",
                },
                members.join(" "),
                fs(&a.filesystem)
            );
        }
    }
    if !inv.disks.is_empty() {
        let _ = writeln!(o, "DISKS");
        for d in &inv.disks {
            let _ = writeln!(
                o,
                "  {:<6} {:>7}  serial {}  wwn {}  {} {}  slot {}  fs {}{}",
                d.kernel_name,
                gib(d.size_bytes),
                opt(&d.serial),
                opt(&d.wwn),
                opt(&d.vendor),
                opt(&d.model),
                opt(&d.by_path),
                fs(&d.filesystem),
                if d.holders.is_empty() {
                    String::new()
                } else {
                    format!("  used by {}", d.holders.join(","))
                }
            );
            for p in &d.partitions {
                let _ = writeln!(
                    o,
                    "    part {}  {}  fs {}",
                    p.kernel_name,
                    gib(p.size_bytes),
                    fs(&p.filesystem)
                );
            }
        }
    }
    if !inv.notes.is_empty() {
        let _ = writeln!(o, "NOTES");
        for n in &inv.notes {
            let _ = writeln!(o, "  {}: {}", n.device, n.note);
        }
    }
    if o.is_empty() {
        o.push_str("no block devices found\n");
    }
    o.trim_end().to_string()
}
