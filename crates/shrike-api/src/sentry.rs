//! The part of Sentry's REST API (`/api/0/`) that existing tools call, answering in Sentry's JSON
//! shapes with the same tokens: `sentry-cli info`, `sentry-cli issues list|resolve|mute|unresolve`
//! and an event's JSON. One organization (`web.organization`) holds every project; a project's
//! slug is its name.
//!
//! Shapes and behaviour from sentry-cli's `src/api/mod.rs`, `src/api/pagination.rs` and
//! `src/commands/issues/*.rs`, and Sentry's `src/sentry/api/endpoints/project_group_index.py`
//! and `event_json.py`: issue lists page with a `Link` header whose `rel="next"` entry carries
//! `results="true"` and a `cursor`; bulk updates take `id=` repeated, or `status=`, or nothing
//! (every issue of the project).

use crate::ApiState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath};
use crate::json::{issue_filter, uuid_param};
use crate::service::{Selection, status_change, status_filter};
use crate::views::{IssueView, rfc3339};
use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::Deserialize;
use serde_json::{Value, json};
use shrike_issues::IssueStatus;
use std::sync::Arc;

type S = State<Arc<ApiState>>;

/// The routes of `/api/0/`.
pub fn routes() -> axum::Router<Arc<ApiState>> {
    axum::Router::new()
        .route("/api/0/", get(auth_info))
        .route(
            "/api/0/projects/{org}/{project}/issues/",
            get(list_issues).put(update_issues),
        )
        .route(
            "/api/0/projects/{org}/{project}/events/{event_id}/json/",
            get(event_json),
        )
}

/// `GET /api/0/`: who the token is (`sentry-cli info`).
async fn auth_info(State(s): S, headers: HeaderMap) -> Result<Json<Value>, ApiError> {
    let caller = s.tokens.caller(&headers).await?;
    Ok(Json(json!({
        "version": "0",
        "auth": { "scopes": caller.scope.sentry_scopes() },
        "user": null,
    })))
}

/// The project of an `/api/0/projects/{org}/{project}/` path.
async fn project(s: &ApiState, caller: Caller, org: &str, slug: &str) -> Result<u64, ApiError> {
    if org != s.organization {
        return Err(ApiError::NotFound(format!("organization {org}")));
    }
    s.api.project_by_slug(caller, slug).await
}

fn query_pairs(raw: Option<&str>) -> Vec<(String, String)> {
    url_pairs(raw.unwrap_or(""))
}

/// `a=1&b=x%20y` decoded (`+` is a space, as in forms).
fn url_pairs(raw: &str) -> Vec<(String, String)> {
    url::form_urlencoded::parse(raw.as_bytes())
        .into_owned()
        .collect()
}

fn first<'a>(pairs: &'a [(String, String)], key: &str) -> Option<&'a str> {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

/// Sentry's status name for ours.
fn sentry_status(status: &str) -> &'static str {
    match status {
        "resolved" | "resolved_in_next_release" => "resolved",
        "ignored" => "ignored",
        _ => "unresolved",
    }
}

fn sentry_issue(issue: &IssueView, slug: &str) -> Value {
    json!({
        "id": issue.id.to_string(),
        "shortId": format!("{}-{}", slug.to_uppercase(), issue.id),
        "title": issue.title,
        "culprit": issue.culprit,
        "level": if issue.level.is_empty() { "error" } else { issue.level.as_str() },
        "status": sentry_status(&issue.status),
        "substatus": issue.substatus,
        "statusDetails": if issue.status == "resolved_in_next_release" {
            json!({ "inNextRelease": true })
        } else {
            json!({})
        },
        "count": issue.events.to_string(),
        "userCount": issue.users,
        "firstSeen": rfc3339(issue.first_seen),
        "lastSeen": rfc3339(issue.last_seen),
        "platform": issue.platform,
        "type": "error",
        "metadata": { "type": issue.ty, "value": issue.value, "title": issue.title },
        "project": { "id": issue.project_id.to_string(), "slug": slug, "name": slug },
    })
}

/// A Sentry cursor `0:{offset}:0` (or our plain offset) as an offset.
fn cursor_offset(cursor: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(cursor) = cursor.filter(|c| !c.is_empty()) else {
        return Ok(None);
    };
    let offset = match cursor.split(':').collect::<Vec<_>>().as_slice() {
        [_, offset, _] => offset.parse::<u64>(),
        _ => cursor.parse::<u64>(),
    }
    .map_err(|_| ApiError::bad("cursor", "not a cursor this API gave out"))?;
    Ok(Some(offset.to_string()))
}

fn link_header(offset: u64, next: Option<&str>) -> HeaderValue {
    let previous = offset > 0;
    let text = format!(
        "<>; rel=\"previous\"; results=\"{previous}\"; cursor=\"0:{}:1\", \
         <>; rel=\"next\"; results=\"{}\"; cursor=\"0:{}:0\"",
        offset,
        next.is_some(),
        next.unwrap_or("0"),
    );
    HeaderValue::from_str(&text).unwrap_or_else(|_| HeaderValue::from_static(""))
}

/// `GET .../issues/`: a page of issues (`sentry-cli issues list`).
async fn list_issues(
    State(s): S,
    headers: HeaderMap,
    ApiPath((org, slug)): ApiPath<(String, String)>,
    RawQuery(raw): RawQuery,
) -> Result<Response, ApiError> {
    let caller = s.tokens.caller(&headers).await?;
    let project_id = project(&s, caller, &org, &slug).await?;
    let pairs = query_pairs(raw.as_deref());
    let cursor = cursor_offset(first(&pairs, "cursor"))?;
    // The range is checked with every other door's, by `issue_filter`.
    let limit = first(&pairs, "limit")
        .map(|n| {
            n.parse::<u64>()
                .map_err(|_| ApiError::bad("limit", format!("{n:?} is not a number")))
        })
        .transpose()?;
    let filter = issue_filter(
        None,
        first(&pairs, "query"),
        first(&pairs, "sort"),
        limit,
        cursor.as_deref(),
    )?;
    let offset = filter.offset;
    let page = s.api.issues(caller, project_id, filter).await?;
    let body: Vec<Value> = page
        .items
        .iter()
        .map(|issue| sentry_issue(issue, &slug))
        .collect();
    let mut response = Json(body).into_response();
    response.headers_mut().insert(
        header::LINK,
        link_header(offset, page.next_cursor.as_deref()),
    );
    Ok(response)
}

/// The body of a bulk update.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct BulkUpdate {
    status: Option<String>,
    #[serde(default)]
    status_details: StatusDetails,
    /// Ignore until this many more events.
    ignore_count: Option<u64>,
    /// Ignore for this many minutes (Sentry's `ignoreDuration`, also `snoozeDuration`).
    ignore_duration: Option<u64>,
    snooze_duration: Option<u64>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
struct StatusDetails {
    #[serde(default)]
    in_next_release: bool,
    ignore_count: Option<u64>,
    ignore_duration: Option<u64>,
}

/// `PUT .../issues/?id=..`: resolve, mute or unresolve issues (`sentry-cli issues resolve|mute|
/// unresolve`); the selected issues are those named by `id=`, else those with `status=`, else all.
async fn update_issues(
    State(s): S,
    headers: HeaderMap,
    ApiPath((org, slug)): ApiPath<(String, String)>,
    RawQuery(raw): RawQuery,
    ApiJson(body): ApiJson<BulkUpdate>,
) -> Result<Json<Value>, ApiError> {
    let caller = s.tokens.caller(&headers).await?;
    let project_id = project(&s, caller, &org, &slug).await?;
    let status = body
        .status
        .as_deref()
        .ok_or_else(|| ApiError::bad("status", "give resolved, unresolved, ignored or muted"))?;
    let status = if status == "resolved" && body.status_details.in_next_release {
        "resolvedInNextRelease"
    } else {
        status
    };
    let minutes = body
        .ignore_duration
        .or(body.snooze_duration)
        .or(body.status_details.ignore_duration);
    let until = match minutes {
        Some(minutes) => Some(
            s.api
                .store()
                .server_now()
                .await?
                .saturating_add(u32::try_from(minutes.saturating_mul(60)).unwrap_or(u32::MAX)),
        ),
        None => None,
    };
    let change = status_change(
        status,
        body.ignore_count.or(body.status_details.ignore_count),
        until,
    )?;
    let pairs = query_pairs(raw.as_deref());
    let ids: Vec<u64> = pairs
        .iter()
        .filter(|(k, _)| k == "id")
        .map(|(_, v)| {
            v.parse()
                .map_err(|_| ApiError::bad("id", format!("{v:?} is not an issue id")))
        })
        .collect::<Result<_, _>>()?;
    let selection = if ids.is_empty() {
        // Sentry's names: `resolved` covers both resolutions, `muted` is ignored.
        let statuses = match first(&pairs, "status") {
            None | Some("") => Vec::new(),
            Some("resolved") => vec![IssueStatus::Resolved, IssueStatus::ResolvedInNextRelease],
            Some("muted" | "ignored") => vec![IssueStatus::Ignored],
            Some(other) => vec![status_filter(other)?],
        };
        Selection::Filter(
            issue_filter(None, first(&pairs, "query"), None, None, None)?,
            statuses,
        )
    } else {
        Selection::Ids(ids)
    };
    s.api
        .update_issues(caller, project_id, selection, &change)
        .await?;
    let details = match &change {
        shrike_issues::StatusChange::ResolveInNextRelease => json!({ "inNextRelease": true }),
        _ => json!({}),
    };
    let status = match change {
        shrike_issues::StatusChange::Resolve
        | shrike_issues::StatusChange::ResolveInNextRelease => "resolved",
        shrike_issues::StatusChange::Ignore { .. } => "ignored",
        shrike_issues::StatusChange::Unresolve => "unresolved",
    };
    Ok(Json(json!({ "status": status, "statusDetails": details })))
}

/// `GET .../events/{event_id}/json/`: the event as stored.
async fn event_json(
    State(s): S,
    headers: HeaderMap,
    ApiPath((org, slug, event_id)): ApiPath<(String, String, String)>,
) -> Result<Response, ApiError> {
    let caller = s.tokens.caller(&headers).await?;
    let project_id = project(&s, caller, &org, &slug).await?;
    let event_id = uuid_param("event_id", &event_id)?;
    let event = s.api.event(caller, project_id, event_id).await?;
    let mut body: Value = match &event.event {
        Some(raw) => serde_json::from_str(raw.get()).unwrap_or_else(|_| json!({})),
        None => json!({}),
    };
    if let Some(object) = body.as_object_mut() {
        let summary = &event.summary;
        object.insert(
            "event_id".into(),
            json!(summary.event_id.simple().to_string()),
        );
        object.insert("project".into(), json!(project_id));
        object
            .entry("datetime")
            .or_insert_with(|| json!(rfc3339(summary.timestamp)));
        object
            .entry("title")
            .or_insert_with(|| json!(summary.title));
        object
            .entry("culprit")
            .or_insert_with(|| json!(summary.culprit));
        object.entry("tags").or_insert_with(|| json!(summary.tags));
    }
    Ok(Json(body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_query_strings() {
        assert_eq!(
            url_pairs("query=is:unresolved%20foo&cursor=&id=1&id=2"),
            vec![
                ("query".to_owned(), "is:unresolved foo".to_owned()),
                ("cursor".to_owned(), String::new()),
                ("id".to_owned(), "1".to_owned()),
                ("id".to_owned(), "2".to_owned()),
            ]
        );
    }

    #[test]
    fn cursors_are_sentrys_or_plain_offsets() {
        assert_eq!(cursor_offset(Some("0:25:0")).ok(), Some(Some("25".into())));
        assert_eq!(cursor_offset(Some("")).ok(), Some(None));
        assert_eq!(cursor_offset(None).ok(), Some(None));
        assert!(cursor_offset(Some("0:x:0")).is_err());
    }

    #[test]
    fn link_headers_say_whether_there_is_more() {
        let link = link_header(0, Some("25"));
        let text = link.to_str().expect("ascii");
        assert!(text.contains(r#"rel="next"; results="true"; cursor="0:25:0""#));
        assert!(text.contains(r#"rel="previous"; results="false""#));
        let last = link_header(25, None);
        assert!(
            last.to_str()
                .expect("ascii")
                .contains(r#"rel="next"; results="false""#)
        );
    }
}
