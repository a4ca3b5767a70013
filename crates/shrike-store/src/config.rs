//! `[clickhouse]`: which server, and how to reach it.

use serde::{Deserialize, Serialize};

/// Where Shrike's ClickHouse is: an existing server (`url`), or — when `url` is empty — the local
/// server `shrike up` starts ([`crate::local`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClickHouseConfig {
    /// HTTP URL of an existing server; empty means "start a local one".
    pub url: String,
    /// Database name.
    pub database: String,
    /// User of a configured `url` (the local server has one user of its own, see
    /// [`crate::local::USER`]).
    pub user: String,
    /// Password of a configured `url` (the local server's is generated and kept beside its data).
    pub password: String,
    /// HTTP port of the local server.
    pub local_http_port: u16,
    /// Native TCP port of the local server.
    pub local_tcp_port: u16,
    /// LZ4 compression of inserts and results; by default on for a configured `url` and off for
    /// the local server (loopback, where it costs CPU and saves nothing).
    pub compression: Option<bool>,
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        ClickHouseConfig {
            url: String::new(),
            database: "shrike".into(),
            user: "default".into(),
            password: String::new(),
            local_http_port: 18123,
            local_tcp_port: 19000,
            compression: None,
        }
    }
}

impl ClickHouseConfig {
    /// Whether the local server is meant (no `url`).
    pub fn is_local(&self) -> bool {
        self.url.is_empty()
    }

    /// The configured URL, or that of the local server.
    pub fn effective_url(&self) -> String {
        if self.is_local() {
            format!("http://127.0.0.1:{}", self.local_http_port)
        } else {
            self.url.clone()
        }
    }

    /// [`Self::effective_url`] with any password in it replaced, for messages and logs.
    pub fn display_url(&self) -> String {
        redact_url(&self.effective_url())
    }

    /// Checks the settings, naming the key at fault (and never echoing the URL: it may hold a
    /// password).
    pub fn validate(&self) -> Result<(), String> {
        if !self.is_local() && url::Url::parse(&self.url).is_err() {
            return Err("clickhouse.url is not a URL".into());
        }
        Ok(())
    }

    /// The connection settings; `local_password` is the local server's (used without `url`).
    pub fn store_config(&self, local_password: Option<&str>) -> crate::StoreConfig {
        let (user, password) = match local_password {
            Some(password) if self.is_local() => {
                (crate::local::USER.to_owned(), password.to_owned())
            }
            _ => (self.user.clone(), self.password.clone()),
        };
        crate::StoreConfig {
            url: self.effective_url(),
            database: self.database.clone(),
            user,
            password,
            compression: self.compression.unwrap_or(!self.is_local()),
        }
    }
}

/// `url` with the password of its user info (if any) replaced by `***`.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.to_owned(),
        Err(_) => "(not a URL)".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_in_a_url_is_never_shown() {
        assert_eq!(
            redact_url("http://shrike:s3cret@ch:8123/"),
            "http://shrike:***@ch:8123/"
        );
        assert_eq!(redact_url("http://ch:8123"), "http://ch:8123");
        assert_eq!(redact_url("::p@ch"), "(not a URL)");
        let config = ClickHouseConfig {
            url: "http://u:pw@ch:8123".into(),
            ..Default::default()
        };
        assert!(!config.display_url().contains("pw"));
        let local = ClickHouseConfig::default().store_config(Some("generated"));
        assert_eq!(
            (local.user.as_str(), local.password.as_str()),
            ("shrike", "generated")
        );
        assert!(!local.compression);
    }
}
