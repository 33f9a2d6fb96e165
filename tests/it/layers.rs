//! The crate's modules depend one way (docs/ARCHITECTURE.md, "Layers"): each top-level module of
//! `src/` may use only the modules of lower layers. This reads the sources, so a new import that
//! points up, or a circle between two modules, fails here with the file that made it.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// The layers from the bottom up, as docs/ARCHITECTURE.md draws them. A module may use the
/// modules of lower layers only: two modules of one layer know nothing of each other.
const LAYERS: &[&[&str]] = &[
    &["types", "metrics"],
    &["error"],
    &["files"],
    &["config"],
    &["protocol"],
    &["store"],
    &["rate_limit", "auth", "slots", "attachments"],
    &["cluster", "rules", "system_messages"],
    &["actors"],
    &["app"],
    &["http"],
    &["lib"],
];

fn layer(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|layer| layer.contains(&module))
        .unwrap_or_else(|| panic!("src/{module} is in no layer: add it to LAYERS and to docs/ARCHITECTURE.md"))
}

fn sources(dir: &Path, found: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            sources(&path, found);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            found.push(path);
        }
    }
}

/// The top-level modules a file names through `crate::…`, comments left out.
fn uses(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or_default();
        for (at, _) in code.match_indices("crate::") {
            let rest = &code[at + "crate::".len()..];
            let name: String = rest.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if !name.is_empty() {
                names.insert(name);
            }
        }
    }
    names
}

#[test]
fn modules_depend_only_on_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut upward = Vec::new();
    let mut checked = 0;
    for file in &files {
        let relative = file.strip_prefix(&src).expect("under src/");
        let first = relative.components().next().expect("a path").as_os_str().to_string_lossy();
        // The programs (`main.rs`, `bin/`) use the library as `parley::…`, from outside.
        if first == "main.rs" || first == "bin" {
            continue;
        }
        let module = first.trim_end_matches(".rs").to_string();
        let text = std::fs::read_to_string(file).expect("a readable source file");
        for used in uses(&text) {
            checked += 1;
            if used != module && layer(&used) >= layer(&module) {
                upward.push(format!("src/{} ({module}) uses crate::{used}", relative.display()));
            }
        }
    }
    assert!(checked > 100, "read only {checked} imports: is src/ where this test looks?");
    assert!(upward.is_empty(), "imports that do not point down a layer:\n{}", upward.join("\n"));
}
