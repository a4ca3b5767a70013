//! `shrike-load api`: the API's latency with what is stored, for BENCHMARKS.md: the issue list
//! (each sort), an issue's detail and one event by id, each asked `requests` times, one request
//! at a time, through the JSON API with a read token.

use anyhow::{Context, Result, bail};
use rand::seq::IndexedRandom;
use serde_json::Value;
use std::time::{Duration, Instant};

/// What to measure.
#[derive(Debug, Clone)]
pub struct ApiOptions {
    /// The API's base URL, e.g. `http://127.0.0.1:8380`.
    pub url: String,
    /// An API token with the read scope.
    pub token: String,
    /// The project.
    pub project: u64,
    /// Requests per measured call.
    pub requests: usize,
}

/// Latencies of one call, in milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Latency {
    /// What was called.
    pub call: String,
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// Slowest.
    pub max: f64,
}

fn latency(call: &str, mut samples: Vec<Duration>) -> Latency {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |q: f64| {
        let index = ((samples.len() as f64 - 1.0) * q).round() as usize;
        samples.get(index).copied().map(ms).unwrap_or(0.0)
    };
    Latency {
        call: call.to_owned(),
        p50: at(0.5),
        p95: at(0.95),
        max: samples.last().copied().map(ms).unwrap_or(0.0),
    }
}

async fn get(
    client: &reqwest::Client,
    options: &ApiOptions,
    path: &str,
) -> Result<(Value, Duration)> {
    let started = Instant::now();
    let response = client
        .get(format!("{}{path}", options.url))
        .bearer_auth(&options.token)
        .send()
        .await
        .with_context(|| format!("GET {path}"))?;
    let status = response.status();
    let body = response.text().await?;
    let took = started.elapsed();
    if !status.is_success() {
        bail!("GET {path}: {status}: {body}");
    }
    Ok((serde_json::from_str(&body)?, took))
}

/// Measures the calls; the issues and events asked for are picked at random from what the API
/// lists.
pub async fn measure(options: &ApiOptions) -> Result<Vec<Latency>> {
    let client = reqwest::Client::new();
    let project = options.project;
    let mut results = Vec::new();
    let mut issue_ids = Vec::new();
    for sort in ["last_seen", "first_seen", "events", "users"] {
        let path = format!("/api/v1/projects/{project}/issues?limit=25&sort={sort}");
        let mut samples = Vec::with_capacity(options.requests);
        for _ in 0..options.requests {
            let (page, took) = get(&client, options, &path).await?;
            samples.push(took);
            if issue_ids.is_empty() {
                issue_ids = page["items"]
                    .as_array()
                    .map(|items| {
                        items
                            .iter()
                            .filter_map(|i| i["id"].as_str().map(str::to_owned))
                            .collect()
                    })
                    .unwrap_or_default();
            }
        }
        results.push(latency(
            &format!("issue list, sort={sort}, 25 per page"),
            samples,
        ));
    }
    if issue_ids.is_empty() {
        bail!("project {project} has no issues");
    }
    let mut rng = rand::rng();
    let mut samples = Vec::with_capacity(options.requests);
    let mut event_ids = Vec::new();
    for _ in 0..options.requests {
        let issue = issue_ids.choose(&mut rng).context("an issue")?;
        let (detail, took) = get(
            &client,
            options,
            &format!("/api/v1/projects/{project}/issues/{issue}"),
        )
        .await?;
        samples.push(took);
        if let Some(id) = detail["latest_event"]["event_id"].as_str() {
            event_ids.push(id.to_owned());
        }
    }
    results.push(latency(
        "issue detail (tags, 24 h and 30 days, first and latest event)",
        samples,
    ));
    let mut samples = Vec::with_capacity(options.requests);
    for _ in 0..options.requests {
        let event = event_ids.choose(&mut rng).context("an event")?;
        let (_, took) = get(
            &client,
            options,
            &format!("/api/v1/projects/{project}/events/{event}"),
        )
        .await?;
        samples.push(took);
    }
    results.push(latency("one event by id, whole", samples));
    Ok(results)
}

/// The results as a Markdown table.
pub fn markdown(results: &[Latency]) -> String {
    let mut out = String::from("| call | p50 ms | p95 ms | max ms |\n| --- | --- | --- | --- |\n");
    for r in results {
        out.push_str(&format!(
            "| {} | {:.1} | {:.1} | {:.1} |\n",
            r.call, r.p50, r.p95, r.max
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_samples() {
        let samples = (1..=100).map(Duration::from_millis).collect();
        let l = latency("x", samples);
        assert_eq!(
            (l.p50.round(), l.p95.round(), l.max.round()),
            (51.0, 95.0, 100.0)
        );
        assert_eq!(latency("none", Vec::new()).p95, 0.0);
        assert!(markdown(&[l]).contains("| x | 51.0 | 95.0 | 100.0 |"));
    }
}
