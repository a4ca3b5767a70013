//! The gRPC API called by a tonic client, against a real ClickHouse: projects, issues, an issue's
//! detail and events, one event, a status change, and the error codes of a bad token, a weak
//! scope, an unknown issue and a bad argument.

use shrike_api::grpc::ShrikeApiClient;
use shrike_api::grpc::pb;
use shrike_issues::IssueRow;
use shrike_store::EventRow;
use shrike_store::local::LocalClickHouse;
use tonic::Code;
use uuid::Uuid;

fn with_token<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("metadata"),
    );
    request
}

#[tokio::test]
async fn a_tonic_client_reads_and_changes_issues() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = LocalClickHouse::start(dir.path(), 0, 0)
        .await
        .expect("clickhouse-server starts");
    let store = server.store("shrike_grpc").expect("store");
    store.migrate().await.expect("migrate");
    let (project, _) = store.create_project("shop").await.expect("project");
    let now = store.server_now().await.expect("now");
    let hash = format!("{:032x}", 7);
    let ids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
    let rows: Vec<EventRow> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| EventRow {
            project_id: project.id,
            event_id: *id,
            timestamp: now - 60 * (2 - i as u32),
            received: now,
            issue_id: 7,
            primary_hash: hash.clone(),
            title: "KeyError: 'card'".into(),
            tags_key: vec!["browser".into()],
            tags_value: vec!["firefox".into()],
            body: r#"{"exception":{"values":[{"type":"KeyError"}]}}"#.into(),
            ..Default::default()
        })
        .collect();
    store.insert_events(rows.clone()).await.expect("events");
    store
        .upsert_issues(&[IssueRow {
            project_id: project.id,
            issue_id: 7,
            primary_hash: hash.clone(),
            title: "KeyError: 'card'".into(),
            ty: "KeyError".into(),
            ..Default::default()
        }])
        .await
        .expect("issue");
    let (_, read) = store.create_token("read", "read").await.expect("token");
    let (_, write) = store.create_token("write", "write").await.expect("token");

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let app = shrike_api::router(
        store.clone(),
        "http://127.0.0.1:8300".into(),
        &shrike_api::WebConfig::default(),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .expect("endpoint")
        .connect()
        .await
        .expect("connects");
    let mut client = ShrikeApiClient::new(channel);

    let projects = client
        .list_projects(with_token(pb::ListProjectsRequest {}, &read))
        .await
        .expect("projects")
        .into_inner();
    assert_eq!(projects.projects.len(), 1);
    assert!(projects.projects[0].keys[0].dsn.contains("127.0.0.1:8300"));

    let issues = client
        .list_issues(with_token(
            pb::ListIssuesRequest {
                project_id: project.id,
                query: "browser:firefox".into(),
                ..Default::default()
            },
            &read,
        ))
        .await
        .expect("issues")
        .into_inner();
    assert_eq!(issues.issues.len(), 1);
    assert_eq!((issues.issues[0].id, issues.issues[0].events), (7, 3));
    assert!(issues.next_cursor.is_empty());

    let detail = client
        .get_issue(with_token(
            pb::GetIssueRequest {
                project_id: project.id,
                issue_id: 7,
            },
            &read,
        ))
        .await
        .expect("detail")
        .into_inner();
    assert_eq!(detail.hashes, vec![hash]);
    assert_eq!(detail.tags[0].values[0].share, 1.0);
    assert_eq!(detail.hourly.len(), 24);
    assert_eq!(
        detail.latest_event.map(|e| e.event_id),
        Some(ids[2].to_string())
    );

    let events = client
        .list_issue_events(with_token(
            pb::ListIssueEventsRequest {
                project_id: project.id,
                issue_id: 7,
                limit: 2,
                ..Default::default()
            },
            &read,
        ))
        .await
        .expect("events")
        .into_inner();
    assert_eq!(events.events.len(), 2);
    assert!(!events.next_cursor.is_empty());

    let event = client
        .get_event(with_token(
            pb::GetEventRequest {
                project_id: project.id,
                event_id: ids[1].simple().to_string(),
            },
            &read,
        ))
        .await
        .expect("event")
        .into_inner();
    assert!(event.event_json.contains("KeyError"));
    assert_eq!(event.previous_event_id, ids[0].to_string());
    assert_eq!(event.next_event_id, ids[2].to_string());

    let resolved = client
        .update_issue(with_token(
            pb::UpdateIssueRequest {
                project_id: project.id,
                issue_id: 7,
                status: "resolved".into(),
                ..Default::default()
            },
            &write,
        ))
        .await
        .expect("resolve")
        .into_inner();
    assert_eq!(resolved.status, "resolved");

    // Errors as gRPC codes.
    let code = |result: Result<tonic::Response<pb::Issue>, tonic::Status>| {
        result.err().map(|status| status.code())
    };
    let update = |token: &str, issue_id, status: &str| {
        with_token(
            pb::UpdateIssueRequest {
                project_id: project.id,
                issue_id,
                status: status.into(),
                ..Default::default()
            },
            token,
        )
    };
    assert_eq!(
        code(client.update_issue(update(&read, 7, "resolved")).await),
        Some(Code::PermissionDenied)
    );
    assert_eq!(
        code(
            client
                .update_issue(update("shrike_wrong", 7, "resolved"))
                .await
        ),
        Some(Code::Unauthenticated)
    );
    assert_eq!(
        code(client.update_issue(update(&write, 99, "resolved")).await),
        Some(Code::NotFound)
    );
    assert_eq!(
        code(client.update_issue(update(&write, 7, "closed")).await),
        Some(Code::InvalidArgument)
    );
    // Project settings: read with a read token, replaced with an admin token only, checked.
    let (_, admin) = store.create_token("admin", "admin").await.expect("token");
    let get = |token: &str| {
        with_token(
            pb::GetProjectSettingsRequest {
                project_id: project.id,
            },
            token,
        )
    };
    let none = client.get_project_settings(get(&read)).await.expect("get");
    assert_eq!(none.into_inner(), pb::ProjectSettings::default());
    let wanted = pb::ProjectSettings {
        retention_days: Some(30),
        scrubbing: Some(pb::ScrubbingSettings {
            enabled: true,
            sensitive_fields: vec!["cart_id".into()],
            safe_fields: vec![],
        }),
        grouping: None,
    };
    let put = |token: &str, settings: pb::ProjectSettings| {
        with_token(
            pb::UpdateProjectSettingsRequest {
                project_id: project.id,
                settings: Some(settings),
            },
            token,
        )
    };
    let weak = client
        .update_project_settings(put(&write, wanted.clone()))
        .await
        .expect_err("a write token");
    assert_eq!(weak.code(), Code::PermissionDenied);
    let bad_days = pb::ProjectSettings {
        retention_days: Some(70_000),
        ..wanted.clone()
    };
    let refused = client
        .update_project_settings(put(&admin, bad_days))
        .await
        .expect_err("70,000 days");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("retention_days"), "{refused:?}");
    let stored = client
        .update_project_settings(put(&admin, wanted.clone()))
        .await
        .expect("update");
    assert_eq!(stored.into_inner(), wanted);
    let read_back = client.get_project_settings(get(&read)).await.expect("get");
    assert_eq!(read_back.into_inner(), wanted);
    assert_eq!(
        store
            .refresh_retention()
            .await
            .expect("refresh")
            .days(project.id),
        30
    );

    // Projects and keys: admin only; a project created, renamed, given a key, its key disabled
    // and deleted, then the project deleted.
    let create = |token: &str, name: &str| {
        with_token(
            pb::CreateProjectRequest {
                name: name.to_owned(),
            },
            token,
        )
    };
    let weak = client
        .create_project(create(&write, "web"))
        .await
        .expect_err("write scope");
    assert_eq!(weak.code(), Code::PermissionDenied);
    let web = client
        .create_project(create(&admin, "web"))
        .await
        .expect("create")
        .into_inner();
    assert_eq!((web.name.as_str(), web.keys.len()), ("web", 1));
    let taken = client
        .create_project(create(&admin, "web"))
        .await
        .expect_err("a second web");
    assert_eq!(taken.code(), Code::FailedPrecondition);
    let renamed = client
        .rename_project(with_token(
            pb::RenameProjectRequest {
                project_id: web.id,
                name: "frontend".into(),
            },
            &admin,
        ))
        .await
        .expect("rename")
        .into_inner();
    assert_eq!(renamed.name, "frontend");
    let key = client
        .create_key(with_token(
            pb::CreateKeyRequest { project_id: web.id },
            &admin,
        ))
        .await
        .expect("key")
        .into_inner();
    assert!(key.active && key.dsn.contains(&key.public_key), "{key:?}");
    let disabled = client
        .update_key(with_token(
            pb::UpdateKeyRequest {
                project_id: web.id,
                public_key: key.public_key.clone(),
                active: false,
            },
            &admin,
        ))
        .await
        .expect("disable")
        .into_inner();
    assert!(!disabled.active);
    client
        .delete_key(with_token(
            pb::DeleteKeyRequest {
                project_id: web.id,
                public_key: key.public_key.clone(),
            },
            &admin,
        ))
        .await
        .expect("delete key");
    // The rows go by a ClickHouse mutation, in the background: wait until the key is not listed.
    for _ in 0..100 {
        let listed = client
            .list_projects(with_token(pb::ListProjectsRequest {}, &read))
            .await
            .expect("list")
            .into_inner();
        let still = listed
            .projects
            .iter()
            .flat_map(|p| &p.keys)
            .any(|k| k.public_key == key.public_key);
        if !still {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let gone = client
        .delete_key(with_token(
            pb::DeleteKeyRequest {
                project_id: web.id,
                public_key: key.public_key,
            },
            &admin,
        ))
        .await
        .expect_err("deleted already");
    assert_eq!(gone.code(), Code::NotFound);
    client
        .delete_project(with_token(
            pb::DeleteProjectRequest { project_id: web.id },
            &admin,
        ))
        .await
        .expect("delete project");
    let listed = client
        .list_projects(with_token(pb::ListProjectsRequest {}, &read))
        .await
        .expect("list")
        .into_inner();
    assert!(listed.projects.iter().all(|p| p.id != web.id));
    // Unmerging a hash that was never merged, and an attachment that does not exist.
    let not_merged = client
        .unmerge_hashes(with_token(
            pb::UnmergeHashesRequest {
                project_id: project.id,
                hashes: vec![format!("{:032x}", 7)],
            },
            &write,
        ))
        .await
        .expect_err("not merged");
    assert_eq!(not_merged.code(), Code::FailedPrecondition);
    let attachment = |attachment_id: &str| {
        with_token(
            pb::GetAttachmentRequest {
                project_id: project.id,
                event_id: ids[0].to_string(),
                attachment_id: attachment_id.to_owned(),
            },
            &read,
        )
    };
    let missing = client
        .get_attachment(attachment(&Uuid::new_v4().to_string()))
        .await
        .expect_err("no attachment");
    assert_eq!(missing.code(), Code::NotFound);
    let bad = client
        .get_attachment(attachment("not-a-uuid"))
        .await
        .expect_err("a bad id");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().contains("attachment_id"), "{bad:?}");

    let unauthenticated = client
        .list_projects(pb::ListProjectsRequest {})
        .await
        .err()
        .map(|s| s.code());
    assert_eq!(unauthenticated, Some(Code::Unauthenticated));
}
