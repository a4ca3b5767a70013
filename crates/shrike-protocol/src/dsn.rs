//! Data Source Names: the URL an SDK is configured with, `{scheme}://{public_key}@{host}/{project_id}`.
//!
//! Shrike prints DSNs for its projects and parses them when an envelope header carries one; it never
//! puts a secret key in a DSN (modern SDKs do not need one).

use std::fmt;
use std::str::FromStr;

/// A parsed DSN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dsn {
    /// `http` or `https`.
    pub scheme: String,
    /// The project key's public part, sent by SDKs as `sentry_key`.
    pub public_key: String,
    /// Host name or address of the ingest endpoint.
    pub host: String,
    /// Port, when not the scheme's default.
    pub port: Option<u16>,
    /// Path prefix before the project id (empty for most installations).
    pub path: String,
    /// The numeric project id.
    pub project_id: u64,
}

/// Why a string is not a DSN.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DsnError {
    /// The string is not a URL.
    #[error("dsn is not a valid url: {0}")]
    Url(String),
    /// The scheme is neither http nor https.
    #[error("dsn scheme must be http or https")]
    Scheme,
    /// No public key before the `@`.
    #[error("dsn has no public key")]
    NoKey,
    /// The last path segment is not a project id.
    #[error("dsn has no numeric project id")]
    NoProject,
}

impl Dsn {
    /// Builds the DSN for a key of a project served at `base_url` (for example `http://127.0.0.1:8000`).
    pub fn for_project(
        base_url: &str,
        public_key: &str,
        project_id: u64,
    ) -> Result<Self, DsnError> {
        let url = url::Url::parse(base_url).map_err(|e| DsnError::Url(e.to_string()))?;
        let host = url.host_str().ok_or(DsnError::Url("missing host".into()))?;
        Ok(Dsn {
            scheme: url.scheme().to_owned(),
            public_key: public_key.to_owned(),
            host: host.to_owned(),
            port: url.port(),
            path: url.path().trim_end_matches('/').to_owned(),
            project_id,
        })
    }
}

impl FromStr for Dsn {
    type Err = DsnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let url = url::Url::parse(s).map_err(|e| DsnError::Url(e.to_string()))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(DsnError::Scheme);
        }
        if url.username().is_empty() {
            return Err(DsnError::NoKey);
        }
        let path = url.path().trim_end_matches('/');
        let (prefix, project) = path.rsplit_once('/').ok_or(DsnError::NoProject)?;
        let project_id = project.parse().map_err(|_| DsnError::NoProject)?;
        Ok(Dsn {
            scheme: url.scheme().to_owned(),
            public_key: url.username().to_owned(),
            host: url.host_str().unwrap_or_default().to_owned(),
            port: url.port(),
            path: prefix.to_owned(),
            project_id,
        })
    }
}

impl fmt::Display for Dsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}@{}", self.scheme, self.public_key, self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        write!(f, "{}/{}", self.path, self.project_id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_a_dsn() {
        let dsn: Dsn = "http://abc123@127.0.0.1:8000/42"
            .parse()
            .expect("valid dsn");
        assert_eq!(dsn.public_key, "abc123");
        assert_eq!(dsn.project_id, 42);
        assert_eq!(dsn.port, Some(8000));
        assert_eq!(dsn.to_string(), "http://abc123@127.0.0.1:8000/42");
    }

    #[test]
    fn builds_from_base_url() {
        let dsn = Dsn::for_project("https://errors.example.com/", "k", 7).expect("valid");
        assert_eq!(dsn.to_string(), "https://k@errors.example.com/7");
    }

    #[test]
    fn rejects_missing_parts() {
        assert_eq!("http://host/1".parse::<Dsn>(), Err(DsnError::NoKey));
        assert_eq!("http://k@host/x".parse::<Dsn>(), Err(DsnError::NoProject));
        assert_eq!("ftp://k@host/1".parse::<Dsn>(), Err(DsnError::Scheme));
    }
}
