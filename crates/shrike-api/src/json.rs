//! The JSON front door, `/api/v1/`: for browsers, curl and scripts. Described by the OpenAPI
//! document it serves at `/api/v1/openapi.json` (generated from these handlers with utoipa, so it
//! cannot drift from them).

use crate::error::ApiError;
use crate::extract::{ApiJson, ApiPath, ApiQuery};
use crate::service::{page_limit, status_change, status_filter};
use crate::views::*;
use crate::{ApiState, search};
use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use shrike_store::{EventFilter, EventOrder, IssueFilter, IssueSort};
use std::sync::Arc;
use utoipa::{IntoParams, OpenApi, ToSchema};
use uuid::Uuid;

type S = State<Arc<ApiState>>;

/// The routes of `/api/v1/`.
pub fn routes() -> axum::Router<Arc<ApiState>> {
    axum::Router::new()
        .route("/api/v1/openapi.json", get(openapi))
        .route("/api/v1/projects", get(list_projects).post(create_project))
        .route(
            "/api/v1/projects/{project_id}",
            get(get_project)
                .patch(update_project)
                .delete(delete_project),
        )
        .route(
            "/api/v1/projects/{project_id}/settings",
            get(get_settings).put(put_settings),
        )
        .route("/api/v1/projects/{project_id}/keys", post(create_key))
        .route(
            "/api/v1/projects/{project_id}/keys/{public_key}",
            axum::routing::patch(update_key).delete(delete_key),
        )
        .route("/api/v1/projects/{project_id}/issues", get(list_issues))
        .route(
            "/api/v1/projects/{project_id}/issues/{issue_id}",
            get(get_issue).put(update_issue),
        )
        .route(
            "/api/v1/projects/{project_id}/issues/{issue_id}/merge",
            post(merge_issues),
        )
        .route(
            "/api/v1/projects/{project_id}/unmerge",
            post(unmerge_hashes),
        )
        .route(
            "/api/v1/projects/{project_id}/issues/{issue_id}/events",
            get(list_issue_events),
        )
        .route(
            "/api/v1/projects/{project_id}/issues/{issue_id}/events/{which}",
            get(get_issue_event),
        )
        .route(
            "/api/v1/projects/{project_id}/events/{event_id}",
            get(get_event),
        )
        .route(
            "/api/v1/projects/{project_id}/events/{event_id}/attachments/{attachment_id}",
            get(get_attachment),
        )
}

/// The OpenAPI document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Shrike API",
        description = "Projects, keys, issues and events of a Shrike error tracker. Every call \
            needs an API token (`shrike token create --scope read|write|admin`) in \
            `Authorization: Bearer`.",
        version = "1"
    ),
    paths(
        list_projects, create_project, get_project, update_project, delete_project, get_settings,
        put_settings, create_key,
        update_key, delete_key, list_issues, get_issue, update_issue, merge_issues, unmerge_hashes,
        list_issue_events, get_issue_event, get_event, get_attachment
    ),
    components(schemas(ErrorBody)),
    modifiers(&BearerAuth),
    security(("token" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "token",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Every error's body.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)]
struct ErrorBody {
    /// What went wrong.
    detail: String,
}

async fn openapi() -> Response {
    match ApiDoc::openapi().to_json() {
        Ok(text) => ([(header::CONTENT_TYPE, "application/json")], text).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// A project's new name.
#[derive(Deserialize, ToSchema)]
struct ProjectBody {
    /// 1 to 100 characters.
    name: String,
}

/// A key's new state.
#[derive(Deserialize, ToSchema)]
struct KeyBody {
    /// Whether ingest accepts it.
    active: bool,
}

/// An issue's new status.
#[derive(Deserialize, ToSchema)]
struct IssueBody {
    /// `resolved`, `resolved_in_next_release`, `ignored` or `unresolved`.
    status: String,
    /// `ignored` until this many more events.
    ignore_count: Option<u64>,
    /// `ignored` until this time (RFC 3339).
    ignore_until: Option<String>,
}

/// Issues to merge into the one in the path.
#[derive(Deserialize, ToSchema)]
struct MergeBody {
    /// Their ids (decimal strings).
    sources: Vec<String>,
}

/// What a merge moved.
#[derive(serde::Serialize, ToSchema)]
struct Moved {
    /// The grouping hashes now owned by the target.
    hashes: Vec<String>,
}

/// Hashes to give back to their own issues.
#[derive(Deserialize, ToSchema)]
struct UnmergeBody {
    /// Grouping hashes.
    hashes: Vec<String>,
}

/// Where each hash went.
#[derive(serde::Serialize, ToSchema)]
struct Unmerged {
    /// (hash, issue id) pairs.
    moved: Vec<(String, String)>,
}

/// Filters and order of an issue list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct IssueQuery {
    /// `unresolved`, `resolved`, `resolved_in_next_release` or `ignored`.
    status: Option<String>,
    /// Free text over title, culprit, type and value, and `key:value` tag filters
    /// (`environment:` and `release:` too), e.g. `KeyError release:shop@1.4`.
    query: Option<String>,
    /// Only events of this environment count.
    environment: Option<String>,
    /// Only events of this release count.
    release: Option<String>,
    /// `last_seen` (default), `first_seen`, `events` or `users`.
    sort: Option<String>,
    /// Last seen at or after (RFC 3339).
    last_seen_since: Option<String>,
    /// Last seen before (RFC 3339).
    last_seen_until: Option<String>,
    /// First seen at or after (RFC 3339).
    first_seen_since: Option<String>,
    /// First seen before (RFC 3339).
    first_seen_until: Option<String>,
    /// 1–100 (default 25).
    limit: Option<u64>,
    /// From a previous page's `next_cursor`.
    cursor: Option<String>,
}

/// Filters and position of an event list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct EventQuery {
    /// Free text over title, message, exception value and culprit, and `key:value` tag filters.
    query: Option<String>,
    /// 1–100 (default 25).
    limit: Option<u64>,
    /// From a previous page's `next_cursor`.
    cursor: Option<String>,
}

fn time_param(name: &'static str, value: Option<&String>) -> Result<Option<u32>, ApiError> {
    value
        .map(|text| {
            chrono::DateTime::parse_from_rfc3339(text)
                .ok()
                .and_then(|t| u32::try_from(t.timestamp()).ok())
                .ok_or_else(|| {
                    ApiError::bad(name, "give an RFC 3339 time, e.g. 2026-01-31T12:00:00Z")
                })
        })
        .transpose()
}

fn sort_param(value: Option<&str>) -> Result<IssueSort, ApiError> {
    Ok(match value.unwrap_or("last_seen") {
        "last_seen" | "date" => IssueSort::LastSeen,
        "first_seen" | "new" => IssueSort::FirstSeen,
        "events" | "freq" => IssueSort::Events,
        "users" | "user" => IssueSort::Users,
        other => {
            return Err(ApiError::bad(
                "sort",
                format!("{other:?} is not one of last_seen, first_seen, events, users"),
            ));
        }
    })
}

/// The issue filter of a query string (shared with Sentry's door).
pub(crate) fn issue_filter(
    status: Option<&str>,
    query: Option<&str>,
    sort: Option<&str>,
    limit: Option<u64>,
    cursor: Option<&str>,
) -> Result<IssueFilter, ApiError> {
    let search = search::parse(query.unwrap_or(""))?;
    let mut filter = IssueFilter {
        status: status
            .or(search.status.as_deref())
            .map(status_filter)
            .transpose()?,
        query: search.text,
        environment: search.environment,
        release: search.release,
        tags: search.tags,
        sort: sort_param(sort)?,
        limit: page_limit(limit)?,
        ..Default::default()
    };
    if let Some(cursor) = cursor.filter(|c| !c.is_empty()) {
        filter.offset = cursor
            .parse()
            .map_err(|_| ApiError::bad("cursor", "not a cursor this API gave out"))?;
    }
    Ok(filter)
}

/// The event filter of a search query: `environment:` and `release:` are the tags SDKs set.
pub(crate) fn event_filter(query: &str) -> Result<EventFilter, ApiError> {
    let search = search::parse(query)?;
    let mut tags = search.tags;
    tags.extend(search.environment.map(|e| ("environment".to_owned(), e)));
    tags.extend(search.release.map(|r| ("release".to_owned(), r)));
    Ok(EventFilter {
        text: search.text,
        tags,
    })
}

/// Every project with its keys.
#[utoipa::path(get, path = "/api/v1/projects", responses((status = 400, body = ErrorBody), 
    (status = 200, body = Vec<ProjectView>), (status = 401, body = ErrorBody)))]
async fn list_projects(
    State(s): S,
    headers: HeaderMap,
) -> Result<Json<Vec<ProjectView>>, ApiError> {
    let caller = s.tokens.caller(&headers).await?;
    Ok(Json(s.api.projects(caller).await?))
}

/// Creates a project (admin).
#[utoipa::path(post, path = "/api/v1/projects", request_body = ProjectBody, responses(
    (status = 201, body = ProjectView), (status = 400, body = ErrorBody),
    (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
    (status = 409, body = ErrorBody)))]
async fn create_project(
    State(s): S,
    headers: HeaderMap,
    ApiJson(body): ApiJson<ProjectBody>,
) -> Result<(StatusCode, Json<ProjectView>), ApiError> {
    let caller = s.tokens.caller(&headers).await?;
    Ok((
        StatusCode::CREATED,
        Json(s.api.create_project(caller, &body.name).await?),
    ))
}

/// One project.
#[utoipa::path(get, path = "/api/v1/projects/{project_id}",
    params(("project_id" = u64, Path, description = "Project id")),
    responses((status = 400, body = ErrorBody), (status = 200, body = ProjectView), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn get_project(
    State(s): S,
    headers: HeaderMap,
    ApiPath(project_id): ApiPath<u64>,
) -> Result<Json<ProjectView>, ApiError> {
    let caller = s.tokens.caller(&headers).await?;
    Ok(Json(s.api.project(caller, project_id).await?))
}

/// Renames a project (admin).
#[utoipa::path(patch, path = "/api/v1/projects/{project_id}", request_body = ProjectBody,
    params(("project_id" = u64, Path, description = "Project id")),
    responses((status = 200, body = ProjectView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn update_project(
    State(s): S,
    headers: HeaderMap,
    ApiPath(project_id): ApiPath<u64>,
    ApiJson(body): ApiJson<ProjectBody>,
) -> Result<Json<ProjectView>, ApiError> {
    let caller = s.tokens.caller(&headers).await?;
    Ok(Json(
        s.api.rename_project(caller, project_id, &body.name).await?,
    ))
}

/// Deletes a project and its data (admin).
#[utoipa::path(delete, path = "/api/v1/projects/{project_id}",
    params(("project_id" = u64, Path, description = "Project id")),
    responses((status = 400, body = ErrorBody), (status = 204), (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn delete_project(
    State(s): S,
    headers: HeaderMap,
    ApiPath(project_id): ApiPath<u64>,
) -> Result<StatusCode, ApiError> {
    let caller = s.tokens.caller(&headers).await?;
    s.api.delete_project(caller, project_id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A project's own settings (retention, scrubbing, grouping rules); absent ones follow the
/// server's configuration.
#[utoipa::path(get, path = "/api/v1/projects/{project_id}/settings",
    params(("project_id" = u64, Path, description = "Project id")),
    responses((status = 200, body = ProjectSettings), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_settings(
    State(s): S,
    headers: HeaderMap,
    ApiPath(project_id): ApiPath<u64>,
) -> Result<Json<ProjectSettings>, ApiError> {
    let caller = s.tokens.caller(&headers).await?;
    Ok(Json(s.api.settings(caller, project_id).await?))
}

/// Replaces a project's own settings (admin); they reach the services within
/// `settings_refresh_secs`.
#[utoipa::path(put, path = "/api/v1/projects/{project_id}/settings", request_body = ProjectSettings,
    params(("project_id" = u64, Path, description = "Project id")),
    responses((status = 200, body = ProjectSettings), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn put_settings(
    State(s): S,
    headers: HeaderMap,
    ApiPath(project_id): ApiPath<u64>,
    ApiJson(body): ApiJson<ProjectSettings>,
) -> Result<Json<ProjectSettings>, ApiError> {
    let caller = s.tokens.caller(&headers).await?;
    Ok(Json(s.api.set_settings(caller, project_id, body).await?))
}

/// Adds a DSN key to a project (admin).
#[utoipa::path(post, path = "/api/v1/projects/{project_id}/keys",
    params(("project_id" = u64, Path, description = "Project id")),
    responses((status = 400, body = ErrorBody), (status = 201, body = KeyView), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn create_key(
    State(s): S,
    headers: HeaderMap,
    ApiPath(project_id): ApiPath<u64>,
) -> Result<(StatusCode, Json<KeyView>), ApiError> {
    let caller = s.tokens.caller(&headers).await?;
    Ok((
        StatusCode::CREATED,
        Json(s.api.create_key(caller, project_id).await?),
    ))
}

/// Enables or disables a DSN key (admin).
#[utoipa::path(patch, path = "/api/v1/projects/{project_id}/keys/{public_key}",
    request_body = KeyBody,
    params(("project_id" = u64, Path, description = "Project id"),
        ("public_key" = String, Path, description = "The key")),
    responses((status = 200, body = KeyView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn update_key(
    State(s): S,
    headers: HeaderMap,
    ApiPath((project_id, public_key)): ApiPath<(u64, String)>,
    ApiJson(body): ApiJson<KeyBody>,
) -> Result<Json<KeyView>, ApiError> {
    let caller = s.tokens.caller(&headers).await?;
    Ok(Json(
        s.api
            .set_key_active(caller, project_id, &public_key, body.active)
            .await?,
    ))
}

/// Deletes a DSN key (admin): ingest refuses it within `ingest.key_refresh_secs`.
#[utoipa::path(delete, path = "/api/v1/projects/{project_id}/keys/{public_key}",
    params(("project_id" = u64, Path, description = "Project id"),
        ("public_key" = String, Path, description = "The key")),
    responses((status = 204), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn delete_key(
    State(s): S,
    headers: HeaderMap,
    ApiPath((project_id, public_key)): ApiPath<(u64, String)>,
) -> Result<StatusCode, ApiError> {
    let caller = s.tokens.caller(&headers).await?;
    s.api.delete_key(caller, project_id, &public_key).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A page of a project's issues.
#[utoipa::path(get, path = "/api/v1/projects/{project_id}/issues",
    params(("project_id" = u64, Path, description = "Project id"), IssueQuery),
    responses((status = 200, body = Page<IssueView>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn list_issues(
    State(s): S,
    headers: HeaderMap,
    ApiPath(project_id): ApiPath<u64>,
    ApiQuery(q): ApiQuery<IssueQuery>,
) -> Result<Json<Page<IssueView>>, ApiError> {
    let caller = s.tokens.caller(&headers).await?;
    let mut filter = issue_filter(
        q.status.as_deref(),
        q.query.as_deref(),
        q.sort.as_deref(),
        q.limit,
        q.cursor.as_deref(),
    )?;
    if q.environment.is_some() {
        filter.environment = q.environment;
    }
    if q.release.is_some() {
        filter.release = q.release;
    }
    filter.since = time_param("last_seen_since", q.last_seen_since.as_ref())?;
    filter.until = time_param("last_seen_until", q.last_seen_until.as_ref())?;
    filter.first_seen_since = time_param("first_seen_since", q.first_seen_since.as_ref())?;
    filter.first_seen_until = time_param("first_seen_until", q.first_seen_until.as_ref())?;
    Ok(Json(s.api.issues(caller, project_id, filter).await?))
}

/// One issue: counts, tag values, events over time, first and latest event.
#[utoipa::path(get, path = "/api/v1/projects/{project_id}/issues/{issue_id}",
    params(("project_id" = u64, Path, description = "Project id"),
        ("issue_id" = u64, Path, description = "Issue id")),
    responses((status = 400, body = ErrorBody), (status = 200, body = IssueDetailView), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn get_issue(
    State(s): S,
    headers: HeaderMap,
    ApiPath((project_id, issue_id)): ApiPath<(u64, u64)>,
) -> Result<Json<IssueDetailView>, ApiError> {
    let caller = s.tokens.caller(&headers).await?;
    Ok(Json(s.api.issue(caller, project_id, issue_id).await?))
}

/// Resolves, ignores or reopens an issue (write).
#[utoipa::path(put, path = "/api/v1/projects/{project_id}/issues/{issue_id}",
    request_body = IssueBody,
    params(("project_id" = u64, Path, description = "Project id"),
        ("issue_id" = u64, Path, description = "Issue id")),
    responses((status = 200, body = IssueView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn update_issue(
    State(s): S,
    headers: HeaderMap,
    ApiPath((project_id, issue_id)): ApiPath<(u64, u64)>,
    ApiJson(body): ApiJson<IssueBody>,
) -> Result<Json<IssueView>, ApiError> {
    let caller = s.tokens.caller(&headers).await?;
    let until = time_param("ignore_until", body.ignore_until.as_ref())?;
    let change = status_change(&body.status, body.ignore_count, until)?;
    Ok(Json(
        s.api
            .update_issue(caller, project_id, issue_id, &change)
            .await?,
    ))
}

/// Merges other issues into this one (write).
#[utoipa::path(post, path = "/api/v1/projects/{project_id}/issues/{issue_id}/merge",
    request_body = MergeBody,
    params(("project_id" = u64, Path, description = "Project id"),
        ("issue_id" = u64, Path, description = "The issue to merge into")),
    responses((status = 200, body = Moved), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn merge_issues(
    State(s): S,
    headers: HeaderMap,
    ApiPath((project_id, issue_id)): ApiPath<(u64, u64)>,
    ApiJson(body): ApiJson<MergeBody>,
) -> Result<Json<Moved>, ApiError> {
    let caller = s.tokens.caller(&headers).await?;
    let sources = body
        .sources
        .iter()
        .map(|id| {
            id.parse::<u64>()
                .map_err(|_| ApiError::bad("sources", format!("{id:?} is not an issue id")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let hashes = s.api.merge(caller, project_id, issue_id, &sources).await?;
    Ok(Json(Moved { hashes }))
}

/// Gives merged grouping hashes back to their own issues (write).
#[utoipa::path(post, path = "/api/v1/projects/{project_id}/unmerge", request_body = UnmergeBody,
    params(("project_id" = u64, Path, description = "Project id")),
    responses((status = 200, body = Unmerged), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody), (status = 409, body = ErrorBody)))]
async fn unmerge_hashes(
    State(s): S,
    headers: HeaderMap,
    ApiPath(project_id): ApiPath<u64>,
    ApiJson(body): ApiJson<UnmergeBody>,
) -> Result<Json<Unmerged>, ApiError> {
    let caller = s.tokens.caller(&headers).await?;
    let moved = s.api.unmerge(caller, project_id, &body.hashes).await?;
    Ok(Json(Unmerged {
        moved: moved
            .into_iter()
            .map(|(hash, issue)| (hash, issue.to_string()))
            .collect(),
    }))
}

/// A page of an issue's events, newest first.
#[utoipa::path(get, path = "/api/v1/projects/{project_id}/issues/{issue_id}/events",
    params(("project_id" = u64, Path, description = "Project id"),
        ("issue_id" = u64, Path, description = "Issue id"), EventQuery),
    responses((status = 200, body = Page<EventSummaryView>), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn list_issue_events(
    State(s): S,
    headers: HeaderMap,
    ApiPath((project_id, issue_id)): ApiPath<(u64, u64)>,
    ApiQuery(q): ApiQuery<EventQuery>,
) -> Result<Json<Page<EventSummaryView>>, ApiError> {
    let caller = s.tokens.caller(&headers).await?;
    let filter = event_filter(q.query.as_deref().unwrap_or(""))?;
    let limit = page_limit(q.limit)?;
    Ok(Json(
        s.api
            .issue_events(
                caller,
                project_id,
                issue_id,
                &filter,
                q.cursor.as_deref().filter(|c| !c.is_empty()),
                limit,
            )
            .await?,
    ))
}

/// The oldest or latest event of an issue, whole.
#[utoipa::path(get, path = "/api/v1/projects/{project_id}/issues/{issue_id}/events/{which}",
    params(("project_id" = u64, Path, description = "Project id"),
        ("issue_id" = u64, Path, description = "Issue id"),
        ("which" = String, Path, description = "`oldest` or `latest`")),
    responses((status = 200, body = EventView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
async fn get_issue_event(
    State(s): S,
    headers: HeaderMap,
    ApiPath((project_id, issue_id, which)): ApiPath<(u64, u64, String)>,
) -> Result<Json<EventView>, ApiError> {
    let caller = s.tokens.caller(&headers).await?;
    let order = match which.as_str() {
        "oldest" => EventOrder::OldestFirst,
        "latest" => EventOrder::NewestFirst,
        _ => return Err(ApiError::bad("which", "give oldest or latest")),
    };
    Ok(Json(
        s.api
            .issue_event(caller, project_id, issue_id, order)
            .await?,
    ))
}

/// One event, whole, with its attachments and its neighbours in its issue.
#[utoipa::path(get, path = "/api/v1/projects/{project_id}/events/{event_id}",
    params(("project_id" = u64, Path, description = "Project id"),
        ("event_id" = String, Path, description = "Event id (32 hex digits, dashes optional)")),
    responses((status = 200, body = EventView), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 404, body = ErrorBody)))]
async fn get_event(
    State(s): S,
    headers: HeaderMap,
    ApiPath((project_id, event_id)): ApiPath<(u64, String)>,
) -> Result<Json<EventView>, ApiError> {
    let caller = s.tokens.caller(&headers).await?;
    let event_id = uuid_param("event_id", &event_id)?;
    Ok(Json(s.api.event(caller, project_id, event_id).await?))
}

/// An attachment's bytes.
#[utoipa::path(get,
    path = "/api/v1/projects/{project_id}/events/{event_id}/attachments/{attachment_id}",
    params(("project_id" = u64, Path, description = "Project id"),
        ("event_id" = String, Path, description = "Event id"),
        ("attachment_id" = String, Path, description = "Attachment id")),
    responses((status = 200, content_type = "application/octet-stream", body = Vec<u8>),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody)))]
async fn get_attachment(
    State(s): S,
    headers: HeaderMap,
    ApiPath((project_id, event_id, attachment_id)): ApiPath<(u64, String, String)>,
) -> Result<Response, ApiError> {
    let caller = s.tokens.caller(&headers).await?;
    let event_id = uuid_param("event_id", &event_id)?;
    let attachment_id = uuid_param("attachment_id", &attachment_id)?;
    let (info, data) = s
        .api
        .attachment(caller, project_id, event_id, attachment_id)
        .await?;
    // Served as a download, never rendered: the content type from the SDK is not trusted.
    let disposition = format!(
        "attachment; filename=\"{}\"",
        info.name
            .chars()
            .map(|c| if c.is_ascii_graphic() && c != '"' && c != '\\' {
                c
            } else {
                '_'
            })
            .collect::<String>()
    );
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_DISPOSITION, disposition),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        ],
        data,
    )
        .into_response())
}

pub(crate) fn uuid_param(name: &'static str, value: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(value).map_err(|_| ApiError::bad(name, "give 32 hex digits"))
}
