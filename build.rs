//! Embeds hw-profiles/bmc/*.toml into the binary, so a hamn copied alone to a standby
//! still knows its BMCs; installed profiles on the search path override these by name.

use std::fmt::Write;

fn main() {
    let dir = std::path::Path::new("hw-profiles/bmc");
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
    let mut out = String::from("pub const BUILTIN_BMC_PROFILES: &[(&str, &str)] = &[\n");
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
    let dest = std::path::Path::new(&std::env::var("OUT_DIR").unwrap_or_else(|_| ".".into()))
        .join("builtin_profiles.rs");
    if let Err(e) = std::fs::write(&dest, out) {
        panic!("cannot write {}: {e}", dest.display());
    }
}
