//! Which VM policies can share one run: those whose parameters can be merged into
//! one `input.parameters` without any of them seeing a different value than its
//! own. Two policies join when every key both declare has the same value, and every
//! key only one declares is never mentioned by the other's modules (its own module,
//! its libraries and the bundle's): a key a policy never names cannot change what it
//! computes. Mentions are found in the source text, word by word, so the test errs
//! on the side of separate runs.

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

fn compatible(sources: &[PolicySource<'_>], words: &Words<'_>, g: &Merged, i: usize, own: &Map<String, Value>) -> bool {
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

/// The words of each candidate's modules (its own and its libraries) and of each
/// bundle's libraries, split once: asking whether a module names a key is then a
/// lookup, not a scan of every library's text for every key and group.
struct Words<'a> {
    own: HashMap<usize, HashSet<&'a str>>,
    libs: HashMap<&'a str, HashSet<&'a str>>,
}

impl<'a> Words<'a> {
    fn of(sources: &'a [PolicySource<'a>], candidates: &[usize]) -> Words<'a> {
        let mut w = Words { own: HashMap::new(), libs: HashMap::new() };
        for &i in candidates {
            let src = &sources[i];
            let own = [&src.module].into_iter().chain(&src.policy_libs).flat_map(|m| split(&m.text)).collect();
            w.own.insert(i, own);
            w.libs.entry(src.bundle).or_insert_with(|| src.libs.iter().flat_map(|m| split(&m.text)).collect());
        }
        w
    }

    /// Whether any module the policy can use names `key` as a word.
    fn mentions(&self, sources: &[PolicySource<'_>], i: usize, key: &str) -> bool {
        let src = &sources[i];
        if !key.chars().all(is_ident) {
            let modules = [&src.module].into_iter().chain(&src.policy_libs).chain(src.libs);
            return modules.into_iter().any(|m| has_word(&m.text, key));
        }
        let listed = |set: Option<&HashSet<&str>>| set.is_none_or(|s| s.contains(key));
        listed(self.own.get(&i)) || listed(self.libs.get(src.bundle))
    }
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
