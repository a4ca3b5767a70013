//! Projects' own settings, set through the API (`shrike_api::ProjectSettings`), applied over the
//! configuration file's: the normalizer's scrubbing and grouping rules, the store's retention.
//! Read at start and again every `settings_refresh_secs`; a read that fails keeps what applies.

use crate::config::Config;
use shrike_api::views::ProjectSettings;
use shrike_normalizer::{Projects, SharedProjects};
use shrike_store::Store;
use std::sync::{Arc, RwLock};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// The normalizer's settings from the file and `documents` (project id, JSON) over it. A
/// document that does not parse or validate is left out, with a warning.
pub fn projects(config: &Config, documents: &[(u64, String)]) -> anyhow::Result<Projects> {
    let mut scrubbing = config.scrubbing.clone();
    let mut grouping = config.grouping.clone();
    for (project, document) in documents {
        let settings = match serde_json::from_str::<ProjectSettings>(document) {
            Ok(settings) => settings,
            Err(error) => {
                tracing::warn!(project, %error, "project settings do not parse; left out");
                continue;
            }
        };
        if let Err((field, error)) = settings.validate() {
            tracing::warn!(project, field, %error, "project settings not valid; left out");
            continue;
        }
        let key = project.to_string();
        if let Some(s) = settings.scrubbing {
            scrubbing.projects.insert(key.clone(), s.into());
        }
        if let Some(g) = settings.grouping {
            grouping.projects.insert(key, g.into());
        }
    }
    Ok(Projects {
        grouping: grouping.configs().map_err(anyhow::Error::msg)?,
        scrubbing: scrubbing.scrubbers().map_err(anyhow::Error::msg)?,
    })
}

/// The normalizer's settings, from the file only until the first refresh.
pub fn shared(config: &Config) -> anyhow::Result<SharedProjects> {
    Ok(Arc::new(RwLock::new(Arc::new(config.projects()?))))
}

/// Reads the settings once and applies them: the store's retention and, with `normalizer`, its
/// projects.
async fn refresh(config: &Config, store: &Store, normalizer: Option<&SharedProjects>) {
    let documents = match store.all_project_settings().await {
        Ok(documents) => documents,
        Err(error) => {
            tracing::warn!(%error, "project settings not read; the last ones still apply");
            return;
        }
    };
    store.apply_retention(&documents);
    let Some(shared) = normalizer else { return };
    match projects(config, &documents) {
        Ok(projects) => {
            *shared.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(projects);
        }
        Err(error) => tracing::warn!(error = format!("{error:#}"), "project settings not applied"),
    }
}

/// Refreshes the settings now and then every `settings_refresh_secs` until `shutdown`.
pub async fn keep_fresh(
    config: Config,
    store: Store,
    normalizer: Option<SharedProjects>,
    shutdown: CancellationToken,
) {
    let every = Duration::from_secs(config.settings_refresh_secs.max(1));
    loop {
        refresh(&config, &store, normalizer.as_ref()).await;
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(every) => {}
        }
    }
}
