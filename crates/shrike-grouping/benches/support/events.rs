//! Real-shaped events for the grouping benchmarks: one exception with a parameterizable value,
//! half the frames in-app.

use serde_json::{Value, json};
use shrike_protocol::Event;

fn frame(platform: &str, i: usize, in_app: bool) -> Value {
    match platform {
        "python" => json!({
            "filename": format!("app/module_{i}.py"),
            "abs_path": format!("/srv/app/app/module_{i}.py"),
            "module": format!("app.module_{i}"),
            "function": format!("handle_{i}"),
            "lineno": 10 + i,
            "context_line": format!("    result = handle_{}(request, user_id=user.id)", i + 1),
            "pre_context": ["def f():", "    x = 1"],
            "post_context": ["    return result"],
            "in_app": in_app,
            "vars": {"request": "<WSGIRequest: GET '/boom/'>", "i": i}
        }),
        "javascript" => json!({
            "filename": format!("/static/js/chunk-{i}.js"),
            "abs_path": format!("https://example.com/static/js/chunk-{i}.js"),
            "function": format!("Object.component{i}"),
            "lineno": 1,
            "colno": 1000 + i,
            "context_line": format!("const value = component{}(props);", i + 1),
            "in_app": in_app
        }),
        _ => json!({
            "filename": format!("Service{i}.java"),
            // One frame in five is a Spring proxy with a generated class name.
            "module": if i.is_multiple_of(5) {
                format!("com.example.service.Service{i}$$EnhancerBySpringCGLIB$$1ebdddb0")
            } else {
                format!("com.example.service.Service{i}")
            },
            "function": format!("process{i}"),
            "lineno": 100 + i,
            "in_app": in_app
        }),
    }
}

/// An event of `platform` with `frames` frames.
pub fn event(platform: &str, frames: usize) -> Event {
    let frames: Vec<Value> = (0..frames)
        .map(|i| frame(platform, i, i >= frames / 2))
        .collect();
    let body = json!({
        "event_id": "9ec79c33ec9942ab8353589fcb2e04dc",
        "platform": platform,
        "level": "error",
        "message": "Order 12345 failed for user 42 at 2026-11-24T10:00:00Z",
        "exception": {"values": [{
            "type": "ValueError",
            "value": "invalid literal for int() with base 10: 'abc' (request 88ee7c66-29a9-4a4a-bc26-c72d76c5de14)",
            "mechanism": {"type": "generic", "handled": false},
            "stacktrace": {"frames": frames}
        }]},
        "breadcrumbs": {"values": [{"message": "GET /api", "category": "http"}]},
        "tags": {"release": "1.0", "browser": "Firefox"},
        "user": {"id": "42", "email": "a@example.com"}
    });
    Event::parse(body.to_string().as_bytes()).expect("benchmark event parses")
}
