//! The server under load: a Sentry DSN turned into the envelope endpoint and auth header, and the
//! safety check that keeps the harness on loopback unless remote targets are explicitly allowed.
//! It never resolves host names: a name other than `localhost` counts as remote.

use std::net::IpAddr;

use url::{Host, Url};

use crate::LoadError;

/// The `sentry_client` value sent in `X-Sentry-Auth`.
pub const CLIENT_NAME: &str = "shrike-load/0.1";

/// Where envelopes go and how they authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// `{scheme}://{host}:{port}{path prefix}/api/{project}/envelope/`.
    pub envelope_url: Url,
    /// The DSN's public key.
    pub key: String,
    /// The project id (the DSN's last path segment).
    pub project: String,
    /// The host, as written in the DSN.
    pub host: String,
    /// Whether the host is a loopback address or `localhost`.
    pub loopback: bool,
}

impl Target {
    /// Parses `http://KEY@host:port/PROJECT` (an optional `:SECRET` and path prefix are allowed).
    pub fn parse(dsn: &str) -> Result<Self, LoadError> {
        let invalid = |reason: &str| LoadError::Dsn {
            dsn: dsn.to_owned(),
            reason: reason.to_owned(),
        };
        let url = Url::parse(dsn).map_err(|e| invalid(&e.to_string()))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("scheme must be http or https"));
        }
        let key = url.username();
        if key.is_empty() {
            return Err(invalid("no public key before '@'"));
        }
        let host = url.host().ok_or_else(|| invalid("no host"))?;
        let loopback = is_loopback(&host);
        let host = host.to_string();
        let path = url.path().trim_end_matches('/');
        let (prefix, project) = path.rsplit_once('/').unwrap_or(("", path));
        if project.is_empty() || !project.bytes().all(|b| b.is_ascii_digit()) {
            return Err(invalid("the path must end with a numeric project id"));
        }
        let mut envelope_url = url.clone();
        envelope_url
            .set_username("")
            .map_err(|()| invalid("cannot strip the key"))?;
        envelope_url
            .set_password(None)
            .map_err(|()| invalid("cannot strip the secret"))?;
        envelope_url.set_path(&format!("{prefix}/api/{project}/envelope/"));
        envelope_url.set_query(None);
        envelope_url.set_fragment(None);
        Ok(Target {
            envelope_url,
            key: key.to_owned(),
            project: project.to_owned(),
            host,
            loopback,
        })
    }

    /// The `X-Sentry-Auth` header value.
    pub fn auth_header(&self) -> String {
        format!(
            "Sentry sentry_version=7, sentry_key={}, sentry_client={CLIENT_NAME}",
            self.key
        )
    }

    /// Refuses a remote target unless `allow_remote`.
    pub fn check_allowed(&self, allow_remote: bool) -> Result<(), LoadError> {
        if self.loopback || allow_remote {
            Ok(())
        } else {
            Err(LoadError::RemoteTarget {
                host: self.host.clone(),
            })
        }
    }
}

/// Whether a URL host is on this machine: `localhost` (and `*.localhost`), 127.0.0.0/8, `::1`, or
/// an IPv4-mapped loopback address. Other names are not resolved and count as remote.
pub fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(name) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost")
        }
        Host::Ipv4(ip) => ip.is_loopback(),
        Host::Ipv6(ip) => {
            IpAddr::V6(*ip).is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_dsn_into_the_envelope_endpoint() {
        let t = Target::parse("http://abc123@127.0.0.1:8300/1").expect("dsn");
        assert_eq!(
            t.envelope_url.as_str(),
            "http://127.0.0.1:8300/api/1/envelope/"
        );
        assert_eq!(t.key, "abc123");
        assert_eq!(t.project, "1");
        assert!(t.loopback);
        assert_eq!(
            t.auth_header(),
            "Sentry sentry_version=7, sentry_key=abc123, sentry_client=shrike-load/0.1"
        );
        let t = Target::parse("https://k:secret@sentry.example.com/prefix/42/").expect("dsn");
        assert_eq!(
            t.envelope_url.as_str(),
            "https://sentry.example.com/prefix/api/42/envelope/"
        );
        assert!(!t.loopback);
    }

    #[test]
    fn rejects_bad_dsns() {
        for dsn in [
            "127.0.0.1:8300/1",
            "ftp://k@127.0.0.1/1",
            "http://127.0.0.1:8300/1",
            "http://k@127.0.0.1:8300/",
            "http://k@127.0.0.1:8300/abc",
        ] {
            assert!(Target::parse(dsn).is_err(), "{dsn}");
        }
    }

    #[test]
    fn only_loopback_targets_are_allowed_by_default() {
        for dsn in [
            "http://k@127.0.0.1:1/1",
            "http://k@127.8.9.10:1/1",
            "http://k@localhost:1/1",
            "http://k@LOCALHOST./1",
            "http://k@api.localhost/1",
            "http://k@[::1]:1/1",
            "http://k@[::ffff:127.0.0.1]:1/1",
        ] {
            let t = Target::parse(dsn).expect(dsn);
            assert!(t.check_allowed(false).is_ok(), "{dsn}");
        }
        for dsn in [
            "http://k@10.0.0.1:1/1",
            "http://k@0.0.0.0:1/1",
            "http://k@localhost.example.com/1",
            "http://k@[2001:db8::1]/1",
            "https://k@o1.ingest.sentry.io/1",
        ] {
            let t = Target::parse(dsn).expect(dsn);
            assert!(
                matches!(t.check_allowed(false), Err(LoadError::RemoteTarget { .. })),
                "{dsn}"
            );
            assert!(t.check_allowed(true).is_ok(), "{dsn}");
        }
    }
}
