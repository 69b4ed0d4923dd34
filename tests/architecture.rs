//! The layering of ../shared/design.md, checked on the source: front ends -> engine ->
//! fencing -> adapters -> ground. Reads every file under src/, outside its test module,
//! and fails on a dependency that points up, on an adapter that imports another adapter,
//! and on any import cycle between modules.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Lower number = lower layer. A module not listed fails the test: say where it belongs.
fn layer(module: &str) -> Option<(u8, &'static str)> {
    Some(match module {
        "config" | "profiles" | "secret" | "exec" | "mountinfo" | "uncached" | "lun" | "audit"
        | "fence::proof" => (0, "ground"),
        "bmc" | "scsi" | "disks" | "fs" | "svc" | "net" | "drbd" | "md" => (1, "adapter"),
        "fence" => (2, "fencing"),
        "takeover" => (3, "engine"),
        "app" | "cli" | "logging" | "main" | "lib" => (4, "front end"),
        _ => return None,
    })
}

/// The module a file belongs to, at the granularity of the layers: the top-level module,
/// except the proof, which sits in the ground floor on purpose (it depends on nothing).
fn node_of(rel: &Path) -> String {
    let parts: Vec<String> = rel
        .with_extension("")
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.len() >= 2 && parts[0] == "fence" && parts[1] == "proof" {
        return "fence::proof".into();
    }
    parts[0].clone()
}

/// The code outside the unit-test module (clippy keeps test modules last) and outside
/// comments.
fn production_code(text: &str) -> String {
    let cut = text
        .find("#[cfg(test)]\nmod ")
        .or_else(|| text.find("#[cfg(test)]\npub mod "))
        .unwrap_or(text.len());
    text[..cut]
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The crate-level modules a piece of code names: `crate::x`, `crate::x::y`, and the
/// targets of `super::` seen from `rel`.
fn references(code: &str, rel: &Path) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in code.match_indices("crate::") {
        // Not part of a longer identifier (e.g. `hamn_crate::`).
        if i > 0
            && code[..i]
                .chars()
                .last()
                .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
        {
            continue;
        }
        let rest = &code[i + "crate::".len()..];
        let first = ident(rest);
        if first.is_empty() {
            continue;
        }
        let second = rest[first.len()..]
            .strip_prefix("::")
            .map(ident)
            .unwrap_or_default();
        if first == "fence" && second == "proof" {
            out.insert("fence::proof".to_string());
        } else {
            out.insert(first);
        }
    }
    // `super::` from a file directly in src/ (src/x.rs) or a mod.rs one level down reaches
    // the crate root; deeper, it stays inside the same top-level module.
    let depth = rel.components().count();
    let is_mod = rel.file_name().is_some_and(|n| n == "mod.rs");
    let leaves_module = depth == 1 || (depth == 2 && is_mod);
    if leaves_module {
        for (i, _) in code.match_indices("super::") {
            let name = ident(&code[i + "super::".len()..]);
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).expect("src/ is readable") {
        let p = e.expect("dir entry").path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

fn graph() -> BTreeMap<String, BTreeMap<String, BTreeSet<String>>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    // node -> (dependency -> files that import it)
    let mut g: BTreeMap<String, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(&src).expect("under src").to_path_buf();
        let node = node_of(&rel);
        let code = production_code(&std::fs::read_to_string(&f).expect("readable"));
        let entry = g.entry(node.clone()).or_default();
        for dep in references(&code, &rel) {
            if dep != node {
                entry
                    .entry(dep)
                    .or_default()
                    .insert(rel.display().to_string());
            }
        }
    }
    g
}

#[test]
fn every_module_has_a_layer() {
    let g = graph();
    let unknown: Vec<&String> = g.keys().filter(|m| layer(m).is_none()).collect();
    assert!(
        unknown.is_empty(),
        "modules without a layer (add them to layer() in tests/architecture.rs): {unknown:?}"
    );
}

#[test]
fn dependencies_point_down_and_adapters_do_not_import_each_other() {
    let mut wrong = Vec::new();
    for (from, deps) in graph() {
        let Some((lf, nf)) = layer(&from) else {
            continue;
        };
        for (to, files) in deps {
            let Some((lt, nt)) = layer(&to) else {
                continue;
            };
            let files: Vec<_> = files.into_iter().collect();
            if lt > lf {
                wrong.push(format!(
                    "{from} ({nf}) imports {to} ({nt}), a higher layer, in {files:?}"
                ));
            } else if nf == "adapter" && nt == "adapter" {
                wrong.push(format!(
                    "adapter {from} imports adapter {to} in {files:?}: what they share \
                     belongs in the ground floor, or the call in the engine"
                ));
            }
        }
    }
    assert!(wrong.is_empty(), "layering broken:\n{}", wrong.join("\n"));
}

#[test]
fn there_is_no_import_cycle_between_modules() {
    let g = graph();
    // Depth-first search with colours; a grey node reached again closes a cycle.
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeMap<String, BTreeSet<String>>>,
        colour: &mut BTreeMap<String, u8>,
        stack: &mut Vec<String>,
        cycles: &mut Vec<String>,
    ) {
        colour.insert(n.to_string(), 1);
        stack.push(n.to_string());
        if let Some(deps) = g.get(n) {
            for d in deps.keys() {
                match colour.get(d.as_str()).copied().unwrap_or(0) {
                    0 => visit(d, g, colour, stack, cycles),
                    1 => {
                        let start = stack.iter().position(|s| s == d).unwrap_or(0);
                        let mut c = stack[start..].to_vec();
                        c.push(d.clone());
                        cycles.push(c.join(" -> "));
                    }
                    _ => {}
                }
            }
        }
        stack.pop();
        colour.insert(n.to_string(), 2);
    }
    let mut colour = BTreeMap::new();
    let mut cycles = Vec::new();
    for n in g.keys() {
        if colour.get(n.as_str()).copied().unwrap_or(0) == 0 {
            visit(n, &g, &mut colour, &mut Vec::new(), &mut cycles);
        }
    }
    assert!(cycles.is_empty(), "import cycles:\n{}", cycles.join("\n"));
}

#[test]
fn the_checker_sees_an_upward_import_and_a_cycle() {
    // The rules above are only as good as the parsing: a planted violation is found.
    let code = production_code(
        "use crate::takeover::run;\n// crate::app in a comment\nfn f() { crate::fence::proof::Fenced::node; }\n#[cfg(test)]\nmod tests { use crate::app; }\n",
    );
    let refs = references(&code, Path::new("fs/mount.rs"));
    assert!(refs.contains("takeover"), "{refs:?}");
    assert!(refs.contains("fence::proof"), "{refs:?}");
    assert!(
        !refs.contains("app"),
        "comments and tests are not code: {refs:?}"
    );
    assert_eq!(node_of(Path::new("fence/proof.rs")), "fence::proof");
    assert_eq!(node_of(Path::new("takeover/flows/san.rs")), "takeover");
    let root = references("use super::fence;", Path::new("app/mod.rs"));
    assert!(root.contains("fence"), "{root:?}");
    let inner = references("use super::step;", Path::new("takeover/flows/mod.rs"));
    assert!(inner.is_empty(), "{inner:?}");
}
