//! Ingest over real HTTP, with keys in a real ClickHouse and the in-memory bus behind it.

use bytes::Bytes;
use shrike_bus::{Consumer, LocalBus, Producer};
use shrike_ingest::quotas::Scope;
use shrike_ingest::{IngestConfig, IngestState, KeyCache, Outcomes, Quota};
use shrike_messages::{Topic, pb};
use shrike_store::Store;
use shrike_store::local::LocalClickHouse;
use std::io::{Read, Write};
use std::time::Duration;

struct Env {
    outcomes: Outcomes,
    keys: KeyCache,
    _dir: tempfile::TempDir,
    _server: LocalClickHouse,
    store: Store,
    bus: LocalBus,
    port: u16,
    key: String,
}

async fn start(capacity: usize) -> Env {
    start_with(capacity, Vec::new()).await
}

async fn start_with(capacity: usize, quotas: Vec<Quota>) -> Env {
    let config = IngestConfig {
        max_event_bytes: 1000,
        quotas,
        ..IngestConfig::default()
    };
    start_custom(LocalBus::in_memory(&Topic::NAMES, capacity), config).await
}

async fn start_custom(bus: LocalBus, config: IngestConfig) -> Env {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = LocalClickHouse::start(dir.path(), 0, 0)
        .await
        .expect("clickhouse-server starts");
    let store = server.store("shrike").expect("store");
    store.migrate().await.expect("migrate");
    let (_, key) = store.create_project("one").await.expect("project");
    store.create_project("two").await.expect("project");
    let keys = KeyCache::new(store.clone());
    keys.refresh().await.expect("keys");
    let outcomes = Outcomes::default();
    let app = shrike_ingest::router(IngestState::new(
        bus.clone(),
        keys.clone(),
        config,
        outcomes.clone(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let listener = shrike_ingest::LimitedListener::new(listener, 64, Duration::from_secs(60));
    tokio::spawn(shrike_ingest::serve(
        listener,
        app,
        tokio_util::sync::CancellationToken::new(),
    ));
    Env {
        outcomes,
        keys,
        _dir: dir,
        _server: server,
        store,
        bus,
        port,
        key: key.public_key,
    }
}

/// Sends a raw HTTP/1.0 request from a blocking thread; returns the whole response.
async fn send(
    port: u16,
    method: &str,
    path: &str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
) -> String {
    let head_line = format!(
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n",
        body.len()
    );
    tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
        let mut head = head_line;
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).expect("write");
        stream.write_all(&body).expect("write");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read");
        response
    })
    .await
    .expect("request thread")
}

/// POSTs and returns status and body.
async fn post(
    port: u16,
    path: &str,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
) -> (u16, String) {
    let response = send(port, "POST", path, headers, body).await;
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (
        status,
        response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_owned())
            .unwrap_or_default(),
    )
}

/// 200 MiB of zeros, gzip-compressed to about 200 KiB.
fn gzip_bomb() -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let chunk = vec![0u8; 1024 * 1024];
    for _ in 0..200 {
        gz.write_all(&chunk).expect("gzip");
    }
    gz.finish().expect("gzip")
}

fn auth(key: &str) -> Vec<(String, String)> {
    vec![(
        "X-Sentry-Auth".into(),
        format!("Sentry sentry_key={key}, sentry_version=7, sentry_client=test/1"),
    )]
}

const EVENT_ID: &str = "9ec79c33ec9942ab8353589fcb2e04dc";

fn envelope() -> Vec<u8> {
    format!("{{\"event_id\":\"{EVENT_ID}\"}}\n{{\"type\":\"event\"}}\n{{\"message\":\"hello\"}}\n")
        .into_bytes()
}

struct Raw {
    project_id: u64,
    event_id: uuid::Uuid,
    payload: Vec<u8>,
}

async fn next_raw(consumer: &mut impl Consumer) -> Raw {
    let record = tokio::time::timeout(Duration::from_secs(5), consumer.recv())
        .await
        .expect("a record")
        .expect("open");
    let raw: pb::RawEvent = shrike_messages::decode(&record.payload).expect("decodes");
    let (meta, event_id) = shrike_messages::check_meta(raw.meta.as_ref()).expect("meta");
    Raw {
        project_id: meta.project_id,
        event_id,
        payload: raw.payload.to_vec(),
    }
}

#[tokio::test]
async fn accepts_events_by_every_auth_route_and_encoding() {
    let env = start(100).await;
    let mut consumer = env.bus.consumer(Topic::RawEvents.name(), "test");

    let (status, body) = post(env.port, "/api/1/envelope/", auth(&env.key), envelope()).await;
    assert_eq!(
        (status, body.as_str()),
        (200, format!("{{\"id\":\"{EVENT_ID}\"}}").as_str())
    );
    let raw = next_raw(&mut consumer).await;
    assert_eq!(
        (raw.project_id, raw.event_id.simple().to_string()),
        (1, EVENT_ID.to_owned())
    );
    assert_eq!(raw.payload, b"{\"message\":\"hello\"}");

    // sentry_key in the query string (browser SDKs), gzip body, store endpoint.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"{\"event_id\":\"0123456789abcdef0123456789abcdef\",\"message\":\"m\"}")
        .expect("gzip");
    let headers = vec![("Content-Encoding".into(), "gzip".into())];
    let path = format!("/api/1/store/?sentry_key={}&sentry_version=7", env.key);
    let (status, body) = post(env.port, &path, headers, gz.finish().expect("gzip")).await;
    assert_eq!(
        (status, body.as_str()),
        (200, "{\"id\":\"0123456789abcdef0123456789abcdef\"}")
    );
    assert_eq!(
        next_raw(&mut consumer).await.event_id.simple().to_string(),
        "0123456789abcdef0123456789abcdef"
    );

    // The DSN in the envelope header authenticates too; the event id is assigned when missing.
    let body = format!(
        "{{\"dsn\":\"http://{}@h/1\"}}\n{{\"type\":\"event\"}}\n{{}}\n",
        env.key
    )
    .into_bytes();
    let (status, answer) = post(env.port, "/api/1/envelope/", vec![], body).await;
    assert_eq!(status, 200, "{answer}");
    let raw = next_raw(&mut consumer).await;
    assert!(answer.contains(&raw.event_id.simple().to_string()));

    // Brotli and zstd bodies, and the legacy base64+zlib store body of old SDKs.
    let event = b"{\"event_id\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"message\":\"z\"}";
    let zstd_body = zstd::encode_all(&event[..], 3).expect("zstd");
    let headers = [
        auth(&env.key),
        vec![("Content-Encoding".into(), "zstd".into())],
    ]
    .concat();
    assert_eq!(
        post(env.port, "/api/1/store/", headers, zstd_body).await.0,
        200
    );
    assert_eq!(next_raw(&mut consumer).await.payload, event.to_vec());
    let mut br = Vec::new();
    {
        let mut writer = brotli::CompressorWriter::new(&mut br, 4096, 5, 22);
        writer.write_all(event).expect("brotli");
    }
    let headers = [
        auth(&env.key),
        vec![("Content-Encoding".into(), "br".into())],
    ]
    .concat();
    assert_eq!(post(env.port, "/api/1/store/", headers, br).await.0, 200);
    assert_eq!(next_raw(&mut consumer).await.payload, event.to_vec());
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(event).expect("zlib");
    use base64::Engine as _;
    let legacy = base64::engine::general_purpose::STANDARD.encode(z.finish().expect("zlib"));
    assert_eq!(
        post(
            env.port,
            "/api/1/store/",
            auth(&env.key),
            legacy.into_bytes()
        )
        .await
        .0,
        200
    );
    assert_eq!(next_raw(&mut consumer).await.payload, event.to_vec());

    // `Authorization: Sentry ...` (any case of the scheme) authenticates like X-Sentry-Auth.
    let headers = vec![(
        "Authorization".into(),
        format!("sentry sentry_key={}, sentry_version=7", env.key),
    )];
    assert_eq!(
        post(env.port, "/api/1/envelope/", headers, envelope())
            .await
            .0,
        200
    );
    assert_eq!(next_raw(&mut consumer).await.project_id, 1);

    // A gzip envelope authenticated only by the DSN in its (compressed) header.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(
        format!(
            "{{\"dsn\":\"http://{}@h/1\"}}\n{{\"type\":\"event\"}}\n{{\"message\":\"tunnel\"}}\n",
            env.key
        )
        .as_bytes(),
    )
    .expect("gzip");
    let headers = vec![("Content-Encoding".into(), "gzip".into())];
    let (status, answer) = post(
        env.port,
        "/api/1/envelope/",
        headers,
        gz.finish().expect("gzip"),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        next_raw(&mut consumer).await.payload,
        b"{\"message\":\"tunnel\"}"
    );

    // Items other than events are accepted without an event.
    let body = b"{}\n{\"type\":\"session\"}\n{\"sid\":\"x\"}\n".to_vec();
    assert_eq!(
        post(env.port, "/api/1/envelope/", auth(&env.key), body).await,
        (200, "{}".into())
    );
}

#[tokio::test]
async fn answers_bad_requests_like_relay() {
    let env = start(100).await;
    type Case<'a> = (&'a str, &'a str, Vec<(String, String)>, Vec<u8>, u16);
    let cases: Vec<Case> = vec![
        ("no auth", "/api/1/envelope/", vec![], envelope(), 401),
        (
            "unknown key",
            "/api/1/envelope/",
            auth("ffffffffffffffffffffffffffffffff"),
            envelope(),
            403,
        ),
        (
            "unknown project",
            "/api/999/envelope/",
            auth(&env.key),
            envelope(),
            403,
        ),
        (
            "conflicting keys in header and query",
            "/api/1/envelope/?sentry_key=0123456789abcdef0123456789abcdef",
            auth(&env.key),
            envelope(),
            401,
        ),
        (
            "malformed envelope header",
            "/api/1/envelope/",
            auth(&env.key),
            b"{\"event_id\": 12\n{\"type\":\"event\"}\n{}\n".to_vec(),
            400,
        ),
        (
            "key of another project",
            "/api/2/envelope/",
            auth(&env.key),
            envelope(),
            403,
        ),
        (
            "malformed project id",
            "/api/abc/envelope/",
            auth(&env.key),
            envelope(),
            400,
        ),
        (
            "malformed key",
            "/api/1/envelope/",
            auth("not-a-key!"),
            envelope(),
            400,
        ),
        (
            "malformed envelope",
            "/api/1/envelope/",
            auth(&env.key),
            b"nope\n".to_vec(),
            400,
        ),
        (
            "invalid event json",
            "/api/1/store/",
            auth(&env.key),
            b"{\"a\":".to_vec(),
            400,
        ),
        (
            "event not an object",
            "/api/1/store/",
            auth(&env.key),
            b"[1]".to_vec(),
            400,
        ),
        (
            "a number as the event",
            "/api/1/store/",
            auth(&env.key),
            b"1".to_vec(),
            400,
        ),
        (
            "oversized event",
            "/api/1/store/",
            auth(&env.key),
            format!("{{\"m\":\"{}\"}}", "x".repeat(2000)).into_bytes(),
            413,
        ),
        (
            "two events in one envelope",
            "/api/1/envelope/",
            auth(&env.key),
            b"{}\n{\"type\":\"event\"}\n{}\n{\"type\":\"event\"}\n{}\n".to_vec(),
            400,
        ),
        (
            "item length past the end",
            "/api/1/envelope/",
            auth(&env.key),
            b"{}\n{\"type\":\"event\",\"length\":500}\n{}\n".to_vec(),
            400,
        ),
        (
            "invalid utf-8 in the event",
            "/api/1/store/",
            auth(&env.key),
            b"{\"message\":\"\xff\xfe\"}".to_vec(),
            400,
        ),
        (
            "zip bomb",
            "/api/1/store/",
            [
                auth(&env.key),
                vec![("Content-Encoding".into(), "gzip".into())],
            ]
            .concat(),
            gzip_bomb(),
            413,
        ),
        (
            "unsupported encoding",
            "/api/1/store/",
            [
                auth(&env.key),
                vec![("Content-Encoding".into(), "lzma".into())],
            ]
            .concat(),
            b"{}".to_vec(),
            415,
        ),
    ];
    for (name, path, headers, body, expected) in cases {
        let (status, body) = post(env.port, path, headers, body).await;
        assert_eq!(status, expected, "{name}: {body}");
        assert!(body.contains("\"detail\""), "{name}: {body}");
    }
    // Wrong method: Sentry's endpoints take POST only. Like every refusal, with a detail body.
    let get = send(env.port, "GET", "/api/1/envelope/", vec![], vec![]).await;
    assert!(get.starts_with("HTTP/1.0 405"), "{get}");
    assert!(
        get.to_ascii_lowercase().contains("allow: post")
            && get.ends_with("{\"detail\":\"Method Not Allowed\"}"),
        "{get}"
    );
    let unknown = send(env.port, "GET", "/nowhere", vec![], vec![]).await;
    assert!(unknown.starts_with("HTTP/1.0 404"), "{unknown}");
    assert!(unknown.ends_with("{\"detail\":\"not found\"}"), "{unknown}");
    // Operational endpoints are not on the SDKs' port; only the liveness check is.
    for path in ["/metrics", "/readyz"] {
        let response = send(env.port, "GET", path, vec![], vec![]).await;
        assert!(response.starts_with("HTTP/1.0 404"), "{path}: {response}");
    }
    let health = send(env.port, "GET", "/healthz", vec![], vec![]).await;
    assert!(health.starts_with("HTTP/1.0 200"), "{health}");
    // The service is still up.
    assert_eq!(
        post(env.port, "/api/1/envelope/", auth(&env.key), envelope())
            .await
            .0,
        200
    );
}

#[tokio::test]
async fn a_full_bus_answers_503_with_retry_after() {
    let env = start(1).await;
    let _consumer = env.bus.consumer(Topic::RawEvents.name(), "slow");
    env.bus
        .send(Topic::RawEvents.name(), b"k", Bytes::from_static(b"x"))
        .await
        .expect("fills the topic");
    let response = send(
        env.port,
        "POST",
        "/api/1/envelope/",
        auth(&env.key),
        envelope(),
    )
    .await;
    assert!(response.starts_with("HTTP/1.0 503"), "{response}");
    assert!(
        response.to_ascii_lowercase().contains("retry-after: 1"),
        "{response}"
    );
}

#[tokio::test]
async fn requests_beyond_the_concurrency_limit_wait_for_a_turn() {
    // One request at a time; a full topic makes the handler wait for room.
    let bus = LocalBus::in_memory(&Topic::NAMES, 1).with_send_wait(Duration::from_secs(30));
    let config = IngestConfig {
        max_concurrent_requests: 1,
        ..IngestConfig::default()
    };
    let env = start_custom(bus, config).await;
    let mut consumer = env.bus.consumer(Topic::RawEvents.name(), "slow");
    env.bus
        .send(Topic::RawEvents.name(), b"k", Bytes::from_static(b"x"))
        .await
        .expect("fills the topic");
    let (port, key) = (env.port, env.key.clone());
    let sent = key.clone();
    let waiting =
        tokio::spawn(async move { post(port, "/api/1/envelope/", auth(&sent), envelope()).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    // A second valid request waits for its turn...
    let sent = key.clone();
    let queued =
        tokio::spawn(async move { post(port, "/api/1/envelope/", auth(&sent), envelope()).await });
    // ...while requests refused before they need a slot are answered at once.
    let at_once = Duration::from_secs(2);
    let bad_project = post(port, "/api/x/envelope/", auth(&key), envelope());
    let (status, body) = tokio::time::timeout(at_once, bad_project)
        .await
        .expect("answered without a slot");
    assert_eq!(status, 400, "{body}");
    let bad_key = post(port, "/api/1/envelope/", auth("0000beef"), envelope());
    let (status, body) = tokio::time::timeout(at_once, bad_key)
        .await
        .expect("answered without a slot");
    assert_eq!(status, 403, "{body}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!waiting.is_finished() && !queued.is_finished());

    for _ in 0..2 {
        let record = consumer.recv().await.expect("record");
        consumer.commit(&record).expect("commit");
    }
    assert_eq!(waiting.await.expect("joins").0, 200);
    assert_eq!(queued.await.expect("joins").0, 200);
}

#[tokio::test]
async fn keys_created_after_start_work_at_once() {
    let env = start(100).await;
    let key = env.store.create_key(2).await.expect("new key");
    let (status, body) = post(
        env.port,
        "/api/2/envelope/",
        auth(&key.public_key),
        envelope(),
    )
    .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn quotas_answer_429_with_sentry_rate_limit_headers_and_count_outcomes() {
    let quota = Quota {
        scope: Scope::Key,
        categories: vec!["error".into()],
        limit: 2,
        window_secs: 3600,
        project_id: None,
        reason: None,
    };
    let env = start_with(100, vec![quota]).await;
    let mut consumer = env.bus.consumer(Topic::Outcomes.name(), "check");
    for _ in 0..2 {
        assert_eq!(
            post(env.port, "/api/1/envelope/", auth(&env.key), envelope())
                .await
                .0,
            200
        );
    }
    let response = send(
        env.port,
        "POST",
        "/api/1/envelope/",
        auth(&env.key),
        envelope(),
    )
    .await;
    assert!(response.starts_with("HTTP/1.0 429"), "{response}");
    let lower = response.to_ascii_lowercase();
    assert!(
        lower.contains("x-sentry-rate-limits: ") && lower.contains(":error:key:key_quota"),
        "{response}"
    );
    assert!(lower.contains("retry-after: "), "{response}");
    // Sessions are another category: still accepted, and the response is a plain 200.
    let session = b"{}\n{\"type\":\"session\"}\n{\"sid\":\"x\"}\n".to_vec();
    assert_eq!(
        post(env.port, "/api/1/envelope/", auth(&env.key), session).await,
        (200, "{}".into())
    );
    // A client report: the SDK's own drops become client_discard outcomes.
    let report = b"{}\n{\"type\":\"client_report\"}\n{\"discarded_events\":[{\"reason\":\"ratelimit_backoff\",\"category\":\"error\",\"quantity\":5}]}\n".to_vec();
    assert_eq!(
        post(env.port, "/api/1/envelope/", auth(&env.key), report)
            .await
            .0,
        200
    );

    env.outcomes.flush(&env.bus).await;
    let mut totals = std::collections::BTreeMap::new();
    while let Ok(Ok(record)) =
        tokio::time::timeout(Duration::from_millis(300), consumer.recv()).await
    {
        let o: pb::Outcome = shrike_messages::decode(&record.payload).expect("outcome");
        *totals.entry((o.category, o.outcome, o.reason)).or_insert(0) += o.quantity;
    }
    let expected: std::collections::BTreeMap<(String, String, String), u64> = [
        (("error", "accepted", ""), 2),
        (("error", "client_discard", "ratelimit_backoff"), 5),
        (("error", "rate_limited", "key_quota"), 1),
        (("session", "accepted", ""), 1),
    ]
    .into_iter()
    .map(|((c, o, r), q)| ((c.to_owned(), o.to_owned(), r.to_owned()), q))
    .collect();
    assert_eq!(totals, expected);
}

#[tokio::test]
async fn attachments_travel_in_chunks_with_their_event() {
    let env = start(100).await;
    let mut chunks = env.bus.consumer(Topic::Attachments.name(), "check");
    let file: Vec<u8> = (0..1_200_000u32).map(|i| (i % 251) as u8).collect();
    let mut body = format!(
        "{{\"event_id\":\"{EVENT_ID}\"}}\n{{\"type\":\"event\"}}\n{{\"message\":\"with file\"}}\n\
         {{\"type\":\"attachment\",\"length\":{},\"filename\":\"dump.bin\",\"content_type\":\"application/octet-stream\"}}\n",
        file.len()
    )
    .into_bytes();
    body.extend_from_slice(&file);
    body.push(b'\n');
    assert_eq!(
        post(env.port, "/api/1/envelope/", auth(&env.key), body)
            .await
            .0,
        200
    );
    let mut received = Vec::new();
    for _ in 0..3 {
        let record = tokio::time::timeout(Duration::from_secs(5), chunks.recv())
            .await
            .expect("chunk")
            .expect("open");
        let chunk: pb::AttachmentChunk = shrike_messages::decode(&record.payload).expect("decodes");
        let (_, event_id) = shrike_messages::check_meta(chunk.meta.as_ref()).expect("meta");
        assert_eq!(event_id.simple().to_string(), EVENT_ID);
        assert_eq!(
            (chunk.filename.as_str(), chunk.chunk_count, chunk.size),
            ("dump.bin", 3, file.len() as u64)
        );
        assert!(chunk.data.len() <= 512 * 1024);
        received.push((chunk.chunk_index, chunk.data));
    }
    received.sort();
    let joined: Vec<u8> = received.into_iter().flat_map(|(_, d)| d).collect();
    assert_eq!(joined, file);

    let orphan = b"{}\n{\"type\":\"attachment\",\"filename\":\"a.txt\"}\nhello\n".to_vec();
    assert_eq!(
        post(env.port, "/api/1/envelope/", auth(&env.key), orphan)
            .await
            .0,
        400
    );
}

#[tokio::test]
async fn disabled_keys_get_403() {
    let env = start(100).await;
    let status = |env: &Env| {
        let (port, key) = (env.port, env.key.clone());
        async move {
            post(port, "/api/1/envelope/", auth(&key), envelope())
                .await
                .0
        }
    };
    assert_eq!(status(&env).await, 200);
    for (active, expected) in [(false, 403), (true, 200)] {
        assert!(
            env.store
                .set_key_active(&env.key, active)
                .await
                .expect("set key state")
        );
        env.keys.refresh().await.expect("refresh");
        assert_eq!(status(&env).await, expected, "key active: {active}");
    }
    assert!(
        !env.store
            .set_key_active("nosuchkey", false)
            .await
            .expect("lookup")
    );
}

/// The outcomes counted so far, as (project, category, outcome, reason, quantity), sorted.
async fn outcomes(env: &Env) -> Vec<(u64, String, String, String, u64)> {
    let mut consumer = env.bus.consumer(Topic::Outcomes.name(), "outcomes-test");
    env.outcomes.flush(&env.bus).await;
    let mut seen = Vec::new();
    while let Ok(Ok(record)) =
        tokio::time::timeout(Duration::from_millis(200), consumer.recv()).await
    {
        let o: pb::Outcome = shrike_messages::decode(&record.payload).expect("outcome");
        seen.push((o.project_id, o.category, o.outcome, o.reason, o.quantity));
    }
    seen.sort();
    seen
}

#[tokio::test]
async fn refusals_are_counted_as_invalid_outcomes_of_known_projects() {
    let config = IngestConfig {
        max_body_bytes: 10_000,
        max_event_bytes: 1000,
        max_attachment_bytes: 100,
        ..IngestConfig::default()
    };
    let env = start_custom(LocalBus::in_memory(&Topic::NAMES, 100), config).await;
    let key = env.key.clone();
    let gzip = |extra: Vec<(String, String)>| {
        [extra, vec![("Content-Encoding".into(), "gzip".into())]].concat()
    };
    let attachment = format!(
        "{{\"event_id\":\"{EVENT_ID}\"}}\n{{\"type\":\"attachment\",\"length\":200}}\n{}\n",
        "a".repeat(200)
    );
    type Case = (
        &'static str,
        &'static str,
        Vec<(String, String)>,
        Vec<u8>,
        u16,
    );
    let cases: Vec<Case> = vec![
        (
            "body over the limit",
            "/api/1/envelope/",
            auth(&key),
            vec![b'x'; 20_000],
            413,
        ),
        (
            "unsupported encoding",
            "/api/1/store/",
            [auth(&key), vec![("Content-Encoding".into(), "lzma".into())]].concat(),
            b"{}".to_vec(),
            415,
        ),
        (
            "corrupt gzip",
            "/api/1/store/",
            gzip(auth(&key)),
            b"not gzip".to_vec(),
            400,
        ),
        (
            "zip bomb",
            "/api/1/store/",
            gzip(auth(&key)),
            gzip_bomb(),
            413,
        ),
        (
            "no credentials",
            "/api/1/store/",
            vec![],
            b"{}".to_vec(),
            401,
        ),
        (
            "unknown key",
            "/api/1/envelope/",
            auth("ffffffffffffffffffffffffffffffff"),
            envelope(),
            403,
        ),
        (
            "unknown key, unknown project",
            "/api/999/envelope/",
            auth("ffffffffffffffffffffffffffffffff"),
            envelope(),
            403,
        ),
        (
            "a number as the event",
            "/api/1/store/",
            auth(&key),
            b"1".to_vec(),
            400,
        ),
        (
            "an array as the event",
            "/api/1/store/",
            auth(&key),
            b"[]".to_vec(),
            400,
        ),
        (
            "attachment over the limit",
            "/api/1/envelope/",
            auth(&key),
            attachment.into_bytes(),
            413,
        ),
    ];
    for (name, path, headers, body, expected) in cases {
        let (status, answer) = post(env.port, path, headers, body).await;
        assert_eq!(status, expected, "{name}: {answer}");
        assert!(answer.starts_with("{\"detail\":"), "{name}: {answer}");
    }
    let invalid = |category: &str, reason: &str, n: u64| {
        (
            1,
            category.to_owned(),
            "invalid".to_owned(),
            reason.to_owned(),
            n,
        )
    };
    let mut expected = vec![
        invalid("default", "too_large", 2),
        invalid("error", "invalid_compression", 2),
        invalid("error", "too_large", 1),
        invalid("error", "auth_client", 1),
        invalid("default", "project_id", 1),
        invalid("error", "invalid_json", 2),
    ];
    expected.sort();
    assert_eq!(outcomes(&env).await, expected, "nothing for project 999");
}

#[tokio::test]
async fn cors_headers_are_on_the_actual_response_too() {
    let env = start(100).await;
    let path = format!("/api/1/envelope/?sentry_key={}&sentry_version=7", env.key);
    let headers = vec![("Origin".into(), "https://app.example.com".into())];
    let response = send(env.port, "POST", &path, headers, envelope()).await;
    let lower = response.to_ascii_lowercase();
    assert!(lower.starts_with("http/1.0 200"), "{response}");
    assert!(
        lower.contains("access-control-allow-origin: *"),
        "{response}"
    );
    assert!(
        lower.contains("access-control-expose-headers: ")
            && lower.contains("x-sentry-rate-limits")
            && lower.contains("retry-after"),
        "{response}"
    );
}
