//! The grouping strategies of `newstyle:2023-01-11`, in order of precedence: exceptions (chained,
//! and exception groups reduced to the exceptions that matter), a single thread's stack trace,
//! the event's stack trace, the message; then fingerprints and checksums over them.

use crate::fingerprinting::{is_default, resolve};
use crate::frame::{self, FrameContext, frame_component, is_recursion};
use crate::variant::hashed;
use crate::{Component, Grouping, GroupingConfig, Rules, Variant, hash_values, params, platform};
use regex::Regex;
use shrike_protocol::Event;
use shrike_protocol::event::{Exception, Frame};
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, LazyLock, OnceLock};

static CHECKSUM: LazyLock<Regex> =
    LazyLock::new(|| Regex::new("^[a-fA-F0-9]{32}$").unwrap_or_else(|e| panic!("{e}")));

/// Groups an event.
pub fn group(event: &Event, config: &GroupingConfig) -> Grouping {
    if let Some(checksum) = event.checksum.as_deref().filter(|c| !c.is_empty()) {
        return checksum_grouping(checksum);
    }
    let platform = event
        .platform
        .as_deref()
        .filter(|p| !p.is_empty())
        .unwrap_or("other");
    let grouper = Grouper {
        event,
        platform,
        rules: &config.rules,
    };
    let mut components = grouper.components();

    let matched = config.fingerprint_rules.matching(event);
    let fingerprint: Vec<String> = match (matched, event.fingerprint.as_ref()) {
        (Some(rule), _) => rule.fingerprint.clone(),
        (None, Some(client)) if !client.is_empty() => client.clone(),
        _ => vec!["{{ default }}".to_owned()],
    };
    let has_default = fingerprint.iter().any(|v| is_default(v));
    let only_default = fingerprint.iter().all(|v| is_default(v));

    if !has_default {
        let values: Vec<String> = fingerprint.iter().map(|v| resolve(v, event)).collect();
        let name = if matched.is_some_and(|r| r.builtin) {
            "built_in_fingerprint"
        } else {
            "custom_fingerprint"
        };
        let hash = hash_values(&values);
        let mut variants = vec![Variant::fixed(name, hash, values)];
        for (name, mut component) in components {
            component.exclude("custom fingerprint takes precedence");
            variants.push(Variant {
                name,
                component: Some(component),
                values: Vec::new(),
                counted: false,
                extras: None,
                hash: OnceLock::from(None),
            });
        }
        return Grouping {
            variants,
            primary: 0,
        };
    }

    if !components.iter().any(|(_, c)| c.contributes) {
        components.push(("fallback", Component::node("fallback", Vec::new())));
    }
    // The values a variant hashes: its contributing values, with a hybrid fingerprint's extra
    // values around them. Borrowed while hashing; only the primary variant keeps an owned copy.
    let extras: Option<Arc<[Option<String>]>> = (!only_default).then(|| {
        fingerprint
            .iter()
            .map(|v| (!is_default(v)).then(|| resolve(v, event)))
            .collect()
    });
    let mut variants: Vec<Variant> = components
        .into_iter()
        .map(|(name, component)| Variant {
            name,
            counted: component.contributes || name == "fallback",
            component: Some(component),
            values: Vec::new(),
            extras: extras.clone(),
            hash: OnceLock::new(),
        })
        .collect();
    // When app and system hash the same values, app is the one that counts. The values are
    // gathered once per variant and reused for the comparison and the primary hash.
    let position = |name: &str| variants.iter().position(|v| v.name == name && v.counted);
    let (app, system) = (position("app"), position("system"));
    let values_of = |index: Option<usize>| -> Option<Vec<&str>> {
        let component = variants[index?].component.as_ref()?;
        Some(hashed(component, extras.as_deref()))
    };
    let app_values = values_of(app);
    let system_values = values_of(system);
    let system_repeats_app = app_values.is_some() && app_values == system_values;
    let primary = if app.is_some() {
        app
    } else {
        ["system", "default", "fallback"]
            .iter()
            .find_map(|name| position(name))
    }
    .unwrap_or(0);
    let primary_values: Vec<String> = match (Some(primary) == app, Some(primary) == system) {
        (true, _) => app_values.unwrap_or_default(),
        (_, true) => system_values.unwrap_or_default(),
        _ => variants
            .get(primary)
            .and_then(|v| v.component.as_ref())
            .map(|c| hashed(c, extras.as_deref()))
            .unwrap_or_default(),
    }
    .into_iter()
    .map(str::to_owned)
    .collect();
    if system_repeats_app && let Some(system) = system {
        variants[system].counted = false;
    }
    if let Some(variant) = variants.get_mut(primary)
        && variant.counted
    {
        variant.hash = OnceLock::from(Some(hash_values(&primary_values)));
        variant.values = primary_values;
    }
    Grouping { variants, primary }
}

fn checksum_grouping(checksum: &str) -> Grouping {
    let variant = if CHECKSUM.is_match(checksum) {
        Variant::fixed("checksum", checksum.to_owned(), vec![checksum.to_owned()])
    } else {
        Variant::fixed(
            "hashed_checksum",
            hash_values([checksum]),
            vec![checksum.to_owned()],
        )
    };
    Grouping {
        variants: vec![variant],
        primary: 0,
    }
}

/// `(variant name, component)` pairs, in Sentry's order (system before app).
type Variants = Vec<(&'static str, Component)>;

struct Grouper<'a> {
    event: &'a Event,
    platform: &'a str,
    rules: &'a Rules,
}

impl Grouper<'_> {
    /// The component variants of the strategy that wins: the first that contributes.
    fn components(&self) -> Variants {
        let mut losers: Variants = Vec::new();
        // Strategies in order of precedence, each computed only when the ones before it did
        // not contribute.
        for strategy in 0..4 {
            let variants = match strategy {
                0 if !self.event.exception.is_empty() => self.exceptions(),
                1 if !self.event.threads.is_empty() => self.threads(),
                2 => match self.event.stacktrace.as_ref() {
                    Some(s) => remove_non_stacktrace_variants(self.stacktrace(&s.frames, None)),
                    None => continue,
                },
                3 => match self.message() {
                    Some(m) => vec![("default", m)],
                    None => continue,
                },
                _ => continue,
            };
            if variants.iter().any(|(_, c)| c.contributes) {
                return variants;
            }
            losers.extend(variants);
        }
        // Nothing contributes; keep the first strategy's trees for explanation.
        let mut seen = HashSet::new();
        losers.retain(|(name, _)| seen.insert(*name));
        losers
    }

    fn message(&self) -> Option<Component> {
        let event = self.event;
        let raw = event
            .logentry
            .as_ref()
            .and_then(|l| l.message.as_deref().or(l.formatted.as_deref()))
            .or(event.message.as_deref())?;
        Some(parameterized("message", raw))
    }

    fn threads(&self) -> Variants {
        let threads = &self.event.threads;
        let pick = |filter: &dyn Fn(&shrike_protocol::event::Thread) -> bool| {
            let chosen: Vec<_> = threads.iter().filter(|t| filter(t)).collect();
            (chosen.len() == 1).then(|| chosen[0])
        };
        let thread = pick(&|t| t.crashed == Some(true))
            .or_else(|| pick(&|t| t.current == Some(true)))
            .or_else(|| pick(&|_| true));
        let Some(thread) = thread else {
            let mut c = Component::node("threads", Vec::new());
            c.note("ignored because does not contain exactly one thread");
            return vec![("app", c)];
        };
        let Some(stacktrace) = thread.stacktrace.as_ref() else {
            let mut c = Component::node("threads", Vec::new());
            c.note("thread has no stacktrace");
            return vec![("app", c)];
        };
        let variants = self
            .stacktrace(&stacktrace.frames, None)
            .into_iter()
            .map(|(name, st)| (name, Component::node("threads", vec![st])))
            .collect();
        remove_non_stacktrace_variants(variants)
    }

    fn stacktrace(&self, frames: &[Frame], exception: Option<&Exception>) -> Variants {
        let (match_frames, state) = self.rules.match_frames(frames, self.platform, exception);
        // Frame components are the same in both variants but for in-app; build them once.
        let mut base = Vec::with_capacity(frames.len());
        let mut previous: Option<&Frame> = None;
        for frame in frames {
            base.push(frame_component(
                frame,
                FrameContext {
                    event_platform: self.platform,
                    is_recursion: is_recursion(frame, previous),
                },
            ));
            previous = Some(frame);
        }
        let mut out = Vec::with_capacity(2);
        for (name, app, mut components) in [("system", false, base.clone()), ("app", true, base)] {
            if app {
                for (component, matched) in components.iter_mut().zip(&match_frames) {
                    if matched.in_app != Some(true) {
                        component.exclude("non app frame");
                    }
                }
            }
            if let [only] = frames {
                let platform = only.platform.as_deref().unwrap_or(self.platform);
                if components[0].contributes
                    && platform::family(platform) == "javascript"
                    && only.function.is_none()
                    && frame::has_url_origin(only.abs_path.as_deref(), false)
                {
                    components[0].exclude("ignored single non-URL JavaScript frame");
                }
            }
            self.rules
                .apply_group_rules(&mut components, &match_frames, &state, exception, app);
            if let Some(max) = state.max_frames {
                let mut kept = 0;
                for component in components.iter_mut().rev().filter(|c| c.contributes) {
                    if kept >= max {
                        component
                            .exclude(format!("ignored because only {max} frames are considered"));
                    } else {
                        kept += 1;
                    }
                }
            }
            if state.invert {
                components.reverse();
            }
            let mut stacktrace = Component::node("stacktrace", components);
            let contributing = stacktrace.children.iter().filter(|c| c.contributes).count();
            if let Some(min) = state.min_frames
                && stacktrace.contributes
                && contributing < min
            {
                stacktrace.exclude(format!(
                    "discarded because stack trace only contains {contributing} frame(s) which is under the configured threshold"
                ));
            }
            if app && !stacktrace.contributes && !frames.is_empty() {
                stacktrace.note("ignored because it contains no in-app frames");
            }
            out.push((name, stacktrace));
        }
        out
    }

    fn single_exception(&self, exception: &Exception) -> Variants {
        let mut ty = Component::leaf("type", exception.ty.iter().cloned().collect());
        let mechanism = exception.mechanism.as_ref();
        if mechanism.and_then(|m| m.synthetic) == Some(true) {
            ty.exclude("ignored because exception is synthetic");
        }
        let ns_error = mechanism
            .and_then(|m| m.meta.as_ref())
            .and_then(|m| m.ns_error.as_ref())
            .map(|ns| {
                let mut values: Vec<String> = ns.domain.iter().cloned().collect();
                values.extend(ns.code.map(|c| c.to_string()));
                Component::leaf("ns-error", values)
            });
        let stacktraces: Variants = match exception.stacktrace.as_ref() {
            Some(stacktrace) => self.stacktrace(&stacktrace.frames, Some(exception)),
            None => vec![("app", Component::empty("stacktrace"))],
        };
        // The value only counts where no frame does; parameterizing it is the costliest step of
        // grouping a message, so it is skipped when every variant has contributing frames (and
        // no exception group needs values to compare exceptions).
        let value_counts =
            self.event.exception.len() > 1 || stacktraces.iter().any(|(_, st)| !st.contributes);
        let value = match exception.value.as_deref() {
            // Parameterizing leaves only the empty text empty.
            Some(raw) if !raw.is_empty() && value_counts => parameterized("value", raw),
            Some(raw) if !raw.is_empty() => Component::value("value", raw.to_owned()),
            _ => Component::empty("value"),
        };
        stacktraces
            .into_iter()
            .map(|(name, stacktrace)| {
                let mut value = value.clone();
                if stacktrace.contributes && value.contributes {
                    value.exclude("ignored because stacktrace takes precedence");
                }
                if ns_error.as_ref().is_some_and(|c| c.contributes) && value.contributes {
                    value.exclude("ignored because ns-error info takes precedence");
                }
                let mut children = vec![stacktrace, ty.clone()];
                children.extend(ns_error.clone());
                children.push(value);
                (name, Component::node("exception", children))
            })
            .collect()
    }

    fn exceptions(&self) -> Variants {
        let all: Vec<&Exception> = self.event.exception.iter().collect();
        let per_exception: Vec<Variants> = all.iter().map(|e| self.single_exception(e)).collect();
        // Two exceptions are alike when their grouping trees are identical.
        let key = |index: usize| -> String {
            per_exception[index]
                .iter()
                .map(|(n, c)| format!("{n}\n{}", c.render()))
                .collect()
        };
        let chosen =
            filter_exception_groups(&all, &key).unwrap_or_else(|| (0..all.len()).collect());
        if let [only] = chosen.as_slice() {
            let only = *only;
            let variants = per_exception.into_iter().nth(only).unwrap_or_default();
            return remove_non_stacktrace_variants(variants);
        }
        let mut by_name: Vec<(&'static str, Vec<Component>)> = Vec::new();
        for index in chosen {
            for (name, component) in &per_exception[index] {
                match by_name.iter_mut().find(|(n, _)| n == name) {
                    Some((_, list)) => list.push(component.clone()),
                    None => by_name.push((name, vec![component.clone()])),
                }
            }
        }
        let variants = by_name
            .into_iter()
            .map(|(name, list)| (name, Component::node("chained-exception", list)))
            .collect();
        remove_non_stacktrace_variants(variants)
    }
}

/// A leaf holding `raw` with its event-specific values replaced, saying so when any were.
fn parameterized(id: &'static str, raw: &str) -> Component {
    let normalized = params::parameterize(raw);
    let changed = normalized != raw;
    let mut component = Component::value(id, normalized);
    if changed {
        component.note("stripped event-specific values");
    }
    component
}

/// When one variant has a contributing stack trace, variants without one stop contributing.
fn remove_non_stacktrace_variants(mut variants: Variants) -> Variants {
    if variants.len() <= 1 {
        return variants;
    }
    let with: Vec<&'static str> = variants
        .iter()
        .filter(|(_, c)| c.any_contributing("stacktrace"))
        .map(|(n, _)| *n)
        .collect();
    if with.is_empty() {
        return variants;
    }
    let suffix = if let [one] = with.as_slice() {
        format!("but the {one} variant does")
    } else {
        "others do".to_owned()
    };
    for (name, component) in &mut variants {
        if !with.contains(name) {
            component.exclude(format!(
                "ignored because this variant does not have a contributing stacktrace, {suffix}"
            ));
        }
    }
    variants
}

/// Deepest exception group nesting followed before an input is treated as malformed.
const MAX_GROUP_DEPTH: usize = 100;

/// Reduces an exception group to the exceptions that identify the problem, as Sentry does
/// (<https://github.com/getsentry/rfcs/blob/main/text/0079-exception-groups.md>): the distinct
/// "top-level" exceptions (the first non-group descendants of the root group); when they are
/// all alike, just one of them and its first chain of causes. Returns `None` (use every
/// exception) when the tree cannot be rebuilt: ids missing or duplicated, no root, a cycle.
fn filter_exception_groups(
    exceptions: &[&Exception],
    key: &dyn Fn(usize) -> String,
) -> Option<Vec<usize>> {
    if exceptions.len() <= 1 {
        return None;
    }
    struct Node {
        exception: Option<usize>,
        children: Vec<u64>,
    }
    let mut tree: HashMap<u64, Node> = HashMap::new();
    for (index, exception) in exceptions.iter().enumerate().rev() {
        let mechanism = exception.mechanism.as_ref()?;
        let id = mechanism.exception_id?;
        if tree.get(&id).is_some_and(|node| node.exception.is_some()) {
            return None; // two exceptions claim one id: the tree is ambiguous
        }
        tree.entry(id)
            .or_insert_with(|| Node {
                exception: None,
                children: Vec::new(),
            })
            .exception = Some(index);
        if let Some(parent) = mechanism.parent_id {
            tree.entry(parent)
                .or_insert_with(|| Node {
                    exception: None,
                    children: Vec::new(),
                })
                .children
                .push(id);
        }
    }
    let children = |index: usize| -> Option<Vec<usize>> {
        let id = exceptions[index].mechanism.as_ref()?.exception_id?;
        tree.get(&id)
            .map(|node| {
                node.children
                    .iter()
                    .map(|child| tree.get(child).and_then(|n| n.exception))
                    .collect::<Option<Vec<usize>>>()
            })
            .unwrap_or(Some(Vec::new()))
    };
    fn top_level(
        index: usize,
        exceptions: &[&Exception],
        children: &dyn Fn(usize) -> Option<Vec<usize>>,
        depth: usize,
        out: &mut Vec<usize>,
    ) -> Option<()> {
        if depth > MAX_GROUP_DEPTH {
            return None;
        }
        let is_group = exceptions[index]
            .mechanism
            .as_ref()
            .and_then(|m| m.is_exception_group)
            == Some(true);
        if is_group {
            for child in children(index)? {
                top_level(child, exceptions, children, depth + 1, out)?;
            }
        } else {
            out.push(index);
        }
        Some(())
    }
    let root = tree.get(&0)?.exception?;
    let mut top = Vec::new();
    top_level(root, exceptions, &children, 0, &mut top)?;
    // Sorted by type, descending (stable, like Python's sort), then consecutive duplicates
    // (identical grouping trees) collapse.
    top.sort_by(|a, b| {
        let ty = |i: usize| {
            exceptions[i]
                .ty
                .clone()
                .unwrap_or_else(|| "None".to_owned())
        };
        ty(*b).cmp(&ty(*a))
    });
    top.dedup_by(|a, b| key(*a) == key(*b));
    if let [main] = top.as_slice() {
        let mut path = vec![*main];
        let mut current = *main;
        for _ in 0..MAX_GROUP_DEPTH {
            match children(current)?.first() {
                Some(&child) => {
                    path.push(child);
                    current = child;
                }
                None => return Some(path),
            }
        }
        return None;
    }
    // The distinct top-level exceptions, then the root group.
    top.push(root);
    Some(top)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FALLBACK_HASH;

    fn grouped(json: &str) -> Grouping {
        group(
            &Event::parse(json.as_bytes()).expect("event"),
            &GroupingConfig::default(),
        )
    }

    const ERROR: &str = r#"{"platform": "python", "exception": [{"type": "KeyError", "value": "user 42",
        "stacktrace": {"frames": [
            {"module": "django.core", "function": "dispatch", "in_app": false},
            {"module": "app.views", "function": "show", "context_line": "return users[id]", "in_app": true}
        ]}}]}"#;

    #[test]
    fn app_frames_decide_and_values_do_not() {
        let g = grouped(ERROR);
        assert_eq!(g.primary().name, "app");
        assert_eq!(
            g.primary().values,
            ["app.views", "show", "return users[id]", "KeyError"]
        );
        assert_eq!(g.hash(), hash_values(&g.primary().values));
        let other_value = grouped(&ERROR.replace("user 42", "user 43"));
        assert_eq!(other_value.hash(), g.hash());
        let system = g
            .variants
            .iter()
            .find(|v| v.name == "system")
            .expect("system");
        assert!(system.hash().is_some() && system.hash() != Some(g.hash()));
    }

    #[test]
    fn without_frames_type_and_parameterized_value_decide() {
        let g = grouped(r#"{"exception": [{"type": "E", "value": "took 15ms for id 7"}]}"#);
        assert_eq!(g.primary().values, ["E", "took <duration> for id <int>"]);
        let m = grouped(
            r#"{"logentry": {"message": "user %s missing", "formatted": "user 5 missing"}}"#,
        );
        assert_eq!(
            (m.primary().name, m.primary().values.clone()),
            ("default", vec!["user %s missing".to_owned()])
        );
        let f = grouped(r#"{"exception": [{"stacktrace": {"frames": []}}]}"#);
        assert_eq!((f.primary().name, f.hash()), ("fallback", FALLBACK_HASH));
    }

    #[test]
    fn fingerprints_and_checksums() {
        let custom = grouped(&ERROR.replacen('{', r#"{"fingerprint": ["db", "{{ type }}"], "#, 1));
        assert_eq!(custom.primary().name, "custom_fingerprint");
        assert_eq!(custom.primary().values, ["db", "KeyError"]);
        let hybrid =
            grouped(&ERROR.replacen('{', r#"{"fingerprint": ["{{ default }}", "tenant-a"], "#, 1));
        assert_eq!(hybrid.primary().name, "app");
        assert_eq!(
            hybrid.primary().values,
            [
                "app.views",
                "show",
                "return users[id]",
                "KeyError",
                "tenant-a"
            ]
        );
        let only_default = grouped(&ERROR.replacen('{', r#"{"fingerprint": ["{{default}}"], "#, 1));
        assert_eq!(only_default.hash(), grouped(ERROR).hash());
        let checksum =
            grouped(r#"{"checksum": "ABCDEF0123456789abcdef0123456789", "message": "x"}"#);
        assert_eq!(checksum.hash(), "ABCDEF0123456789abcdef0123456789");
        let hashed = grouped(r#"{"checksum": "not hex", "message": "x"}"#);
        assert_eq!(
            (hashed.primary().name, hashed.hash().to_owned()),
            ("hashed_checksum", hash_values(["not hex"]))
        );
    }

    #[test]
    fn project_rules_change_grouping() {
        let event = Event::parse(ERROR.as_bytes()).expect("event");
        let config =
            GroupingConfig::with_project_rules("function:show -group\nmodule:django.* +app", "")
                .expect("rules");
        let g = group(&event, &config);
        assert_eq!(g.primary().values, ["django.core", "dispatch", "KeyError"]);
        let config =
            GroupingConfig::with_project_rules("", "type:KeyError -> key-errors").expect("rules");
        assert_eq!(group(&event, &config).primary().values, ["key-errors"]);
        assert!(GroupingConfig::with_project_rules("nonsense", "").is_err());
    }

    #[test]
    fn exception_groups_reduce_to_what_matters() {
        let group_of = |children: &str| {
            format!(
                r#"{{"exception": [{children}, {{"type": "ExceptionGroup", "value": "2 errors",
                "mechanism": {{"exception_id": 0, "is_exception_group": true}}}}]}}"#
            )
        };
        let child = |id: u32, ty: &str| {
            format!(
                r#"{{"type": "{ty}", "value": "v", "mechanism": {{"exception_id": {id}, "parent_id": 0}}}}"#
            )
        };
        // Two alike children: just one of them.
        let alike = grouped(&group_of(&format!("{}, {}", child(1, "E"), child(2, "E"))));
        assert_eq!(alike.primary().values, ["E", "v"]);
        // Different types: both, then the group.
        let two = grouped(&group_of(&format!("{}, {}", child(1, "A"), child(2, "B"))));
        assert_eq!(
            two.primary().values,
            ["B", "v", "A", "v", "ExceptionGroup", "<int> errors"]
        );
        // A cycle cannot be rebuilt: every exception counts.
        let cycle = grouped(
            r#"{"exception": [{"type": "A", "mechanism": {"exception_id": 1, "parent_id": 0, "is_exception_group": true}},
                {"type": "G", "mechanism": {"exception_id": 0, "parent_id": 1, "is_exception_group": true}}]}"#,
        );
        assert_eq!(cycle.primary().values, ["A", "G"]);
    }
}
