//! The library's layers, bottom first, and the test that holds the code to them: a module may
//! use modules of its own layer or of a layer below, never one above, and no two modules may use
//! each other, even through others. The binary (`src/bin/edgeid/`) sits on top of them all.
//!
//! Why: a frame flows upward through these layers, and each can then be read, tested and
//! replaced knowing only what lies below it (a config parses without any model, a stage runs
//! without a config, storage knows nothing of the daemon). README.md ("Architecture") lists the
//! same table.

/// `(layer, its modules)`, bottom first.
pub const LAYERS: &[(&str, &[&str])] = &[
    ("utilities", &["util", "clock", "resize", "plot"]),
    ("models and inference", &["manifest", "infer"]),
    (
        "vision stages",
        &["capture", "detect", "align", "encode", "heads", "morph", "tag", "track", "augment"],
    ),
    (
        "identities, decisions and their record",
        &["gallery", "trust", "decide", "journal", "outputs", "fleet"],
    ),
    ("configuration (data only)", &["config"]),
    ("assembly: the stages built from a config", &["pipeline"]),
    ("evaluation and reports", &["eval", "audit", "bench"]),
    ("commands and the daemon", &["app", "daemon"]),
];

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    use super::LAYERS;

    /// Top-level module → (module it uses → a file that uses it).
    type Uses = BTreeMap<String, BTreeMap<String, String>>;

    /// The `crate::<module>` paths of every library file, comments left out (doc links are not
    /// uses), grouped imports (`use crate::{a::X, b}`) included.
    fn uses(src: &Path) -> Uses {
        let mut out = Uses::new();
        let mut stack = vec![src.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    // The binary (src/bin/) sits on top of every layer.
                    if path != src.join("bin") {
                        stack.push(path);
                    }
                    continue;
                }
                let rel = path.strip_prefix(src).unwrap().to_string_lossy().into_owned();
                if !rel.ends_with(".rs") || ["lib.rs", "layers.rs"].contains(&rel.as_str()) {
                    continue;
                }
                let module = rel.split('/').next().unwrap().trim_end_matches(".rs").to_string();
                let text = std::fs::read_to_string(&path).unwrap();
                let code: String = text
                    .lines()
                    .map(|l| l.split("//").next().unwrap())
                    .collect::<Vec<_>>()
                    .join("\n");
                let entry = out.entry(module.clone()).or_default();
                for used in crate_paths(&code) {
                    if used != module {
                        entry.entry(used).or_insert_with(|| rel.clone());
                    }
                }
            }
        }
        out
    }

    /// The first segment of every `crate::…` path in `code`.
    fn crate_paths(code: &str) -> BTreeSet<String> {
        let mut out = BTreeSet::new();
        for (i, _) in code.match_indices("crate::") {
            let rest = &code[i + "crate::".len()..];
            if let Some(group) = rest.strip_prefix('{') {
                // Top-level items of the group only: skip nested braces.
                let (mut depth, mut item) = (0, String::new());
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => {
                            out.extend(first_segment(&item));
                            item.clear();
                        }
                        _ if depth == 0 => item.push(c),
                        _ => {}
                    }
                }
                out.extend(first_segment(&item));
            } else {
                out.extend(first_segment(rest));
            }
        }
        out.remove("self");
        out
    }

    fn first_segment(path: &str) -> Option<String> {
        let name: String = path
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        (!name.is_empty()).then_some(name)
    }

    fn layer_of(module: &str) -> Option<usize> {
        LAYERS.iter().position(|(_, modules)| modules.contains(&module))
    }

    #[test]
    fn every_module_has_a_layer_and_uses_none_above_it() {
        let uses = uses(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
        let mut wrong = Vec::new();
        for (module, used) in &uses {
            let Some(layer) = layer_of(module) else {
                wrong.push(format!("module `{module}` is in no layer: add it to LAYERS"));
                continue;
            };
            for (dep, file) in used {
                match layer_of(dep) {
                    Some(l) if l <= layer => {}
                    Some(l) => wrong.push(format!(
                        "src/{file}: `{module}` ({}) uses `{dep}` ({}), a layer above it",
                        LAYERS[layer].0, LAYERS[l].0
                    )),
                    None => wrong.push(format!("src/{file}: uses `{dep}`, which is in no layer")),
                }
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn no_two_modules_use_each_other() {
        let uses = uses(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
        // Depth-first search; a module met again while still on the path closes a circle.
        fn visit<'a>(
            m: &'a str,
            uses: &'a Uses,
            path: &mut Vec<&'a str>,
            done: &mut BTreeSet<&'a str>,
        ) {
            if let Some(start) = path.iter().position(|p| *p == m) {
                let circle = [&path[start..], &[m]].concat().join(" → ");
                panic!("modules use each other in a circle: {circle}");
            }
            if !done.insert(m) {
                return;
            }
            path.push(m);
            for dep in uses.get(m).into_iter().flat_map(|d| d.keys()) {
                visit(dep, uses, path, done);
            }
            path.pop();
        }
        let mut done = BTreeSet::new();
        for m in uses.keys() {
            visit(m, &uses, &mut Vec::new(), &mut done);
        }
    }

    /// The scanner itself: a use against the direction and a circle are both found (so the two
    /// tests above cannot pass by reading nothing).
    #[test]
    fn the_scanner_sees_grouped_and_nested_uses() {
        let code =
            "use crate::{config::Config, detect::{Face, nms}};\nlet x = crate::util::hex(b);";
        let found: Vec<_> = crate_paths(code).into_iter().collect();
        assert_eq!(found, ["config", "detect", "util"]);
        let uses = uses(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
        assert!(uses["detect"].contains_key("infer"), "{:?}", uses["detect"]);
        assert!(uses.len() >= 20, "{} modules", uses.len());
    }
}
