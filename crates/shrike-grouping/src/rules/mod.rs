//! Stack-trace rules ("enhancements" in Sentry): a small language that decides which frames are
//! application code (`+app`/`-app`) and which count for grouping (`+group`/`-group`), and sorts
//! frames into categories that later rules can match.
//!
//! Syntax (Sentry's, see <https://docs.sentry.io/concepts/data-management/event-grouping/stack-trace-rules/>):
//!
//! ```text
//! # comment
//! family:native function:std::*                -app
//! path:**/node_modules/**                      -app
//! family:native function:abort                 category=throw
//! category:throw                               ^-group
//! [ category:gl ] | category:gl                category=internals
//! ```
//!
//! Matchers: `family`, `path`, `package`, `module`, `function`, `category`, `app`, and the
//! exception's `type`, `value` and `mechanism` (also spelled `stack.function`, `error.type`, ...);
//! `!` negates. `[ ... ] |` before the frame matchers constrains the caller (the frame before),
//! `| [ ... ]` after them the callee. Actions: `+app`, `-app`, `+group`, `-group`, prefixed by
//! `^` (applies to every frame the matched one called) or `v` (every frame that called it);
//! `category=NAME`, `min-frames=N`, `max-frames=N`, `invert-stacktrace=1`.

mod index;
mod parse;

pub use index::FramePlan;

use crate::component::Component;
use crate::platform::family;
use index::{FAMILIES, RuleIndex, family_slot, finder};
use parse::{glob_regex, parse_rule, strip_comment};
use regex::Regex;
use shrike_protocol::event::{Exception, Frame};
use std::borrow::Cow;

/// A rule file that could not be read.
#[derive(Debug, thiserror::Error)]
#[error("stack-trace rule line {line}: {message}")]
pub struct RuleError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    Family,
    Path,
    Package,
    Module,
    Function,
    Category,
    App,
    Type,
    Value,
    Mechanism,
}

#[derive(Debug, Clone)]
struct Matcher {
    field: Field,
    negated: bool,
    /// For `family`: the accepted families; for `app`: "yes"/"no".
    words: Vec<String>,
    pattern: Option<Glob>,
}

/// A compiled glob. The common shapes (`lit`, `lit*`, `*lit`, `**/lit/**`) are plain string
/// tests; grouping runs every rule against every frame, so this is the hot path.
#[derive(Debug, Clone)]
enum Glob {
    Exact(String),
    Prefix(String),
    Suffix(String),
    Contains(memchr::memmem::Finder<'static>),
    /// A regex, and a literal every match contains (checked first: most values lack it).
    Regex(Regex, memchr::memmem::Finder<'static>),
}

impl Glob {
    /// Path globs are case-insensitive (the values they see are lowercased) and their `*`
    /// stops at `/`; other globs are case-sensitive and `*` matches anything.
    fn new(pattern: &str, path: bool) -> Result<Glob, String> {
        let pattern = if path {
            pattern.to_lowercase()
        } else {
            // Outside paths `*` already crosses `/`, so `**` means the same.
            let mut p = pattern.to_owned();
            while p.contains("**") {
                p = p.replace("**", "*");
            }
            p
        };
        let literal = |s: &str| !s.contains(['*', '?', '[']);
        let star = if path { "**" } else { "*" };
        if literal(&pattern) {
            return Ok(Glob::Exact(pattern));
        }
        if let Some(mid) = pattern
            .strip_prefix(star)
            .and_then(|rest| rest.strip_suffix(star))
            .filter(|mid| literal(mid))
        {
            return Ok(Glob::Contains(finder(mid)));
        }
        if let Some(head) = pattern.strip_suffix(star).filter(|h| literal(h)) {
            return Ok(Glob::Prefix(head.to_owned()));
        }
        if let Some(tail) = pattern.strip_prefix(star).filter(|t| literal(t)) {
            return Ok(Glob::Suffix(tail.to_owned()));
        }
        let required = pattern
            .split(['*', '?', '[', ']'])
            .max_by_key(|part| part.len())
            .unwrap_or("")
            .to_owned();
        glob_regex(&pattern, path).map(|re| Glob::Regex(re, finder(&required)))
    }

    fn is_match(&self, value: &str) -> bool {
        match self {
            Glob::Exact(s) => value == s,
            Glob::Prefix(s) => value.starts_with(s.as_str()),
            Glob::Suffix(s) => value.ends_with(s.as_str()),
            Glob::Contains(finder) => finder.find(value.as_bytes()).is_some(),
            Glob::Regex(re, required) => {
                required.find(value.as_bytes()).is_some() && re.is_match(value)
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Range {
    Frame,
    /// The frames the matched frame called (later in the list).
    Callees,
    /// The frames that called the matched frame (earlier in the list).
    Callers,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    App(Range, bool),
    Group(Range, bool),
    Category(String),
    MinFrames(usize),
    MaxFrames(usize),
    Invert(bool),
}

/// One rule.
#[derive(Debug, Clone)]
pub struct Rule {
    text: String,
    caller: Vec<Matcher>,
    frame: Vec<Matcher>,
    callee: Vec<Matcher>,
    actions: Vec<Action>,
    /// The families the frame must be of (`None`: any), to skip a rule for a whole stack.
    families: Option<Vec<String>>,
    /// Whether the frame must have a category (most frames never get one).
    needs_category: bool,
    /// Whether the rule sets in-app flags or categories.
    modifies_frames: bool,
    /// Whether the rule has `+group`/`-group` actions.
    groups: bool,
}

impl Rule {
    /// Whether the rule can match anything in a stack of these families, with or without any
    /// categorized frame.
    fn applies(&self, families: &[&str], any_category: bool) -> bool {
        (any_category || !self.needs_category)
            && self.families.as_ref().is_none_or(|wanted| {
                wanted
                    .iter()
                    .any(|w| w == "all" || families.contains(&w.as_str()))
            })
    }
}

fn families_of(match_frames: &[MatchFrame<'_>]) -> Vec<&'static str> {
    let mut families: Vec<&'static str> = Vec::with_capacity(1);
    for frame in match_frames {
        if !families.contains(&frame.family) {
            families.push(frame.family);
        }
    }
    families
}

/// An ordered list of rules; later rules win.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    rules: Vec<Rule>,
    /// One index per frame family (`native`, `javascript`, `other`): a rule is filed only under
    /// the families it can match.
    index: [RuleIndex; 3],
}

/// A frame as rules see it, with the category and in-app flag rules have set.
#[derive(Debug, Clone, Default)]
pub struct MatchFrame<'a> {
    family: &'static str,
    path: Cow<'a, str>,
    /// `path` with a leading `/` (globs written for absolute paths also match relative ones).
    slashed_path: String,
    package: Cow<'a, str>,
    slashed_package: String,
    module: &'a str,
    function: Cow<'a, str>,
    category: String,
    /// The in-app flag after rules (None: the SDK did not say and no rule did).
    pub in_app: Option<bool>,
}

/// Stack-trace-wide settings rules may change.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackState {
    /// Fewer contributing frames than this and the stack trace does not contribute.
    pub min_frames: Option<usize>,
    /// At most this many contributing frames (the innermost) count.
    pub max_frames: Option<usize>,
    /// Group by the frames in the opposite order.
    pub invert: bool,
    /// Which rules to try on which frames.
    pub plan: FramePlan,
}

impl Rules {
    /// Parses a rule file.
    pub fn parse(text: &str) -> Result<Rules, RuleError> {
        let mut rules = Vec::new();
        for (index, raw) in text.lines().enumerate() {
            let line = strip_comment(raw).trim();
            if line.is_empty() {
                continue;
            }
            rules.push(parse_rule(line).map_err(|message| RuleError {
                line: index + 1,
                message,
            })?);
        }
        Ok(Rules::from_rules(rules))
    }

    fn from_rules(rules: Vec<Rule>) -> Rules {
        let index = FAMILIES.map(|family| RuleIndex::build(&rules, family));
        Rules { rules, index }
    }

    fn plan(&self, match_frames: &[MatchFrame<'_>]) -> FramePlan {
        let mut pairs = Vec::new();
        for (i, frame) in match_frames.iter().enumerate() {
            self.index[family_slot(frame.family)].candidates(frame, i, &mut pairs);
        }
        pairs.sort_unstable();
        pairs.dedup();
        let mut always: Vec<usize> = families_of(match_frames)
            .iter()
            .flat_map(|family| self.index[family_slot(family)].always.iter().copied())
            .collect();
        always.sort_unstable();
        always.dedup();
        FramePlan { pairs, always }
    }

    /// These rules followed by `other`'s (so `other` wins where both apply).
    pub fn chain(&self, other: &Rules) -> Rules {
        Rules::from_rules(self.rules.iter().chain(&other.rules).cloned().collect())
    }

    /// Number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Applies the in-app and category rules to the frames of one stack trace.
    pub fn match_frames<'a>(
        &self,
        frames: &'a [Frame],
        event_platform: &str,
        exception: Option<&Exception>,
    ) -> (Vec<MatchFrame<'a>>, StackState) {
        let mut match_frames: Vec<MatchFrame<'a>> = frames
            .iter()
            .map(|f| match_frame(f, event_platform))
            .collect();
        let mut state = StackState::default();
        let plan = self.plan(&match_frames);
        let mut any_category = false;
        plan.visit(match_frames.len(), |rule_index, frames| {
            let rule = &self.rules[rule_index];
            if rule.needs_category && !any_category {
                return;
            }
            for action in &rule.actions {
                match action {
                    Action::MinFrames(n) if rule.matches_stack(exception) => {
                        state.min_frames = Some(*n)
                    }
                    Action::MaxFrames(n) if rule.matches_stack(exception) => {
                        state.max_frames = Some(*n)
                    }
                    Action::Invert(b) if rule.matches_stack(exception) => state.invert = *b,
                    _ => {}
                }
            }
            if !rule.modifies_frames {
                return;
            }
            for index in frames {
                if !rule.matches_at(&match_frames, index, exception) {
                    continue;
                }
                for action in &rule.actions {
                    match action {
                        Action::Category(category) => {
                            match_frames[index].category = category.clone();
                            any_category = true;
                        }
                        Action::App(range, flag) => {
                            for i in range_indexes(*range, index, match_frames.len()) {
                                match_frames[i].in_app = Some(*flag);
                            }
                        }
                        _ => {}
                    }
                }
            }
        });
        state.plan = plan;
        (match_frames, state)
    }

    /// Applies the `+group`/`-group` rules to frame components, then the stack-trace settings.
    /// In the `app` variant only in-app frames can be made to contribute.
    pub fn apply_group_rules(
        &self,
        components: &mut [Component],
        match_frames: &[MatchFrame<'_>],
        state: &StackState,
        exception: Option<&Exception>,
        app_variant: bool,
    ) {
        let any_category = match_frames.iter().any(|f| !f.category.is_empty());
        state.plan.visit(match_frames.len(), |rule_index, frames| {
            let rule = &self.rules[rule_index];
            if !rule.groups || (rule.needs_category && !any_category) {
                return;
            }
            for index in frames {
                if !rule.matches_at(match_frames, index, exception) {
                    continue;
                }
                for action in &rule.actions {
                    let Action::Group(range, flag) = action else {
                        continue;
                    };
                    for i in range_indexes(*range, index, match_frames.len()) {
                        let component = &mut components[i];
                        if app_variant && match_frames[i].in_app != Some(true) {
                            continue;
                        }
                        if component.contributes != *flag {
                            let verb = if *flag { "un-ignored" } else { "ignored" };
                            let hint = format!("{verb} by stack trace rule ({})", rule.text);
                            if *flag {
                                component.include(hint);
                            } else {
                                component.exclude(hint);
                            }
                        }
                    }
                }
            }
        });
    }
}

fn range_indexes(range: Range, index: usize, len: usize) -> std::ops::Range<usize> {
    match range {
        Range::Frame => index..index + 1,
        Range::Callees => index + 1..len,
        Range::Callers => 0..index,
    }
}

impl Rule {
    fn matches_stack(&self, exception: Option<&Exception>) -> bool {
        self.frame.iter().all(|m| match m.field {
            Field::Type | Field::Value | Field::Mechanism => m.matches_exception(exception),
            _ => true,
        })
    }

    fn matches_at(
        &self,
        frames: &[MatchFrame<'_>],
        index: usize,
        exception: Option<&Exception>,
    ) -> bool {
        let frame_ok = self
            .frame
            .iter()
            .all(|m| m.matches(&frames[index], exception));
        if !frame_ok {
            return false;
        }
        if !self.caller.is_empty() {
            let Some(caller) = index.checked_sub(1).map(|i| &frames[i]) else {
                return false;
            };
            if !self.caller.iter().all(|m| m.matches(caller, exception)) {
                return false;
            }
        }
        if !self.callee.is_empty() {
            let Some(callee) = frames.get(index + 1) else {
                return false;
            };
            if !self.callee.iter().all(|m| m.matches(callee, exception)) {
                return false;
            }
        }
        true
    }
}

impl Matcher {
    fn matches(&self, frame: &MatchFrame<'_>, exception: Option<&Exception>) -> bool {
        let positive = match self.field {
            Field::Family => self.words.iter().any(|w| w == "all" || w == frame.family),
            Field::App => {
                let want = matches!(self.words[0].as_str(), "yes" | "true" | "1");
                frame.in_app.unwrap_or(false) == want
            }
            Field::Path => self.path_like(&frame.path, &frame.slashed_path),
            Field::Package => self.path_like(&frame.package, &frame.slashed_package),
            Field::Module => self.glob(frame.module),
            Field::Function => self.glob(&frame.function),
            Field::Category => self.glob(&frame.category),
            Field::Type | Field::Value | Field::Mechanism => {
                return self.matches_exception(exception);
            }
        };
        positive != self.negated
    }

    fn matches_exception(&self, exception: Option<&Exception>) -> bool {
        let value = exception.and_then(|e| match self.field {
            Field::Type => e.ty.clone(),
            Field::Value => e.value.clone(),
            Field::Mechanism => e.mechanism.as_ref().and_then(|m| m.ty.clone()),
            _ => None,
        });
        self.glob(value.as_deref().unwrap_or("")) != self.negated
    }

    fn glob(&self, value: &str) -> bool {
        self.pattern.as_ref().is_some_and(|p| p.is_match(value))
    }

    fn path_like(&self, value: &str, slashed: &str) -> bool {
        !value.is_empty() && (self.glob(value) || (!slashed.is_empty() && self.glob(slashed)))
    }
}

/// The frame fields rules look at, normalized the way Sentry's matchers see them.
pub fn match_frame<'a>(frame: &'a Frame, event_platform: &str) -> MatchFrame<'a> {
    let platform = frame
        .platform
        .as_deref()
        .filter(|p| !p.is_empty())
        .unwrap_or(event_platform);
    let normalize = |s: &'a str| -> Cow<'a, str> {
        if s.contains('\\') {
            Cow::Owned(crate::frame::lowercase(&s.replace('\\', "/")))
        } else if s.bytes().any(|b| b.is_ascii_uppercase() || !b.is_ascii()) {
            Cow::Owned(crate::frame::lowercase(s))
        } else {
            Cow::Borrowed(s)
        }
    };
    let function = frame
        .raw_function
        .as_deref()
        .or(frame.function.as_deref())
        .map(|f| crate::functions::trim_function_name(f, platform))
        .unwrap_or_default();
    let path = normalize(
        frame
            .abs_path
            .as_deref()
            .or(frame.filename.as_deref())
            .unwrap_or(""),
    );
    let package = normalize(frame.package.as_deref().unwrap_or(""));
    // URLs (`https://...`) never match a glob for an absolute path.
    let slashed = |s: &str| {
        if s.is_empty()
            || s.starts_with('/')
            || s.split_once(':')
                .is_some_and(|(_, rest)| rest.starts_with("//"))
        {
            String::new()
        } else {
            let mut out = String::with_capacity(s.len() + 1);
            out.push('/');
            out.push_str(s);
            out
        }
    };
    MatchFrame {
        family: family(platform),
        slashed_path: slashed(&path),
        slashed_package: slashed(&package),
        path,
        package,
        module: frame.module.as_deref().unwrap_or(""),
        function,
        category: String::new(),
        in_app: frame.in_app,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(function: &str, path: &str) -> Frame {
        Frame {
            function: Some(function.into()),
            abs_path: Some(path.into()),
            ..Default::default()
        }
    }

    #[test]
    fn parses_sentrys_syntax() {
        let rules = Rules::parse(
            "# comment\nfamily:native function:std::* -app\n\
             [ category:gl ] | category:gl category=internals\n\
             category:driver | [ category:driver ] category=internals\n\
             family:native function:\"?[[]Sentry*\" -app -group\n\
             stack.function:runApp -app -group  # trailing comment\n\
             error.type:Foo max-frames=3\n",
        )
        .expect("parses");
        assert_eq!(rules.len(), 6);
        assert!(Rules::parse("function:foo").is_err());
        assert!(Rules::parse("bogus:foo -app").is_err());
        assert!(Rules::parse("function:foo +sideways").is_err());
    }

    #[test]
    fn in_app_and_categories_apply_in_order() {
        let rules = Rules::parse(
            "path:**/node_modules/** -app\n\
             function:helper category=internals\n\
             category:internals +app\n",
        )
        .expect("parses");
        let frames = [
            frame("main", "/app/node_modules/lib/index.js"),
            frame("helper", "/app/src/x.js"),
            frame("run", "/app/src/y.js"),
        ];
        let (matched, _) = rules.match_frames(&frames, "javascript", None);
        assert_eq!(matched[0].in_app, Some(false));
        assert_eq!(matched[1].in_app, Some(true));
        assert_eq!(matched[2].in_app, None);
    }

    #[test]
    fn group_rules_with_ranges_and_app_variant() {
        let rules =
            Rules::parse("function:boundary ^-group -group\nfunction:lib +group").expect("parses");
        let frames = [
            frame("a", "/a"),
            frame("boundary", "/b"),
            frame("c", "/c"),
            frame("lib", "/d"),
        ];
        let (mut matched, state) = rules.match_frames(&frames, "python", None);
        matched[0].in_app = Some(true);
        let mut components: Vec<Component> = (0..4)
            .map(|_| Component::leaf("frame", vec!["x".into()]))
            .collect();
        components[3].exclude("non app frame");
        let mut system = components.clone();
        system[3].contributes = true;
        rules.apply_group_rules(&mut system, &matched, &state, None, false);
        assert_eq!(
            system.iter().map(|c| c.contributes).collect::<Vec<_>>(),
            [true, false, false, true]
        );
        rules.apply_group_rules(&mut components, &matched, &state, None, true);
        // In the app variant `+group` does not turn a non-app frame back on.
        assert!(!components[3].contributes);
    }

    #[test]
    fn globs() {
        let re = glob_regex("**/node_modules/**", true).expect("glob");
        assert!(re.is_match("/app/Node_Modules/x/y.js"));
        let re = glob_regex("std::*", false).expect("glob");
        assert!(re.is_match("std::rt::lang_start"));
        let re = glob_regex("?[[]Sentry*", false).expect("glob");
        assert!(re.is_match("-[SentryClient captureEvent:]"));
        let re = glob_regex("java.*", true).expect("glob");
        assert!(!re.is_match("java/lang"));
    }
}
