//! Per-project settings set through the API (retention, scrubbing, grouping rules), kept as one
//! JSON document per project in `project_settings`. The store reads only what it enforces itself,
//! `retention_days`; the services that use the rest parse it (see `shrike-api`'s settings). A
//! project's setting wins over the configuration file's section for that project.

use crate::{Result, RetentionConfig, Store, now_ms};
use serde::Deserialize;
use std::sync::{Arc, RwLock};

/// The retention rows are stamped with: the file's, and the projects' own over it, replaced
/// whole on refresh and shared by every clone of a store.
#[derive(Debug, Clone, Default)]
pub(crate) struct SharedRetention {
    file: Arc<RetentionConfig>,
    current: Arc<RwLock<Arc<RetentionConfig>>>,
}

impl SharedRetention {
    pub(crate) fn new(file: RetentionConfig) -> Self {
        let file = Arc::new(file);
        SharedRetention {
            current: Arc::new(RwLock::new(file.clone())),
            file,
        }
    }

    /// What applies now.
    pub(crate) fn current(&self) -> Arc<RetentionConfig> {
        self.current
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
}

/// The part of a project's settings the store enforces.
#[derive(Deserialize)]
struct Retention {
    retention_days: Option<u16>,
}

impl Store {
    /// A project's settings document, if it has one.
    pub async fn project_settings(&self, project_id: u64) -> Result<Option<String>> {
        Ok(self
            .client
            .query(&format!(
                "SELECT argMax(settings, version) FROM {}.project_settings
                 WHERE project_id = ? GROUP BY project_id",
                self.db
            ))
            .bind(project_id)
            .fetch_optional()
            .await?)
    }

    /// Every project's settings document.
    pub async fn all_project_settings(&self) -> Result<Vec<(u64, String)>> {
        Ok(self
            .client
            .query(&format!(
                "SELECT project_id, argMax(settings, version) FROM {}.project_settings
                 GROUP BY project_id ORDER BY project_id",
                self.db
            ))
            .fetch_all()
            .await?)
    }

    /// Replaces a project's settings document (validated by the caller).
    pub async fn set_project_settings(&self, project_id: u64, settings: &str) -> Result<()> {
        self.client
            .query(&format!(
                "INSERT INTO {}.project_settings (project_id, settings, version) VALUES (?, ?, ?)",
                self.db
            ))
            .bind(project_id)
            .bind(settings)
            .bind(now_ms())
            .execute()
            .await?;
        Ok(())
    }

    /// Reads the projects' settings and applies their retention (see [`Store::apply_retention`]).
    pub async fn refresh_retention(&self) -> Result<Arc<RetentionConfig>> {
        let documents = self.all_project_settings().await?;
        Ok(self.apply_retention(&documents))
    }

    /// Applies the retention of the projects' settings `documents` (project, JSON) over the
    /// file's, so rows inserted from now on carry it; returns the retention that applies.
    /// Documents that do not parse are left to the file's value.
    pub fn apply_retention(&self, documents: &[(u64, String)]) -> Arc<RetentionConfig> {
        let mut merged = (*self.retention.file).clone();
        for (project, document) in documents {
            match serde_json::from_str::<Retention>(document) {
                Ok(Retention {
                    retention_days: Some(days),
                }) => {
                    merged.projects.insert(project.to_string(), days);
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(project, %error, "project settings do not parse"),
            }
        }
        let merged = Arc::new(merged);
        *self
            .retention
            .current
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = merged.clone();
        merged
    }
}
