//! The gRPC front door (`proto/shrike/api/v1/api.proto`), for programs: the same service layer
//! and tokens as the JSON API, on the same port (HTTP/2; `shrike up` and `shrike web` serve both).

use crate::ApiState;
use crate::auth::Caller;
use crate::error::ApiError;
use crate::json::{event_filter, issue_filter, uuid_param};
use crate::service::{page_limit, status_change};
use crate::views::{
    EventSummaryView, GroupingSettings, IssueView, KeyView, ProjectSettings, ProjectView,
    ScrubbingSettings,
};
use std::sync::Arc;
use tonic::{Request, Response, Status};

/// The generated messages, client and server.
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("shrike.api.v1");
}

pub use pb::shrike_api_client::ShrikeApiClient;
use pb::shrike_api_server::{ShrikeApi, ShrikeApiServer};

/// The gRPC service on `state`.
pub fn service(state: Arc<ApiState>) -> ShrikeApiServer<Grpc> {
    ShrikeApiServer::new(Grpc { state })
}

/// Implements the service over the service layer.
pub struct Grpc {
    state: Arc<ApiState>,
}

impl From<ApiError> for Status {
    fn from(error: ApiError) -> Self {
        let message = error.to_string();
        match error {
            ApiError::Unauthorized => Status::unauthenticated(message),
            ApiError::Forbidden(_) => Status::permission_denied(message),
            ApiError::NotFound(_) => Status::not_found(message),
            ApiError::BadRequest { .. } => Status::invalid_argument(message),
            ApiError::Conflict(_) => Status::failed_precondition(message),
            ApiError::Unavailable(source) => {
                tracing::warn!(error = %source, "gRPC call failed on the database");
                Status::unavailable(message)
            }
        }
    }
}

impl Grpc {
    async fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let headers = request.metadata().clone().into_headers();
        Ok(self.state.tokens.caller(&headers).await?)
    }
}

fn text(value: &str) -> Option<&str> {
    (!value.is_empty()).then_some(value)
}

impl From<KeyView> for pb::Key {
    fn from(k: KeyView) -> Self {
        pb::Key {
            public_key: k.public_key,
            active: k.active,
            dsn: k.dsn,
        }
    }
}

impl From<ProjectView> for pb::Project {
    fn from(p: ProjectView) -> Self {
        pb::Project {
            id: p.id,
            name: p.name,
            keys: p.keys.into_iter().map(pb::Key::from).collect(),
        }
    }
}

impl From<ProjectSettings> for pb::ProjectSettings {
    fn from(s: ProjectSettings) -> Self {
        pb::ProjectSettings {
            retention_days: s.retention_days.map(u32::from),
            scrubbing: s.scrubbing.map(|s| pb::ScrubbingSettings {
                enabled: s.enabled,
                sensitive_fields: s.sensitive_fields,
                safe_fields: s.safe_fields,
            }),
            grouping: s.grouping.map(|g| pb::GroupingSettings {
                stack_rules: g.stack_rules,
                fingerprint_rules: g.fingerprint_rules,
            }),
        }
    }
}

impl From<pb::ProjectSettings> for ProjectSettings {
    fn from(s: pb::ProjectSettings) -> Self {
        ProjectSettings {
            // Out of u16's range is out of 1-3650 too: validation names the field.
            retention_days: s
                .retention_days
                .map(|d| u16::try_from(d).unwrap_or(u16::MAX)),
            scrubbing: s.scrubbing.map(|s| ScrubbingSettings {
                enabled: s.enabled,
                sensitive_fields: s.sensitive_fields,
                safe_fields: s.safe_fields,
            }),
            grouping: s.grouping.map(|g| GroupingSettings {
                stack_rules: g.stack_rules,
                fingerprint_rules: g.fingerprint_rules,
            }),
        }
    }
}

/// A request's `limit`: proto3 sends 0 when it is unset.
fn limit(value: u64) -> Option<u64> {
    (value > 0).then_some(value)
}

fn issue(view: IssueView) -> pb::Issue {
    pb::Issue {
        id: view.id,
        project_id: view.project_id,
        title: view.title,
        culprit: view.culprit,
        r#type: view.ty,
        value: view.value,
        level: view.level,
        platform: view.platform,
        status: view.status,
        substatus: view.substatus,
        events: view.events,
        users: view.users,
        first_seen: view.first_seen,
        last_seen: view.last_seen,
        last_release: view.last_release,
    }
}

fn event_summary(view: EventSummaryView) -> pb::EventSummary {
    pb::EventSummary {
        event_id: view.event_id.to_string(),
        issue_id: view.issue_id,
        timestamp: view.timestamp,
        received: view.received,
        title: view.title,
        culprit: view.culprit,
        message: view.message,
        level: view.level,
        platform: view.platform,
        release: view.release,
        environment: view.environment,
        tags: view.tags.into_iter().map(|[k, v]| (k, v)).collect(),
        user_id: view.user.id,
        user_email: view.user.email,
        user_username: view.user.username,
        user_ip: view.user.ip_address,
    }
}

#[tonic::async_trait]
impl ShrikeApi for Grpc {
    async fn list_projects(
        &self,
        request: Request<pb::ListProjectsRequest>,
    ) -> Result<Response<pb::ListProjectsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let projects = self.state.api.projects(caller).await?;
        Ok(Response::new(pb::ListProjectsResponse {
            projects: projects.into_iter().map(pb::Project::from).collect(),
        }))
    }

    async fn list_issues(
        &self,
        request: Request<pb::ListIssuesRequest>,
    ) -> Result<Response<pb::ListIssuesResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let filter = issue_filter(
            text(&r.status),
            text(&r.query),
            text(&r.sort),
            limit(r.limit),
            text(&r.cursor),
        )?;
        let page = self.state.api.issues(caller, r.project_id, filter).await?;
        Ok(Response::new(pb::ListIssuesResponse {
            issues: page.items.into_iter().map(issue).collect(),
            next_cursor: page.next_cursor.unwrap_or_default(),
        }))
    }

    async fn get_issue(
        &self,
        request: Request<pb::GetIssueRequest>,
    ) -> Result<Response<pb::IssueDetail>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let detail = self
            .state
            .api
            .issue(caller, r.project_id, r.issue_id)
            .await?;
        let bucket = |b: crate::views::Bucket| pb::Bucket {
            start: b.start,
            count: b.count,
        };
        Ok(Response::new(pb::IssueDetail {
            issue: Some(issue(detail.issue)),
            hashes: detail.hashes,
            tags: detail
                .tags
                .into_iter()
                .map(|t| pb::Tag {
                    key: t.key,
                    events: t.events,
                    values: t
                        .values
                        .into_iter()
                        .map(|v| pb::TagValue {
                            value: v.value,
                            count: v.count,
                            share: v.share,
                        })
                        .collect(),
                })
                .collect(),
            hourly: detail.hourly.into_iter().map(bucket).collect(),
            daily: detail.daily.into_iter().map(bucket).collect(),
            first_event: detail.first_event.map(event_summary),
            latest_event: detail.latest_event.map(event_summary),
        }))
    }

    async fn update_issue(
        &self,
        request: Request<pb::UpdateIssueRequest>,
    ) -> Result<Response<pb::Issue>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let change = status_change(
            &r.status,
            (r.ignore_count > 0).then_some(r.ignore_count),
            (r.ignore_until > 0).then_some(r.ignore_until),
        )?;
        let view = self
            .state
            .api
            .update_issue(caller, r.project_id, r.issue_id, &change)
            .await?;
        Ok(Response::new(issue(view)))
    }

    async fn merge_issues(
        &self,
        request: Request<pb::MergeIssuesRequest>,
    ) -> Result<Response<pb::MergeIssuesResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let moved = self
            .state
            .api
            .merge(caller, r.project_id, r.into, &r.sources)
            .await?;
        Ok(Response::new(pb::MergeIssuesResponse {
            moved_hashes: moved,
        }))
    }

    async fn list_issue_events(
        &self,
        request: Request<pb::ListIssueEventsRequest>,
    ) -> Result<Response<pb::ListIssueEventsResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let filter = event_filter(&r.query)?;
        let page = self
            .state
            .api
            .issue_events(
                caller,
                r.project_id,
                r.issue_id,
                &filter,
                text(&r.cursor),
                page_limit(limit(r.limit))?,
            )
            .await?;
        Ok(Response::new(pb::ListIssueEventsResponse {
            events: page.items.into_iter().map(event_summary).collect(),
            next_cursor: page.next_cursor.unwrap_or_default(),
        }))
    }

    async fn create_project(
        &self,
        request: Request<pb::CreateProjectRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = self.caller(&request).await?;
        let project = self
            .state
            .api
            .create_project(caller, &request.get_ref().name)
            .await?;
        Ok(Response::new(project.into()))
    }

    async fn rename_project(
        &self,
        request: Request<pb::RenameProjectRequest>,
    ) -> Result<Response<pb::Project>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.get_ref();
        let project = self
            .state
            .api
            .rename_project(caller, r.project_id, &r.name)
            .await?;
        Ok(Response::new(project.into()))
    }

    async fn delete_project(
        &self,
        request: Request<pb::DeleteProjectRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let caller = self.caller(&request).await?;
        self.state
            .api
            .delete_project(caller, request.get_ref().project_id)
            .await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn create_key(
        &self,
        request: Request<pb::CreateKeyRequest>,
    ) -> Result<Response<pb::Key>, Status> {
        let caller = self.caller(&request).await?;
        let key = self
            .state
            .api
            .create_key(caller, request.get_ref().project_id)
            .await?;
        Ok(Response::new(key.into()))
    }

    async fn update_key(
        &self,
        request: Request<pb::UpdateKeyRequest>,
    ) -> Result<Response<pb::Key>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.get_ref();
        let key = self
            .state
            .api
            .set_key_active(caller, r.project_id, &r.public_key, r.active)
            .await?;
        Ok(Response::new(key.into()))
    }

    async fn delete_key(
        &self,
        request: Request<pb::DeleteKeyRequest>,
    ) -> Result<Response<pb::Empty>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.get_ref();
        self.state
            .api
            .delete_key(caller, r.project_id, &r.public_key)
            .await?;
        Ok(Response::new(pb::Empty {}))
    }

    async fn unmerge_hashes(
        &self,
        request: Request<pb::UnmergeHashesRequest>,
    ) -> Result<Response<pb::UnmergeHashesResponse>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let owners = self
            .state
            .api
            .unmerge(caller, r.project_id, &r.hashes)
            .await?;
        Ok(Response::new(pb::UnmergeHashesResponse {
            owners: owners
                .into_iter()
                .map(|(hash, issue_id)| pb::HashOwner { hash, issue_id })
                .collect(),
        }))
    }

    async fn get_attachment(
        &self,
        request: Request<pb::GetAttachmentRequest>,
    ) -> Result<Response<pb::AttachmentData>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.get_ref();
        let event_id = uuid_param("event_id", &r.event_id)?;
        let attachment_id = uuid_param("attachment_id", &r.attachment_id)?;
        let (info, data) = self
            .state
            .api
            .attachment(caller, r.project_id, event_id, attachment_id)
            .await?;
        Ok(Response::new(pb::AttachmentData {
            attachment: Some(pb::Attachment {
                id: info.id.to_string(),
                name: info.name,
                content_type: info.content_type,
                r#type: info.attachment_type,
                size: info.size,
            }),
            data,
        }))
    }

    async fn get_project_settings(
        &self,
        request: Request<pb::GetProjectSettingsRequest>,
    ) -> Result<Response<pb::ProjectSettings>, Status> {
        let caller = self.caller(&request).await?;
        let settings = self
            .state
            .api
            .settings(caller, request.get_ref().project_id)
            .await?;
        Ok(Response::new(settings.into()))
    }

    async fn update_project_settings(
        &self,
        request: Request<pb::UpdateProjectSettingsRequest>,
    ) -> Result<Response<pb::ProjectSettings>, Status> {
        let caller = self.caller(&request).await?;
        let message = request.into_inner();
        let settings = message.settings.unwrap_or_default().into();
        let stored = self
            .state
            .api
            .set_settings(caller, message.project_id, settings)
            .await?;
        Ok(Response::new(stored.into()))
    }

    async fn get_event(
        &self,
        request: Request<pb::GetEventRequest>,
    ) -> Result<Response<pb::Event>, Status> {
        let caller = self.caller(&request).await?;
        let r = request.into_inner();
        let event_id = uuid_param("event_id", &r.event_id)?;
        let event = self.state.api.event(caller, r.project_id, event_id).await?;
        Ok(Response::new(pb::Event {
            event_json: event
                .event
                .map(|raw| raw.get().to_owned())
                .unwrap_or_default(),
            attachments: event
                .attachments
                .into_iter()
                .map(|a| pb::Attachment {
                    id: a.id.to_string(),
                    name: a.name,
                    content_type: a.content_type,
                    r#type: a.attachment_type,
                    size: a.size,
                })
                .collect(),
            previous_event_id: event
                .previous_event_id
                .map(|id| id.to_string())
                .unwrap_or_default(),
            next_event_id: event
                .next_event_id
                .map(|id| id.to_string())
                .unwrap_or_default(),
            summary: Some(event_summary(event.summary)),
        }))
    }
}
