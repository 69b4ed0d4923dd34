//! Embeds hw-profiles/{bmc,storage,server}/*.toml into the binary, so a hamn copied alone to a
//! standby still knows its hardware; installed profiles on the search path override
//! these by name.

use std::fmt::Write;

fn embed(out: &mut String, konst: &str, dir: &str) {
    let dir = std::path::Path::new(dir);
    println!("cargo:rerun-if-changed={}", dir.display());
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "toml"))
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    let _ = writeln!(out, "pub const {konst}: &[(&str, &str)] = &[");
    for p in &names {
        println!("cargo:rerun-if-changed={}", p.display());
        let abs = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
        let _ = writeln!(
            out,
            "    ({:?}, include_str!({:?})),",
            p.display().to_string(),
            abs.display().to_string()
        );
    }
    out.push_str("];\n");
}

fn main() {
    let mut out = String::new();
    embed(&mut out, "BUILTIN_BMC_PROFILES", "hw-profiles/bmc");
    embed(&mut out, "BUILTIN_STORAGE_PROFILES", "hw-profiles/storage");
    embed(&mut out, "BUILTIN_SERVER_PROFILES", "hw-profiles/server");
    let dest = std::path::Path::new(&std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into()))
        .join("builtin_profiles.rs");
    if let Err(e) = std::fs::write(&dest, out) {
        panic!("cannot write {}: {e}", dest.display());
    }
}
