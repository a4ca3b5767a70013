//! The index that finds which rules can match a frame with a few lookups on its fields, and the
//! per-stack plan of which rules to try on which frames.

use super::{Action, Field, Glob, MatchFrame, Matcher, Rule};
use foldhash::HashMap;
use regex::Regex;

pub(super) const FAMILIES: [&str; 3] = ["native", "javascript", "other"];

pub(super) fn family_slot(family: &str) -> usize {
    FAMILIES.iter().position(|f| *f == family).unwrap_or(2)
}

/// The frame fields a rule can be looked up by.
pub(super) const INDEXED: [Field; 4] =
    [Field::Path, Field::Package, Field::Module, Field::Function];

/// Finds the rules that can match a frame with a few lookups on its fields, instead of trying
/// every rule on every frame (grouping's hot path: hundreds of rules, dozens of frames). Each
/// rule is filed under one of its positive path/package/module/function matchers; rules without
/// one are tried on every frame.
#[derive(Debug, Clone, Default)]
pub(super) struct RuleIndex {
    /// Rules tried on every frame.
    pub(super) always: Vec<usize>,
    /// Per indexed field: exact values.
    exact: [HashMap<String, Vec<usize>>; 4],
    /// Per indexed field: prefixes, filed under their first `KEY` bytes.
    prefix: [PrefixBuckets; 4],
    /// Per indexed field: infixes, found together in one pass, and the rules of each.
    infixes: [Option<Infixes>; 4],
    /// Per indexed field: infixes starting with `/`, which can also match a slashed value.
    slash_infixes: [Vec<(String, usize)>; 4],
    /// Per indexed field: other globs (suffixes, regexes, short prefixes).
    other: [Vec<(Glob, usize)>; 4],
}

pub(super) fn finder(needle: &str) -> memchr::memmem::Finder<'static> {
    memchr::memmem::Finder::new(needle.as_bytes()).into_owned()
}

/// A field's infixes: a regex that says quickly whether any is there (most values have none),
/// and an automaton that says which.
#[derive(Debug, Clone)]
pub(super) struct Infixes {
    any: Regex,
    which: aho_corasick::AhoCorasick,
    rules: Vec<usize>,
}

/// Prefixes filed under their first bytes, with their rules.
pub(super) type PrefixBuckets = HashMap<Vec<u8>, Vec<(String, usize)>>;

/// Bytes of a prefix used as its bucket key.
pub(super) const KEY: usize = 3;

impl RuleIndex {
    pub(super) fn build(rules: &[Rule], family: &str) -> Self {
        let mut index = RuleIndex::default();
        let mut infixes: [Vec<(String, usize)>; 4] = Default::default();
        for (rule_index, rule) in rules.iter().enumerate() {
            if !rule.applies(&[family], true) {
                continue;
            }
            let stack_level = rule.actions.iter().any(|a| {
                matches!(
                    a,
                    Action::MinFrames(_) | Action::MaxFrames(_) | Action::Invert(_)
                )
            });
            // The most selective positive matcher on an indexed field.
            let rank = |m: &Matcher| match &m.pattern {
                Some(Glob::Exact(_)) => 0,
                Some(Glob::Prefix(p)) if p.len() >= KEY => 1,
                _ => 2,
            };
            let best = rule
                .frame
                .iter()
                .filter(|m| !m.negated && INDEXED.contains(&m.field))
                .min_by_key(|m| rank(m));
            let (Some(matcher), false) = (best, stack_level) else {
                index.always.push(rule_index);
                continue;
            };
            let slot = INDEXED
                .iter()
                .position(|f| *f == matcher.field)
                .unwrap_or(0);
            match &matcher.pattern {
                Some(Glob::Exact(value)) => index.exact[slot]
                    .entry(value.clone())
                    .or_default()
                    .push(rule_index),
                Some(Glob::Prefix(prefix)) if prefix.len() >= KEY => index.prefix[slot]
                    .entry(prefix.as_bytes()[..KEY].to_vec())
                    .or_default()
                    .push((prefix.clone(), rule_index)),
                // A regex is filed under the literal it requires; candidates are verified anyway.
                Some(Glob::Contains(finder) | Glob::Regex(_, finder))
                    if finder.needle().len() >= 2 =>
                {
                    infixes[slot].push((
                        String::from_utf8_lossy(finder.needle()).into_owned(),
                        rule_index,
                    ))
                }
                Some(glob) => index.other[slot].push((glob.clone(), rule_index)),
                None => index.always.push(rule_index),
            }
        }
        for (slot, list) in infixes.into_iter().enumerate() {
            if list.is_empty() {
                continue;
            }
            index.slash_infixes[slot] = list
                .iter()
                .filter(|(needle, _)| needle.starts_with('/'))
                .map(|(needle, r)| (needle.clone(), *r))
                .collect();
            let any = Regex::new(
                &list
                    .iter()
                    .map(|(needle, _)| regex::escape(needle))
                    .collect::<Vec<_>>()
                    .join("|"),
            );
            let which = aho_corasick::AhoCorasick::new(list.iter().map(|(needle, _)| needle));
            if let (Ok(any), Ok(which)) = (any, which) {
                let rules = list.into_iter().map(|(_, r)| r).collect();
                index.infixes[slot] = Some(Infixes { any, which, rules });
            }
        }
        index
    }

    /// The rules worth trying on one frame, pushed as `(rule, frame)` pairs.
    pub(super) fn candidates(
        &self,
        frame: &MatchFrame<'_>,
        frame_index: usize,
        out: &mut Vec<(usize, usize)>,
    ) {
        for (slot, field) in INDEXED.iter().enumerate() {
            let (value, slashed) = match field {
                Field::Path => (&*frame.path, frame.slashed_path.as_str()),
                Field::Package => (&*frame.package, frame.slashed_package.as_str()),
                Field::Module => (frame.module, ""),
                _ => (&*frame.function, ""),
            };
            for (slashed_pass, value) in [(false, value), (true, slashed)] {
                if value.is_empty() {
                    continue;
                }
                if let Some(rules) = self.exact[slot].get(value) {
                    out.extend(rules.iter().map(|r| (*r, frame_index)));
                }
                if let Some(bucket) = value
                    .as_bytes()
                    .get(..KEY)
                    .and_then(|k| self.prefix[slot].get(k))
                {
                    out.extend(
                        bucket
                            .iter()
                            .filter(|(prefix, _)| value.starts_with(prefix.as_str()))
                            .map(|(_, r)| (*r, frame_index)),
                    );
                }
                // Infixes are searched in the value itself; the slashed copy only adds the
                // infixes starting with `/` that match at its very start.
                if slashed_pass {
                    out.extend(
                        self.slash_infixes[slot]
                            .iter()
                            .filter(|(needle, _)| value.starts_with(needle.as_str()))
                            .map(|(_, r)| (*r, frame_index)),
                    );
                } else if let Some(infixes) = &self.infixes[slot]
                    && infixes.any.is_match(value)
                {
                    out.extend(
                        infixes
                            .which
                            .find_overlapping_iter(value)
                            .map(|m| (infixes.rules[m.pattern().as_usize()], frame_index)),
                    );
                }
                out.extend(
                    self.other[slot]
                        .iter()
                        .filter(|(glob, _)| glob.is_match(value))
                        .map(|(_, r)| (*r, frame_index)),
                );
            }
        }
    }
}

/// Which rules to try on which frames of one stack, in rule order. Computed once per stack
/// from fields rules never change, and used for both the in-app pass and the group passes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FramePlan {
    /// `(rule, frame)` pairs from the index, sorted.
    pub(super) pairs: Vec<(usize, usize)>,
    /// The rules tried on every frame that can apply to this stack's families.
    pub(super) always: Vec<usize>,
}

impl FramePlan {
    /// Visits rules in order, each with the frames it may match.
    pub(super) fn visit(
        &self,
        frame_count: usize,
        mut f: impl FnMut(usize, &mut dyn Iterator<Item = usize>),
    ) {
        let (mut p, mut a) = (0, 0);
        loop {
            let next_pair = self.pairs.get(p).map(|(r, _)| *r);
            let next_always = self.always.get(a).copied();
            let rule = match (next_pair, next_always) {
                (Some(x), Some(y)) => x.min(y),
                (Some(x), None) => x,
                (None, Some(y)) => y,
                (None, None) => return,
            };
            if next_always == Some(rule) {
                a += 1;
                while self.pairs.get(p).is_some_and(|(r, _)| *r == rule) {
                    p += 1;
                }
                f(rule, &mut (0..frame_count));
            } else {
                let start = p;
                while self.pairs.get(p).is_some_and(|(r, _)| *r == rule) {
                    p += 1;
                }
                f(rule, &mut self.pairs[start..p].iter().map(|(_, i)| *i));
            }
        }
    }
}
