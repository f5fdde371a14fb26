//! The library's layers, bottom first, and the test that holds the code to them: a module may
//! use modules of its own layer or of a layer below, never one above; no two top-level modules
//! may use each other, even through others; and inside a folder no two files' modules may
//! either (a `mod.rs` that uses its children, children that use it back). The binary
//! (`src/bin/edgeid/`) sits on top of them all.
//!
//! Why: a frame flows upward through these layers, and each can then be read, tested and
//! replaced knowing only what lies below it (a config parses without any model, a stage runs
//! without a config, storage knows nothing of the daemon). README.md ("Architecture") lists the
//! same table.
//!
//! The test parses every file (syn) and resolves every path to the module it names: `crate::`,
//! `super::` (any depth, from the file's module or an inline one), `self::`, aliases
//! (`use crate as root;`, `use crate::fleet as f;`), and `crate::` paths inside macro calls.
//! A text scan missed `super::super::x`, a path split over lines and an aliased crate.

/// `(layer, its modules)`, bottom first.
pub const LAYERS: &[(&str, &[&str])] = &[
    ("utilities", &["util", "clock", "resize", "plot"]),
    ("models and inference", &["manifest", "infer"]),
    (
        "vision stages",
        &["capture", "detect", "align", "encode", "heads", "morph", "tag", "track", "augment"],
    ),
    ("identities, decisions and their record", &["gallery", "trust", "decide", "journal"]),
    ("configuration (data only)", &["config"]),
    ("what a decision sets off: outputs and the fleet", &["outputs", "fleet"]),
    ("assembly: the runtime and its frame path, built from a config", &["pipeline", "runtime"]),
    ("evaluation and reports", &["eval", "audit", "bench"]),
    ("commands and the daemon", &["app", "daemon"]),
];

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};
    use std::path::Path;

    use syn::visit::Visit;

    use super::LAYERS;

    /// A module's path from the crate root (`["fleet", "offer"]`).
    type ModPath = Vec<String>;

    /// Every library file's module path, and the module paths it uses.
    struct Graph {
        modules: BTreeSet<ModPath>,
        /// (user module, used module) → a file where it is used.
        uses: BTreeMap<(ModPath, ModPath), String>,
    }

    /// The module a file is: `src/fleet/offer.rs` → fleet::offer, `src/fleet/mod.rs` → fleet.
    fn module_of(rel: &Path) -> ModPath {
        let mut parts: ModPath =
            rel.iter().map(|p| p.to_string_lossy().trim_end_matches(".rs").to_string()).collect();
        if parts.last().is_some_and(|l| l == "mod") {
            parts.pop();
        }
        parts
    }

    /// Collects the absolute module paths a file's code names.
    struct Paths<'a> {
        /// The module the code being visited is in (the file's, then inline modules').
        here: ModPath,
        /// Local names that stand for a module path (`use crate as root`, `use crate::a as b`,
        /// `use super::x`).
        aliases: BTreeMap<String, ModPath>,
        found: &'a mut Vec<ModPath>,
    }

    impl Paths<'_> {
        /// The absolute path `segments` names from here, or `None` (a crate outside, a local).
        fn resolve(&self, segments: &[String]) -> Option<ModPath> {
            let (first, rest) = segments.split_first()?;
            let mut base = match first.as_str() {
                "crate" => Vec::new(),
                "self" => self.here.clone(),
                "super" => {
                    let mut b = self.here.clone();
                    b.pop();
                    b
                }
                // A name standing for a module is followed by what it holds (`report::write`);
                // alone it is a local or an item the `use` that brought it already counted.
                _ if rest.is_empty() => return None,
                name => return self.aliases.get(name).map(|a| [a.clone(), rest.to_vec()].concat()),
            };
            let mut rest = rest;
            while let Some(("super", tail)) = rest.split_first().map(|(h, t)| (h.as_str(), t)) {
                base.pop();
                rest = tail;
            }
            base.extend(rest.iter().cloned());
            Some(base)
        }

        fn add(&mut self, segments: &[String]) {
            if let Some(p) = self.resolve(segments) {
                self.found.push(p);
            }
        }

        /// The `use` tree's paths (with their aliases recorded), each made absolute.
        fn use_tree(&mut self, prefix: &[String], tree: &syn::UseTree) {
            match tree {
                syn::UseTree::Path(p) => {
                    let prefix = [prefix, &[p.ident.to_string()]].concat();
                    self.use_tree(&prefix, &p.tree)
                }
                syn::UseTree::Name(n) => {
                    let full = [prefix, &[n.ident.to_string()]].concat();
                    let full: Vec<String> = full.into_iter().filter(|s| s != "self").collect();
                    if let Some(abs) = self.resolve(&full) {
                        self.aliases.insert(full.last().cloned().unwrap_or_default(), abs.clone());
                        self.found.push(abs);
                    } else if full.len() == 1 && full[0] == "crate" {
                        self.aliases.insert("crate".into(), Vec::new());
                    }
                }
                syn::UseTree::Rename(r) => {
                    let full: Vec<String> = [prefix, &[r.ident.to_string()]]
                        .concat()
                        .into_iter()
                        .filter(|s| s != "self")
                        .collect();
                    if let Some(abs) = self.resolve(&full) {
                        self.aliases.insert(r.rename.to_string(), abs.clone());
                        self.found.push(abs);
                    }
                }
                syn::UseTree::Glob(_) => self.add(prefix),
                syn::UseTree::Group(g) => {
                    for t in &g.items {
                        self.use_tree(prefix, t);
                    }
                }
            }
        }

        /// `crate`/`super`/`self` paths written inside a macro call's tokens (`format!`, `log`).
        fn tokens(&mut self, tokens: proc_macro2::TokenStream) {
            let tokens: Vec<proc_macro2::TokenTree> = tokens.into_iter().collect();
            let mut i = 0;
            while i < tokens.len() {
                match &tokens[i] {
                    proc_macro2::TokenTree::Group(g) => self.tokens(g.stream()),
                    proc_macro2::TokenTree::Ident(id)
                        if ["crate", "super", "self"].contains(&id.to_string().as_str())
                            || self.aliases.contains_key(&id.to_string()) =>
                    {
                        let mut segments = vec![id.to_string()];
                        let mut j = i + 1;
                        while let (
                            Some(proc_macro2::TokenTree::Punct(a)),
                            Some(proc_macro2::TokenTree::Punct(b)),
                            Some(proc_macro2::TokenTree::Ident(next)),
                        ) = (tokens.get(j), tokens.get(j + 1), tokens.get(j + 2))
                        {
                            if a.as_char() != ':' || b.as_char() != ':' {
                                break;
                            }
                            segments.push(next.to_string());
                            j += 3;
                        }
                        if segments.len() > 1 {
                            self.add(&segments);
                        }
                        i = j;
                        continue;
                    }
                    _ => {}
                }
                i += 1;
            }
        }
    }

    impl<'ast> Visit<'ast> for Paths<'_> {
        fn visit_item_use(&mut self, u: &'ast syn::ItemUse) {
            self.use_tree(&[], &u.tree);
        }

        fn visit_item_extern_crate(&mut self, e: &'ast syn::ItemExternCrate) {
            if e.ident == "self" {
                if let Some((_, alias)) = &e.rename {
                    self.aliases.insert(alias.to_string(), Vec::new());
                }
            }
        }

        fn visit_path(&mut self, p: &'ast syn::Path) {
            let segments: Vec<String> = p.segments.iter().map(|s| s.ident.to_string()).collect();
            self.add(&segments);
            syn::visit::visit_path(self, p);
        }

        fn visit_macro(&mut self, m: &'ast syn::Macro) {
            self.visit_path(&m.path);
            self.tokens(m.tokens.clone());
        }

        /// `pub(super)`, `pub(in crate::x)`: where an item may be seen from, not a use.
        fn visit_visibility(&mut self, _: &'ast syn::Visibility) {}

        fn visit_item_mod(&mut self, m: &'ast syn::ItemMod) {
            // Test code may use anything: the layers hold the library's code.
            let test = m.attrs.iter().any(|a| {
                a.path().is_ident("cfg")
                    && a.parse_args::<syn::Meta>().is_ok_and(|meta| meta.path().is_ident("test"))
            });
            if test {
                return;
            }
            // An inline module: paths inside it are relative to it; its aliases are its own.
            let (here, aliases) = (self.here.clone(), self.aliases.clone());
            self.here.push(m.ident.to_string());
            syn::visit::visit_item_mod(self, m);
            (self.here, self.aliases) = (here, aliases);
        }
    }

    /// A file's names for modules before its code is read: each child module (`mod x;`, in
    /// scope as `x::…`) and each `use` alias.
    fn children_and_aliases(v: &mut Paths<'_>, ast: &syn::File) {
        for item in &ast.items {
            if let syn::Item::Mod(m) = item {
                let child = [v.here.clone(), vec![m.ident.to_string()]].concat();
                v.aliases.insert(m.ident.to_string(), child);
            }
        }
        for item in &ast.items {
            if let syn::Item::Use(u) = item {
                v.visit_item_use(u);
            }
        }
    }

    fn graph(src: &Path) -> Graph {
        let mut files = Vec::new();
        let mut stack = vec![src.to_path_buf()];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    // The binary (src/bin/) sits on top of every layer.
                    if path != src.join("bin") {
                        stack.push(path);
                    }
                } else if path.extension().is_some_and(|e| e == "rs") {
                    files.push(path);
                }
            }
        }
        let root_files = ["lib.rs", "layers.rs"];
        let modules: BTreeSet<ModPath> = files
            .iter()
            .map(|f| f.strip_prefix(src).unwrap())
            .filter(|rel| !root_files.contains(&rel.to_string_lossy().as_ref()))
            .map(module_of)
            .collect();
        let mut uses = BTreeMap::new();
        for file in &files {
            let rel = file.strip_prefix(src).unwrap();
            if root_files.contains(&rel.to_string_lossy().as_ref()) {
                continue;
            }
            let here = module_of(rel);
            let text = std::fs::read_to_string(file).unwrap();
            let ast = syn::parse_file(&text)
                .unwrap_or_else(|e| panic!("{}: does not parse: {e}", rel.display()));
            let mut found = Vec::new();
            let mut v = Paths { here: here.clone(), aliases: BTreeMap::new(), found: &mut found };
            // Names first (a `use` below the code that uses its name still counts): the
            // file's child modules, then its `use` aliases.
            children_and_aliases(&mut v, &ast);
            v.found.clear();
            v.visit_file(&ast);
            if std::env::var("LAYERS_DUMP").is_ok_and(|d| rel.to_string_lossy() == d) {
                eprintln!("{found:?}");
            }
            for path in found {
                // The longest prefix that is a module of the crate.
                let used = (1..=path.len())
                    .rev()
                    .map(|n| path[..n].to_vec())
                    .find(|p| modules.contains(p));
                if let Some(used) = used.filter(|u| *u != here) {
                    uses.entry((here.clone(), used)).or_insert_with(|| rel.display().to_string());
                }
            }
        }
        Graph { modules, uses }
    }

    fn layer_of(module: &str) -> Option<usize> {
        LAYERS.iter().position(|(_, modules)| modules.contains(&module))
    }

    /// A circle among `nodes` through `edges`, if there is one (as the nodes it passes).
    fn circle(edges: &BTreeMap<ModPath, BTreeSet<ModPath>>) -> Option<Vec<ModPath>> {
        fn visit(
            n: &ModPath,
            edges: &BTreeMap<ModPath, BTreeSet<ModPath>>,
            on_path: &mut Vec<ModPath>,
            done: &mut BTreeSet<ModPath>,
        ) -> Option<Vec<ModPath>> {
            if let Some(i) = on_path.iter().position(|p| p == n) {
                return Some(on_path[i..].to_vec());
            }
            if done.contains(n) {
                return None;
            }
            on_path.push(n.clone());
            for next in edges.get(n).into_iter().flatten() {
                if let Some(c) = visit(next, edges, on_path, done) {
                    return Some(c);
                }
            }
            on_path.pop();
            done.insert(n.clone());
            None
        }
        let mut done = BTreeSet::new();
        edges.keys().find_map(|n| visit(n, edges, &mut Vec::new(), &mut done))
    }

    #[test]
    fn every_module_has_a_layer_and_uses_none_above_it() {
        let g = graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
        let mut wrong = Vec::new();
        let mut top: BTreeMap<ModPath, BTreeSet<ModPath>> = BTreeMap::new();
        for ((user, used), file) in &g.uses {
            let (a, b) = (&user[0], &used[0]);
            if a == b {
                continue;
            }
            top.entry(vec![a.clone()]).or_default().insert(vec![b.clone()]);
            match (layer_of(a), layer_of(b)) {
                (Some(la), Some(lb)) if lb > la => wrong.push(format!(
                    "{file}: `{a}` ({}) uses `{b}` ({}), a layer above it",
                    LAYERS[la].0, LAYERS[lb].0
                )),
                (None, _) => wrong.push(format!("`{a}` has no layer in LAYERS")),
                (_, None) => wrong.push(format!("`{b}` has no layer in LAYERS")),
                _ => {}
            }
        }
        for m in g.modules.iter().filter(|m| m.len() == 1) {
            if layer_of(&m[0]).is_none() {
                wrong.push(format!("`{}` has no layer in LAYERS", m[0]));
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
        assert_eq!(circle(&top), None, "top-level modules that use each other");
    }

    /// Inside each folder, the files' modules use one another in one direction: no `mod.rs`
    /// using a child that uses it back, no two siblings using each other.
    #[test]
    fn no_circle_inside_a_folder() {
        let g = graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
        let mut inside: BTreeMap<String, BTreeMap<ModPath, BTreeSet<ModPath>>> = BTreeMap::new();
        for (user, used) in g.uses.keys() {
            if user[0] == used[0] {
                inside
                    .entry(user[0].clone())
                    .or_default()
                    .entry(user.clone())
                    .or_default()
                    .insert(used.clone());
            }
        }
        let circles: Vec<String> = inside
            .iter()
            .filter_map(|(folder, edges)| {
                circle(edges).map(|c| {
                    let steps: Vec<String> = (0..c.len())
                        .map(|i| {
                            let (a, b) = (&c[i], &c[(i + 1) % c.len()]);
                            let file = &g.uses[&(a.clone(), b.clone())];
                            format!("{} uses {} ({file})", a.join("::"), b.join("::"))
                        })
                        .collect();
                    format!("{folder}/: {}", steps.join("; "))
                })
            })
            .collect();
        assert!(circles.is_empty(), "{}", circles.join("\n"));
    }

    /// The resolution the two tests rest on, on code written to fool a text scan.
    #[test]
    fn paths_are_resolved_whatever_their_spelling() {
        let code = r#"
            use crate as root;
            use crate::fleet as f;
            use super::super::gallery::{self, Key};
            fn x() {
                root::daemon::run();
                f::offer::stage();
                crate
                    ::outputs
                    ::Output::open();
                log::info!("{}", crate::journal::Journal::open(p));
            }
            mod inner { fn y() { super::super::super::trust::check(); } }
            mod child;
            fn z() { child::run(); }
        "#;
        let ast = syn::parse_file(code).unwrap();
        let mut found = Vec::new();
        let here = vec!["eval".to_string(), "pad".to_string()];
        let mut v = Paths { here, aliases: BTreeMap::new(), found: &mut found };
        children_and_aliases(&mut v, &ast);
        v.visit_file(&ast);
        let firsts: BTreeSet<String> = found.iter().filter_map(|p| p.first().cloned()).collect();
        for m in ["daemon", "fleet", "gallery", "outputs", "journal", "trust"] {
            assert!(firsts.contains(m), "{m} not seen: {found:?}");
        }
        let child =
            vec!["eval".to_string(), "pad".to_string(), "child".to_string(), "run".to_string()];
        assert!(found.contains(&child), "a child module's path: {found:?}");
    }
}
