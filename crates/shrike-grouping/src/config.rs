//! A project's grouping settings: Sentry's default stack-trace and fingerprint rules, and the
//! project's own (`[grouping.projects.<id>]`).

use crate::{DEFAULT_RULES, FingerprintRules, Rules, fingerprinting, rules};
use std::collections::HashMap;
use std::sync::LazyLock;

static DEFAULT_RULE_SET: LazyLock<Rules> = LazyLock::new(|| {
    Rules::parse(DEFAULT_RULES).unwrap_or_else(|e| panic!("default stack-trace rules: {e}"))
});

/// A project's grouping settings.
#[derive(Debug, Clone)]
pub struct GroupingConfig {
    pub(crate) rules: Rules,
    pub(crate) fingerprint_rules: FingerprintRules,
}

/// Project grouping settings that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A stack-trace rule is malformed.
    #[error(transparent)]
    Rules(#[from] rules::RuleError),
    /// A fingerprint rule is malformed.
    #[error(transparent)]
    Fingerprint(#[from] fingerprinting::FingerprintRuleError),
}

impl Default for GroupingConfig {
    fn default() -> Self {
        GroupingConfig {
            rules: DEFAULT_RULE_SET.clone(),
            fingerprint_rules: FingerprintRules::builtin(),
        }
    }
}

impl GroupingConfig {
    /// The defaults plus a project's own stack-trace rules (applied after, so they win) and
    /// fingerprint rules (tried before the built-in ones), both in Sentry's text syntax.
    pub fn with_project_rules(
        stack_rules: &str,
        fingerprint_rules: &str,
    ) -> Result<Self, ConfigError> {
        Ok(GroupingConfig::with_rules(
            &Rules::parse(stack_rules)?,
            &FingerprintRules::parse(fingerprint_rules)?,
        ))
    }

    /// The defaults plus already-parsed project rules.
    pub fn with_rules(stack_rules: &Rules, fingerprint_rules: &FingerprintRules) -> Self {
        let base = GroupingConfig::default();
        GroupingConfig {
            rules: base.rules.chain(stack_rules),
            fingerprint_rules: fingerprint_rules.chain(&base.fingerprint_rules),
        }
    }
}

/// `[grouping]`: per-project rules in Sentry's syntax, under `[grouping.projects.<id>]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GroupingRules {
    /// Project id → its rules.
    pub projects: std::collections::BTreeMap<String, ProjectRules>,
}

/// `[grouping.projects.<id>]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProjectRules {
    /// Stack-trace rules (`path:**/vendor/** -app`, `function:log_* -group`), one per line,
    /// applied after Shrike's defaults.
    pub stack_rules: String,
    /// Fingerprint rules (`error.type:Timeout -> timeouts`), one per line, tried before the
    /// built-in ones.
    pub fingerprint_rules: String,
}

impl GroupingRules {
    /// Every project's settings, parsed; an error names the project and the rule.
    pub fn configs(&self) -> Result<ProjectConfigs, String> {
        let mut configs = ProjectConfigs::default();
        for (id, rules) in &self.projects {
            let project: u64 = id
                .parse()
                .map_err(|_| format!("grouping.projects.{id}: not a project id"))?;
            let config =
                GroupingConfig::with_project_rules(&rules.stack_rules, &rules.fingerprint_rules)
                    .map_err(|e| format!("grouping.projects.{id}: {e}"))?;
            configs.insert(project, config);
        }
        Ok(configs)
    }
}

/// Grouping settings for every project: the defaults, and the projects with rules of their own.
#[derive(Debug, Clone, Default)]
pub struct ProjectConfigs {
    default: GroupingConfig,
    projects: HashMap<u64, GroupingConfig>,
}

impl ProjectConfigs {
    /// Gives `project` its own settings.
    pub fn insert(&mut self, project: u64, config: GroupingConfig) {
        self.projects.insert(project, config);
    }

    /// The settings of `project`.
    pub fn get(&self, project: u64) -> &GroupingConfig {
        self.projects.get(&project).unwrap_or(&self.default)
    }
}
