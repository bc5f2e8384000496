//! The layer rule, checked: a module refers only to modules of its own layer or below
//! (`docs/architecture.md`). Reads the source, so a new `use crate::…` that points upward
//! fails `cargo test` with the file, the line and the two layers.

use std::path::{Path, PathBuf};

/// Every top-level module of the crate and its layer; a module missing here fails the test,
/// so each new module is placed deliberately.
const LAYERS: &[(&str, u8, &str)] = &[
    ("ids", 0, "domain"),
    ("problem", 0, "domain"),
    ("json", 0, "domain"),
    ("pattern", 0, "domain"),
    ("event", 0, "domain"),
    ("tenant", 0, "domain"),
    ("trigger", 0, "domain"),
    ("condition", 0, "domain"),
    ("ai", 0, "domain"),
    ("firing", 0, "domain"),
    ("delivery", 0, "domain"),
    ("webhook", 0, "domain"),
    ("tls", 0, "domain"),
    ("config", 1, "configuration"),
    ("sdk_http", 2, "adapters"),
    ("aws", 2, "adapters"),
    ("postgres", 2, "adapters"),
    ("dynamodb", 2, "adapters"),
    ("sqs", 2, "adapters"),
    ("s3", 2, "adapters"),
    ("kms", 2, "adapters"),
    ("bedrock", 2, "adapters"),
    ("wiring", 2, "adapters"),
    ("pipeline", 3, "pipeline"),
    ("api", 4, "edges"),
    ("consumers", 4, "edges"),
    ("schedules", 4, "edges"),
    ("authorizer", 4, "edges"),
    ("cognito", 4, "edges"),
];

/// Modules outside the rule: the crate root, and the test helpers (which drive every layer).
const OUTSIDE: &[&str] = &["lib", "layers", "testing"];

fn layer_of(module: &str) -> Option<(u8, &'static str)> {
    LAYERS
        .iter()
        .find(|(name, _, _)| *name == module)
        .map(|(_, layer, label)| (*layer, *label))
}

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source directory") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

fn ident(text: &str) -> &str {
    let text = text.trim_start();
    let end = text
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(text.len());
    &text[..end]
}

/// The top-level modules some code names through `crate::`, with the byte offset of each
/// (`crate::a::b`, and each member of `crate::{a, b::c}`, over several lines too).
fn crate_refs(code: &str) -> Vec<(usize, &str)> {
    let mut found = Vec::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        match rest.strip_prefix('{') {
            Some(group) => {
                // Members at depth 0 of the group, up to its own closing brace.
                let mut depth = 0;
                let mut start = 0;
                for (i, c) in group.char_indices() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => {
                            found.push((at, ident(&group[start..i])));
                            break;
                        }
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            found.push((at, ident(&group[start..i])));
                            start = i + 1;
                        }
                        _ => {}
                    }
                }
            }
            None => found.push((at, ident(rest))),
        }
    }
    found.retain(|(_, name)| !name.is_empty());
    found
}

#[test]
fn no_module_refers_to_a_layer_above_its_own() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &mut files);
    let mut problems = Vec::new();
    for file in &files {
        let relative = file.strip_prefix(&root).expect("under src");
        let module = relative
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|c| c.trim_end_matches(".rs"))
            .expect("a module name");
        if OUTSIDE.contains(&module) {
            continue;
        }
        let Some((layer, label)) = layer_of(module) else {
            problems.push(format!(
                "{module}: not placed in a layer (add it to LAYERS)"
            ));
            continue;
        };
        let text = std::fs::read_to_string(file).expect("readable source");
        // Comments may name any module (documentation links are not dependencies): blanked,
        // keeping the lines so that offsets still give line numbers.
        let code: String = text
            .lines()
            .map(|line| {
                if line.trim_start().starts_with("//") {
                    ""
                } else {
                    line
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        for (at, target) in crate_refs(&code) {
            if target == module || layer_of(target).is_none() {
                continue; // itself, or an item of the crate root (`crate::error_chain`)
            }
            let (target_layer, target_label) = layer_of(target).unwrap_or((0, ""));
            if target_layer > layer {
                let line = code[..at].matches('\n').count() + 1;
                problems.push(format!(
                    "{}:{line}: {module} ({label}) refers to {target} ({target_label})",
                    relative.display()
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "layer rule broken:\n{}",
        problems.join("\n")
    );
}

#[test]
fn the_reference_scanner_finds_every_crate_path() {
    let names = |code| -> Vec<&str> { crate_refs(code).into_iter().map(|(_, n)| n).collect() };
    assert_eq!(
        names("use crate::pipeline::x; let a = crate::api::y();"),
        vec!["pipeline", "api"]
    );
    assert_eq!(
        names("use crate::{\n    delivery::{A, B},\n    ids::C,\n    api,\n};"),
        vec!["delivery", "ids", "api"]
    );
    assert!(names("no paths here").is_empty());
}
