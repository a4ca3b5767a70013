//! The variants of one event's grouping, and which of them decides its issue.

use crate::component::{Component, hash_values};
use std::sync::{Arc, OnceLock};

/// One grouping variant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    /// `app`, `system`, `default`, `fallback`, `custom_fingerprint`, `built_in_fingerprint`,
    /// `checksum` or `hashed_checksum`.
    pub name: &'static str,
    /// The component tree (for component variants).
    pub component: Option<Component>,
    /// The hashed values: a fingerprint's resolved values, or, for the primary variant, the
    /// component's contributing ones (with a hybrid fingerprint's extra values). Other component
    /// variants leave this empty; their trees hold the values.
    pub values: Vec<String>,
    /// Whether the variant has a hash.
    pub(crate) counted: bool,
    /// A hybrid fingerprint's entries: `None` stands for the component's values.
    pub(crate) extras: Option<Arc<[Option<String>]>>,
    /// The hash, computed when first asked for (only the primary one usually is).
    pub(crate) hash: OnceLock<Option<String>>,
}

impl Variant {
    pub(crate) fn fixed(name: &'static str, hash: String, values: Vec<String>) -> Self {
        Variant {
            name,
            component: None,
            values,
            counted: true,
            extras: None,
            hash: OnceLock::from(Some(hash)),
        }
    }

    /// The hash, or `None` when the variant does not contribute.
    pub fn hash(&self) -> Option<&str> {
        self.hash
            .get_or_init(|| {
                if !self.counted {
                    return None;
                }
                Some(match &self.component {
                    Some(component) => hash_values(hashed(component, self.extras.as_deref())),
                    None => hash_values(&self.values),
                })
            })
            .as_deref()
    }
}

/// The values a component variant hashes: its contributing values, placed where a hybrid
/// fingerprint says `{{ default }}`.
pub(crate) fn hashed<'a>(
    component: &'a Component,
    extras: Option<&'a [Option<String>]>,
) -> Vec<&'a str> {
    let contributing = component.contributing_values();
    let Some(extras) = extras else {
        return contributing;
    };
    let mut out = Vec::with_capacity(contributing.len() + extras.len());
    for value in extras {
        match value {
            Some(extra) => out.push(extra.as_str()),
            None => out.extend(contributing.iter().copied()),
        }
    }
    out
}

/// The result of grouping one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grouping {
    /// All variants, the primary one included.
    pub variants: Vec<Variant>,
    pub(crate) primary: usize,
}

impl Grouping {
    /// The variant that decides the issue.
    pub fn primary(&self) -> &Variant {
        &self.variants[self.primary]
    }

    /// The primary hash: 32 lowercase hex characters.
    pub fn hash(&self) -> &str {
        self.primary().hash().unwrap_or(FALLBACK_HASH)
    }

    /// Renders every variant like Sentry's snapshots, for explanations and debugging.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for variant in &self.variants {
            out.push_str(&format!(
                "{}:\n  hash: {}\n",
                variant.name,
                variant.hash().unwrap_or("null")
            ));
            if let Some(component) = &variant.component {
                for line in component.render().lines() {
                    out.push_str("  ");
                    out.push_str(line);
                    out.push('\n');
                }
            } else {
                out.push_str(&format!("  values: {:?}\n", variant.values));
            }
        }
        out
    }
}

/// md5 of nothing: the hash of every event without anything to group by.
pub const FALLBACK_HASH: &str = "d41d8cd98f00b204e9800998ecf8427e";
