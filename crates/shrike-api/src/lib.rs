//! Shrike's API: one service layer ([`service::Api`]) over the store for projects, keys, issues
//! and events, and two front doors on it, both needing an API token
//! (`Authorization: Bearer`, see [`auth`]):
//!
//! - [`json`]: `/api/v1/`, JSON for browsers, curl and scripts, described by the OpenAPI document
//!   at `/api/v1/openapi.json`;
//! - [`sentry`]: the part of Sentry's `/api/0/` that `sentry-cli` and other tools call;
//! - [`grpc`]: the same calls over gRPC (tonic), for programs, on the same port (HTTP/2).
//!
//! Served by `shrike up` and, in distributed mode, by `shrike web` (stateless: any number of
//! replicas). Errors answer `{"detail": ...}` with 400 (naming the parameter), 401, 403, 404,
//! 409 or 503. No SQL is built from user text: every value is bound.

pub mod auth;
pub mod error;
mod extract;
pub mod grpc;
pub mod json;
mod search;
pub mod sentry;
pub mod service;
pub mod views;

use auth::Tokens;
use serde::{Deserialize, Serialize};
use service::Api;
use shrike_store::Store;
use std::sync::Arc;

/// `[web]`: where the API (and later the dashboard) listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebConfig {
    /// Address to listen on (`shrike up` and `shrike web`); empty: not served by `shrike up`.
    pub listen: String,
    /// The one organization's slug in Sentry's API paths (`/api/0/projects/{org}/...`).
    pub organization: String,
}

impl Default for WebConfig {
    fn default() -> Self {
        WebConfig {
            listen: "127.0.0.1:8380".into(),
            organization: "shrike".into(),
        }
    }
}

impl WebConfig {
    /// Checks the listen address.
    pub fn validate(&self) -> Result<(), String> {
        if !self.listen.is_empty() && self.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(format!("web.listen: {:?} is not host:port", self.listen));
        }
        if self.organization.is_empty()
            || !self
                .organization
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err("web.organization: use letters, digits, '-' and '_'".into());
        }
        Ok(())
    }
}

/// What every handler shares.
pub struct ApiState {
    /// The service layer.
    pub api: Api,
    /// The token check.
    pub tokens: Tokens,
    /// The organization slug of Sentry's paths.
    pub organization: String,
}

/// Every API route, on `store`; DSNs name ingest at `ingest_url`.
pub fn router(store: Store, ingest_url: String, config: &WebConfig) -> axum::Router {
    let state = Arc::new(ApiState {
        tokens: Tokens::new(store.clone()),
        api: Api::new(store, ingest_url),
        organization: config.organization.clone(),
    });
    let grpc = tonic::service::Routes::new(grpc::service(state.clone())).into_axum_router();
    json::routes()
        .merge(sentry::routes())
        .with_state(state)
        .merge(grpc)
        .fallback(|| async { error::ApiError::NotFound("this path".into()) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_is_checked() {
        assert!(WebConfig::default().validate().is_ok());
        let bad_listen = WebConfig {
            listen: "nowhere".into(),
            ..Default::default()
        };
        assert!(bad_listen.validate().is_err());
        let bad_org = WebConfig {
            organization: "a/b".into(),
            ..Default::default()
        };
        assert!(bad_org.validate().is_err());
    }

    #[test]
    fn the_openapi_document_names_every_route() {
        use utoipa::OpenApi;
        let doc = json::ApiDoc::openapi();
        let paths: Vec<&String> = doc.paths.paths.keys().collect();
        for path in [
            "/api/v1/projects",
            "/api/v1/projects/{project_id}/issues",
            "/api/v1/projects/{project_id}/events/{event_id}",
        ] {
            assert!(paths.iter().any(|p| *p == path), "{path} in {paths:?}");
        }
    }
}
