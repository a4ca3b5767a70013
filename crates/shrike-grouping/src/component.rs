//! Grouping components: the tree Sentry builds for every variant, and its hash.
//!
//! A component is either a leaf with string values (`function: "main"`) or a node with child
//! components (`frame` → `module`, `function`, ...). Whether a component contributes is decided
//! when it is built (a leaf contributes when it has values, a node when a child does) and may be
//! switched off later with a hint, exactly as Sentry's `GroupingComponent.update` does: switching a
//! child off afterwards does not change its parent. The hash of a tree is the md5 of the values of
//! every leaf whose whole chain of ancestors contributes, concatenated without separators.

use md5::{Digest, Md5};
use smallvec::SmallVec;
use std::borrow::Cow;
use std::fmt::Write as _;
use std::sync::Arc;

/// One node of a grouping tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Component {
    /// What the component is: `exception`, `stacktrace`, `frame`, `function`, ...
    pub id: &'static str,
    /// Whether it counts towards the hash.
    pub contributes: bool,
    /// Why it does or does not contribute, or what was done to its value.
    pub hint: Option<Cow<'static, str>>,
    /// Leaf values (nearly always one, kept inline).
    pub values: SmallVec<[String; 1]>,
    /// Child components, shared between copies (the `app` and `system` variants share their
    /// frames' subtrees); change them with [`Component::children_mut`].
    pub children: Arc<Vec<Component>>,
}

impl Component {
    /// A leaf; it contributes when it has at least one value.
    pub fn leaf(id: &'static str, values: Vec<String>) -> Self {
        Component {
            id,
            contributes: !values.is_empty(),
            hint: None,
            values: values.into_iter().collect(),
            children: Arc::default(),
        }
    }

    /// A leaf with one value.
    pub fn value(id: &'static str, value: String) -> Self {
        let mut values = SmallVec::new();
        values.push(value);
        Component {
            id,
            contributes: true,
            hint: None,
            values,
            children: Arc::default(),
        }
    }

    /// A leaf without values (the field was missing); it never contributes.
    pub fn empty(id: &'static str) -> Self {
        Component::leaf(id, Vec::new())
    }

    /// A node; it contributes when one of its children does (at this moment).
    pub fn node(id: &'static str, children: Vec<Component>) -> Self {
        Component {
            id,
            contributes: children.iter().any(|c| c.contributes),
            hint: None,
            values: SmallVec::new(),
            children: Arc::new(children),
        }
    }

    /// The children, for changing them (copied first when shared).
    pub fn children_mut(&mut self) -> &mut Vec<Component> {
        Arc::make_mut(&mut self.children)
    }

    /// Stops the component from contributing, saying why.
    pub fn exclude(&mut self, hint: impl Into<Cow<'static, str>>) {
        self.contributes = false;
        self.hint = Some(hint.into());
    }

    /// Makes the component contribute again (a `+group` rule), saying why.
    pub fn include(&mut self, hint: impl Into<Cow<'static, str>>) {
        self.contributes = true;
        self.hint = Some(hint.into());
    }

    /// Replaces a leaf's values, noting what was changed; contribution follows the new values.
    pub fn replace(&mut self, values: Vec<String>, hint: impl Into<Cow<'static, str>>) {
        self.contributes = !values.is_empty();
        self.values = values.into_iter().collect();
        self.hint = Some(hint.into());
    }

    /// Sets the hint without changing the contribution.
    pub fn note(&mut self, hint: impl Into<Cow<'static, str>>) {
        self.hint = Some(hint.into());
    }

    /// The values that count, in tree order (empty when the component does not contribute).
    pub fn contributing_values(&self) -> Vec<&str> {
        let mut out = Vec::with_capacity(64);
        self.collect(&mut out);
        out
    }

    fn collect<'a>(&'a self, out: &mut Vec<&'a str>) {
        if !self.contributes {
            return;
        }
        out.extend(self.values.iter().map(String::as_str));
        for child in self.children.iter() {
            child.collect(out);
        }
    }

    /// The md5 of the contributing values, or `None` when the component does not contribute.
    pub fn hash(&self) -> Option<String> {
        self.contributes
            .then(|| hash_values(self.contributing_values()))
    }

    /// Whether any descendant (or this component) with `id` contributes.
    pub fn any_contributing(&self, id: &str) -> bool {
        (self.id == id && self.contributes) || self.children.iter().any(|c| c.any_contributing(id))
    }

    /// Renders the tree like Sentry's snapshots: `*` marks contributing components.
    pub fn render(&self) -> String {
        let mut out = String::new();
        self.render_into(&mut out, 0);
        out
    }

    fn render_into(&self, out: &mut String, depth: usize) {
        let indent = "  ".repeat(depth);
        let star = if self.contributes { "*" } else { "" };
        let _ = write!(out, "{indent}{}{star}", self.id);
        if let Some(hint) = &self.hint {
            let _ = write!(out, " ({hint})");
        }
        out.push('\n');
        for value in &self.values {
            let _ = writeln!(out, "{indent}  {value:?}");
        }
        for child in self.children.iter() {
            child.render_into(out, depth + 1);
        }
    }
}

/// md5 of values concatenated without separators, lowercase hex (Sentry's `hash_from_values`).
pub fn hash_values<I, S>(values: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut md5 = Md5::new();
    for value in values {
        md5.update(value.as_ref().as_bytes());
    }
    hex::encode(md5.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_leaves_under_contributing_ancestors_count() {
        let mut function = Component::leaf("function", vec!["main".into()]);
        let module = Component::leaf("module", vec!["app".into()]);
        function.exclude("ignored");
        let frame = Component::node("frame", vec![module, function]);
        assert_eq!(frame.contributing_values(), vec!["app"]);
        assert_eq!(frame.hash(), Some(hash_values(["app"])));
        let mut off = frame.clone();
        off.exclude("non app frame");
        assert_eq!(off.hash(), None);
        assert!(
            frame
                .render()
                .contains("frame*\n  module*\n    \"app\"\n  function (ignored)")
        );
    }

    #[test]
    fn excluding_a_child_later_leaves_the_parent_contributing() {
        let mut frame =
            Component::node("frame", vec![Component::leaf("function", vec!["f".into()])]);
        frame.children_mut()[0].exclude("unknown function");
        assert!(frame.contributes);
        assert!(frame.contributing_values().is_empty());
        assert_eq!(
            hash_values(Vec::<String>::new()),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
    }
}
