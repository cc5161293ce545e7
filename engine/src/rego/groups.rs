//! Which VM policies can share one run: those whose parameters can be merged into
//! one `input.parameters` without any of them seeing a different value than its
//! own. Two policies join when every key both declare has the same value, and every
//! key only one declares is never mentioned by what the other can evaluate (its own
//! module, its libraries, and the rules of the bundle's libraries it reaches): a key a
//! policy never names cannot change what it computes. Mentions are found in the source
//! text, word by word, and a library rule counts as reached when any reached text
//! names it (whatever its package), so the test errs on the side of separate runs.

use std::collections::{HashMap, HashSet};

use serde_json::{Map, Value};

use super::unit::PolicySource;

/// A set of policies (indices) and their merged parameters.
#[derive(Debug, Default)]
pub(crate) struct Merged {
    pub members: Vec<usize>,
    pub parameters: Map<String, Value>,
}

/// Partitions the VM policies `candidates` (in manifest order) into groups that can
/// share a run, first fit.
pub(crate) fn partition(sources: &[PolicySource<'_>], candidates: &[usize]) -> Vec<Merged> {
    let words = Words::of(sources, candidates);
    let mut groups: Vec<Merged> = Vec::new();
    for &i in candidates {
        let own = params(&sources[i]);
        let fits = |g: &Merged| compatible(sources, &words, g, i, &own);
        match groups.iter_mut().find(|g| fits(g)) {
            Some(g) => {
                g.members.push(i);
                g.parameters.extend(own);
            }
            None => groups.push(Merged { members: vec![i], parameters: own }),
        }
    }
    groups
}

fn params(src: &PolicySource<'_>) -> Map<String, Value> {
    src.parameters.as_object().cloned().unwrap_or_default()
}

fn compatible(sources: &[PolicySource<'_>], words: &Words, g: &Merged, i: usize, own: &Map<String, Value>) -> bool {
    // Parameters that are not an object cannot be merged.
    if !sources[i].parameters.is_object() || g.members.iter().any(|m| !sources[*m].parameters.is_object()) {
        return false;
    }
    for (k, v) in own {
        match g.parameters.get(k) {
            Some(theirs) if theirs != v => return false,
            Some(_) => {}
            None if g.members.iter().any(|m| words.mentions(sources, *m, k)) => return false,
            None => {}
        }
    }
    g.parameters.keys().all(|k| own.contains_key(k) || !words.mentions(sources, i, k))
}

/// For each candidate, the words of what it can evaluate: its own modules and the
/// library rules they reach (see [`reach`]), split once, so that asking whether a
/// policy names a key is a lookup.
struct Words {
    reach: HashMap<usize, HashSet<String>>,
}

impl Words {
    fn of(sources: &[PolicySource<'_>], candidates: &[usize]) -> Words {
        let mut blocks: HashMap<&str, Vec<Block>> = HashMap::new();
        let mut reach = HashMap::new();
        for &i in candidates {
            let src = &sources[i];
            let libs =
                blocks.entry(src.bundle).or_insert_with(|| src.libs.iter().flat_map(|m| blocks_of(&m.text)).collect());
            let own: Vec<&str> = [&src.module].into_iter().chain(&src.policy_libs).map(|m| m.text.as_str()).collect();
            reach.insert(i, self::reach(&own, libs));
        }
        Words { reach }
    }

    /// Whether anything the policy can evaluate names `key` as a word.
    fn mentions(&self, sources: &[PolicySource<'_>], i: usize, key: &str) -> bool {
        let src = &sources[i];
        if !key.chars().all(is_ident) {
            let modules = [&src.module].into_iter().chain(&src.policy_libs).chain(src.libs);
            return modules.into_iter().any(|m| has_word(&m.text, key));
        }
        self.reach.get(&i).is_none_or(|s| s.contains(key))
    }
}

/// A top-level statement of a library module: the rule (or function) it defines
/// (`None` for `package` and `import`, which count as always reached) and the words of
/// its code, comments left out.
struct Block {
    name: Option<String>,
    words: HashSet<String>,
}

/// The words reachable from the modules `own`: theirs, and those of every library
/// block whose rule a reached text names, transitively. A dynamic reference into
/// `data` (`data.lib[x]`, an imported package indexed by a variable) or `walk`
/// reaches every block.
fn reach(own: &[&str], libs: &[Block]) -> HashSet<String> {
    let mut words: HashSet<String> = own.iter().flat_map(|t| split(t)).map(str::to_string).collect();
    let aliases: HashSet<&str> = own.iter().flat_map(|t| import_aliases(t)).collect();
    let everything = own.iter().any(|t| dynamic(t, &aliases));
    let mut reached = vec![false; libs.len()];
    loop {
        let before = words.len();
        for (b, block) in libs.iter().enumerate() {
            if !reached[b] && (everything || block.name.as_ref().is_none_or(|n| words.contains(n))) {
                reached[b] = true;
                words.extend(block.words.iter().cloned());
            }
        }
        if words.len() == before {
            break;
        }
    }
    if words.contains("walk") {
        words.extend(libs.iter().flat_map(|b| b.words.iter().cloned()));
    }
    words
}

/// Splits a module into top-level blocks: a block starts on a line that begins, outside
/// any bracket, string or comment, with an identifier. A library whose own references
/// are dynamic is one block that is always reached.
fn blocks_of(text: &str) -> Vec<Block> {
    let aliases: HashSet<&str> = import_aliases(text).into_iter().collect();
    if dynamic(text, &aliases) {
        return vec![Block { name: None, words: split(text).map(str::to_string).collect() }];
    }
    let mut blocks: Vec<(usize, String)> = Vec::new();
    let (mut depth, mut quote, mut raw, mut comment, mut escaped, mut line_start) =
        (0i32, false, false, false, false, true);
    for (at, c) in text.char_indices() {
        // `else` on a line of its own continues the rule above.
        let continues = || text[at..].strip_prefix("else").is_some_and(|r| !r.starts_with(is_ident));
        if line_start && depth <= 0 && !quote && !raw && is_ident(c) && !continues() {
            blocks.push((at, String::new()));
        }
        line_start = c == '\n';
        match c {
            '\n' => comment = false,
            _ if comment => continue,
            _ if quote => {
                quote = escaped || c != '"';
                escaped = !escaped && c == '\\';
            }
            '`' => raw = !raw,
            _ if raw => {}
            '"' => quote = true,
            '#' => {
                comment = true;
                continue;
            }
            '{' | '[' | '(' => depth += 1,
            '}' | ']' | ')' => depth -= 1,
            _ => {}
        }
        if let Some((_, code)) = blocks.last_mut() {
            code.push(c);
        }
    }
    blocks
        .into_iter()
        .map(|(_, code)| {
            let mut it = split(&code);
            let name = match it.next() {
                Some("package" | "import") | None => None,
                Some("default") => it.next().map(str::to_string),
                Some(first) => Some(first.to_string()),
            };
            Block { name, words: split(&code).map(str::to_string).collect() }
        })
        .collect()
}

/// The names modules are imported under (`import data.lib.pci` is `pci`).
fn import_aliases(text: &str) -> Vec<&str> {
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("import "))
        .filter_map(|l| {
            let l = l.split('#').next().unwrap_or_default().trim();
            match l.split_once(" as ") {
                Some((_, alias)) => Some(alias.trim()),
                None => l.rsplit('.').next(),
            }
        })
        .collect()
}

/// Whether the text indexes `data` (or an imported package) with brackets, after any
/// number of `.name` steps: `data.lib[x]`, `pci[name]`.
fn dynamic(text: &str, aliases: &HashSet<&str>) -> bool {
    let mut offset = 0;
    for word in text.split(|c: char| !is_ident(c)) {
        let end = offset + word.len();
        offset = end + text[end..].chars().next().map_or(0, char::len_utf8);
        if !(word == "data" || aliases.contains(word)) {
            continue;
        }
        let mut rest = &text[end..];
        loop {
            rest = rest.trim_start_matches([' ', '\t']);
            if let Some(r) = rest.strip_prefix('.') {
                rest = r.trim_start_matches(is_ident);
                continue;
            }
            if rest.starts_with('[') {
                return true;
            }
            break;
        }
    }
    false
}

fn is_ident(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn split(text: &str) -> impl Iterator<Item = &str> {
    text.split(|c: char| !is_ident(c)).filter(|w| !w.is_empty())
}

fn has_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back().is_none_or(|c| !is_ident(c));
        let after = text[at + word.len()..].chars().next().is_none_or(|c| !is_ident(c));
        before && after
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIB: &str = "package lib.pci\n\nimport rego.v1\n\n# `exempt_namespaces` in a comment\nnamespace := input.review.namespace\n\n\
exempt if {\n\tsome p in object.get(input.parameters, \"exempt_namespaces\", [])\n\tglob(p)\n}\n\n\
glob(p) if p == \"}#\"\n\nlevel := x if {\n  x := namespace\n}\nelse := \"\"\n\nthreshold := input.parameters.min_level\n";

    #[test]
    fn library_rules_count_only_when_reached() {
        let libs = blocks_of(LIB);
        let names: Vec<_> = libs.iter().map(|b| b.name.as_deref()).collect();
        assert_eq!(
            names,
            [None, None, Some("namespace"), Some("exempt"), Some("glob"), Some("level"), Some("threshold")]
        );
        // Comments are not code; `else` stays with its rule.
        assert!(!libs[2].words.contains("exempt_namespaces"));
        let uses_level = reach(&["package p\nimport data.lib.pci\nviolation contains 1 if pci.level == \"\""], &libs);
        assert!(uses_level.contains("namespace") && !uses_level.contains("exempt_namespaces"));
        assert!(!uses_level.contains("min_level"));
        let uses_exempt = reach(&["package p\nimport data.lib.pci\nviolation contains 1 if not pci.exempt"], &libs);
        assert!(uses_exempt.contains("exempt_namespaces") && uses_exempt.contains("glob"));
        // A dynamic reference reaches every rule.
        for own in [
            "package p\nimport data.lib.pci\nx := pci[k]",
            "package p\nx := data.lib [\"pci\"]",
            "package p\nx := walk(input)",
        ] {
            assert!(reach(&[own], &libs).contains("min_level"), "{own}");
        }
        assert!(!dynamic("x := data.lib.pci.exempt\ny := \"data\"", &HashSet::new()));
    }

    #[test]
    fn words_not_substrings() {
        assert!(has_word("x := input.parameters.registries[_]", "registries"));
        assert!(has_word("object.get(input.parameters, \"registries\", [])", "registries"));
        assert!(!has_word("trusted_registries_list := 1", "registries"));
        assert!(!has_word("registries2 := 1", "registries"));
        // The word sets agree with has_word.
        let words: HashSet<&str> = split("trusted_registries_list := input.parameters.registries2[_]").collect();
        assert!(words.contains("parameters") && words.contains("trusted_registries_list"));
        assert!(!words.contains("registries") && words.contains("registries2"));
    }
}
