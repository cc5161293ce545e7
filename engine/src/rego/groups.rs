//! Which VM policies can share one run: those whose parameters can be merged into
//! one `input.parameters` without any of them seeing a different value than its
//! own. Two policies join when every key both declare has the same value, and every
//! key only one declares is never mentioned by the other's modules (its own module,
//! its libraries and the bundle's): a key a policy never names cannot change what it
//! computes. Mentions are found in the source text, word by word, so the test errs
//! on the side of separate runs.

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
    let mut groups: Vec<Merged> = Vec::new();
    for &i in candidates {
        let own = params(&sources[i]);
        let fits = |g: &Merged| compatible(sources, g, i, &own);
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

fn compatible(sources: &[PolicySource<'_>], g: &Merged, i: usize, own: &Map<String, Value>) -> bool {
    // Parameters that are not an object cannot be merged.
    if !sources[i].parameters.is_object() || g.members.iter().any(|m| !sources[*m].parameters.is_object()) {
        return false;
    }
    for (k, v) in own {
        match g.parameters.get(k) {
            Some(theirs) if theirs != v => return false,
            Some(_) => {}
            None if g.members.iter().any(|m| mentions(&sources[*m], k)) => return false,
            None => {}
        }
    }
    g.parameters.keys().all(|k| own.contains_key(k) || !mentions(&sources[i], k))
}

/// Whether any module the policy can use names `key` as a word.
fn mentions(src: &PolicySource<'_>, key: &str) -> bool {
    [&src.module].into_iter().chain(&src.policy_libs).chain(src.libs).any(|m| has_word(&m.text, key))
}

fn has_word(text: &str, word: &str) -> bool {
    let is_ident = |c: char| c.is_ascii_alphanumeric() || c == '_';
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
    }
}
