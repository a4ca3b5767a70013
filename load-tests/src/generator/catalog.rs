//! The generator's catalogue: exception types, words, and the framework frames each platform's
//! stack traces are built from. Static data only.

use super::Platform;

#[derive(Debug)]
pub(super) struct ExceptionKind {
    pub(super) ty: &'static str,
    pub(super) module: Option<&'static str>,
    pub(super) template: &'static str,
}

const fn exc(
    ty: &'static str,
    module: Option<&'static str>,
    template: &'static str,
) -> ExceptionKind {
    ExceptionKind {
        ty,
        module,
        template,
    }
}

static PYTHON_EXCEPTIONS: [ExceptionKind; 10] = [
    exc("KeyError", None, "'{word}'"),
    exc(
        "ValueError",
        None,
        "invalid literal for int() with base 10: '{word}{n}'",
    ),
    exc("ZeroDivisionError", None, "division by zero"),
    exc(
        "AttributeError",
        None,
        "'NoneType' object has no attribute '{word}'",
    ),
    exc(
        "TypeError",
        None,
        "unsupported operand type(s) for +: 'int' and 'NoneType'",
    ),
    exc(
        "DoesNotExist",
        Some("shop.models"),
        "{Noun} matching query does not exist. id={n}",
    ),
    exc(
        "IntegrityError",
        Some("django.db.utils"),
        "duplicate key value violates unique constraint \"{noun}_ref_{n}\"",
    ),
    exc(
        "ConnectionError",
        Some("requests.exceptions"),
        "HTTPSConnectionPool(host='api.payments.example', port=443): Max retries exceeded with url: /v1/charges/{hex}",
    ),
    exc(
        "PaymentDeclined",
        Some("shop.payments.errors"),
        "payment {hex} declined: insufficient funds ({amount} EUR)",
    ),
    exc("TimeoutError", None, "operation timed out after {ms} ms"),
];

static JS_EXCEPTIONS: [ExceptionKind; 7] = [
    exc(
        "TypeError",
        None,
        "Cannot read properties of undefined (reading '{word}')",
    ),
    exc("Error", None, "Request failed with status code {status}"),
    exc("RangeError", None, "Invalid array length {n}"),
    exc(
        "SyntaxError",
        None,
        "Unexpected token < in JSON at position {n}",
    ),
    exc("ReferenceError", None, "{word} is not defined"),
    exc("AxiosError", None, "timeout of {ms}ms exceeded"),
    exc(
        "ValidationError",
        None,
        "{noun} {n} has invalid field '{word}'",
    ),
];

static JAVA_EXCEPTIONS: [ExceptionKind; 6] = [
    exc(
        "NullPointerException",
        Some("java.lang"),
        "Cannot invoke \"com.example.shop.{Noun}.getId()\" because \"{word}\" is null",
    ),
    exc(
        "IllegalStateException",
        Some("java.lang"),
        "{Noun} {n} is already {state}",
    ),
    exc(
        "IllegalArgumentException",
        Some("java.lang"),
        "Invalid quantity: {n}",
    ),
    exc(
        "SQLException",
        Some("java.sql"),
        "Deadlock found when trying to get lock; try restarting transaction (tx {hex})",
    ),
    exc(
        "NotFoundException",
        Some("com.example.shop.errors"),
        "No {noun} with id {n}",
    ),
    exc(
        "SocketTimeoutException",
        Some("java.net"),
        "Read timed out after {ms} ms",
    ),
];

static RUST_EXCEPTIONS: [ExceptionKind; 5] = [
    exc(
        "panic",
        None,
        "called `Option::unwrap()` on a `None` value ({noun} {n})",
    ),
    exc(
        "ParseIntError",
        None,
        "invalid digit found in string: \"{word}{n}\"",
    ),
    exc(
        "Database",
        Some("sqlx::error"),
        "error returned from database: deadlock detected (tx {hex})",
    ),
    exc(
        "reqwest::Error",
        None,
        "error sending request for url (https://api.payments.example/v1/charges/{hex}): operation timed out",
    ),
    exc(
        "OrderError",
        Some("shop_api::errors"),
        "{noun} {n} not found",
    ),
];

pub(super) const AREAS: [&str; 12] = [
    "orders",
    "payments",
    "billing",
    "accounts",
    "inventory",
    "search",
    "shipping",
    "notifications",
    "reports",
    "catalog",
    "checkout",
    "pricing",
];
pub(super) const VERBS: [&str; 20] = [
    "process", "load", "apply", "validate", "compute", "sync", "render", "resolve", "submit",
    "refresh", "charge", "reserve", "export", "notify", "parse", "build", "fetch", "update",
    "cancel", "merge",
];
pub(super) const NOUNS: [&str; 20] = [
    "order",
    "payment",
    "invoice",
    "cart",
    "customer",
    "discount",
    "shipment",
    "address",
    "report",
    "token",
    "session",
    "stock",
    "price",
    "refund",
    "coupon",
    "subscription",
    "receipt",
    "batch",
    "webhook",
    "profile",
];
pub(super) const WORDS: [&str; 24] = [
    "theme",
    "currency",
    "locale",
    "sku",
    "quantity",
    "total",
    "status",
    "email",
    "region",
    "tier",
    "country",
    "vat",
    "carrier",
    "warehouse",
    "discount",
    "promo",
    "channel",
    "timezone",
    "plan",
    "seats",
    "owner",
    "tenant",
    "cursor",
    "limit",
];
pub(super) const STATES: [&str; 4] = ["shipped", "cancelled", "refunded", "archived"];

pub(super) fn layers(platform: Platform) -> &'static [&'static str] {
    match platform {
        Platform::Python => &["views", "services", "models", "tasks", "serializers"],
        Platform::Javascript => &["routes", "services", "models", "jobs", "middleware"],
        Platform::Java => &["Controller", "Service", "Repository", "Validator", "Job"],
        Platform::Rust => &["handlers", "service", "store", "model", "jobs"],
    }
}

/// (module, function, filename, abs_path, context line) of framework frames, outermost first.
pub(super) type SystemFrame = (
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
);

pub(super) fn outer_frames(platform: Platform) -> (&'static [SystemFrame], &'static [SystemFrame]) {
    const PY_BASE: &[SystemFrame] = &[
        (
            "threading",
            "_bootstrap",
            "threading.py",
            "/usr/local/lib/python3.12/threading.py",
            "self._bootstrap_inner()",
        ),
        (
            "threading",
            "_bootstrap_inner",
            "threading.py",
            "/usr/local/lib/python3.12/threading.py",
            "self.run()",
        ),
        (
            "gunicorn.workers.sync",
            "handle_request",
            "gunicorn/workers/sync.py",
            "/usr/local/lib/python3.12/site-packages/gunicorn/workers/sync.py",
            "respiter = self.wsgi(environ, resp.start_response)",
        ),
        (
            "django.core.handlers.wsgi",
            "__call__",
            "django/core/handlers/wsgi.py",
            "/usr/local/lib/python3.12/site-packages/django/core/handlers/wsgi.py",
            "response = self.get_response(request)",
        ),
        (
            "django.core.handlers.base",
            "get_response",
            "django/core/handlers/base.py",
            "/usr/local/lib/python3.12/site-packages/django/core/handlers/base.py",
            "response = self._middleware_chain(request)",
        ),
    ];
    const PY_REPEAT: &[SystemFrame] = &[
        (
            "django.core.handlers.exception",
            "inner",
            "django/core/handlers/exception.py",
            "/usr/local/lib/python3.12/site-packages/django/core/handlers/exception.py",
            "response = get_response(request)",
        ),
        (
            "django.utils.deprecation",
            "__call__",
            "django/utils/deprecation.py",
            "/usr/local/lib/python3.12/site-packages/django/utils/deprecation.py",
            "response = response or self.get_response(request)",
        ),
        (
            "sentry_sdk.integrations.django.middleware",
            "sentry_wrapped_method",
            "sentry_sdk/integrations/django/middleware.py",
            "/usr/local/lib/python3.12/site-packages/sentry_sdk/integrations/django/middleware.py",
            "return old_method(*args, **kwargs)",
        ),
        (
            "django.core.handlers.base",
            "_get_response",
            "django/core/handlers/base.py",
            "/usr/local/lib/python3.12/site-packages/django/core/handlers/base.py",
            "response = wrapped_callback(request, *callback_args, **callback_kwargs)",
        ),
        (
            "rest_framework.views",
            "dispatch",
            "rest_framework/views.py",
            "/usr/local/lib/python3.12/site-packages/rest_framework/views.py",
            "response = handler(request, *args, **kwargs)",
        ),
    ];
    const JS_BASE: &[SystemFrame] = &[
        (
            "task_queues",
            "process.processTicksAndRejections",
            "node:internal/process/task_queues",
            "node:internal/process/task_queues",
            "",
        ),
        (
            "express.lib.router:index",
            "Function.handle",
            "/app/node_modules/express/lib/router/index.js",
            "/app/node_modules/express/lib/router/index.js",
            "next();",
        ),
    ];
    const JS_REPEAT: &[SystemFrame] = &[
        (
            "express.lib.router:layer",
            "Layer.handle [as handle_request]",
            "/app/node_modules/express/lib/router/layer.js",
            "/app/node_modules/express/lib/router/layer.js",
            "fn(req, res, next);",
        ),
        (
            "express.lib.router:index",
            "next",
            "/app/node_modules/express/lib/router/index.js",
            "/app/node_modules/express/lib/router/index.js",
            "layer.handle_request(req, res, next);",
        ),
        (
            "express.lib.router:route",
            "Route.dispatch",
            "/app/node_modules/express/lib/router/route.js",
            "/app/node_modules/express/lib/router/route.js",
            "layer.handle_request(req, res, next);",
        ),
        (
            "@sentry.node.build.cjs.tracing:express",
            "sentryTracingMiddleware",
            "/app/node_modules/@sentry/node/build/cjs/tracing/express.js",
            "/app/node_modules/@sentry/node/build/cjs/tracing/express.js",
            "return origMiddleware.call(this, req, res, next);",
        ),
    ];
    const JAVA_BASE: &[SystemFrame] = &[
        ("java.lang.Thread", "run", "Thread.java", "Thread.java", ""),
        (
            "org.apache.tomcat.util.threads.ThreadPoolExecutor$Worker",
            "run",
            "ThreadPoolExecutor.java",
            "ThreadPoolExecutor.java",
            "",
        ),
        (
            "org.apache.catalina.connector.CoyoteAdapter",
            "service",
            "CoyoteAdapter.java",
            "CoyoteAdapter.java",
            "",
        ),
        (
            "jakarta.servlet.http.HttpServlet",
            "service",
            "HttpServlet.java",
            "HttpServlet.java",
            "",
        ),
        (
            "org.springframework.web.servlet.FrameworkServlet",
            "processRequest",
            "FrameworkServlet.java",
            "FrameworkServlet.java",
            "",
        ),
    ];
    const JAVA_REPEAT: &[SystemFrame] = &[
        (
            "org.apache.catalina.core.ApplicationFilterChain",
            "doFilter",
            "ApplicationFilterChain.java",
            "ApplicationFilterChain.java",
            "",
        ),
        (
            "org.springframework.web.filter.OncePerRequestFilter",
            "doFilter",
            "OncePerRequestFilter.java",
            "OncePerRequestFilter.java",
            "",
        ),
        (
            "org.springframework.web.servlet.DispatcherServlet",
            "doDispatch",
            "DispatcherServlet.java",
            "DispatcherServlet.java",
            "",
        ),
        (
            "jdk.internal.reflect.DirectMethodHandleAccessor",
            "invoke",
            "DirectMethodHandleAccessor.java",
            "DirectMethodHandleAccessor.java",
            "",
        ),
        (
            "org.springframework.aop.framework.ReflectiveMethodInvocation",
            "proceed",
            "ReflectiveMethodInvocation.java",
            "ReflectiveMethodInvocation.java",
            "",
        ),
    ];
    const RUST_BASE: &[SystemFrame] = &[
        (
            "",
            "std::sys::pal::unix::thread::Thread::new::thread_start",
            "/rustc/library/std/src/sys/pal/unix/thread.rs",
            "/rustc/library/std/src/sys/pal/unix/thread.rs",
            "",
        ),
        (
            "",
            "tokio::runtime::scheduler::multi_thread::worker::run",
            "/cargo/registry/src/tokio-1.41.0/src/runtime/scheduler/multi_thread/worker.rs",
            "/cargo/registry/src/tokio-1.41.0/src/runtime/scheduler/multi_thread/worker.rs",
            "",
        ),
        (
            "",
            "tokio::runtime::task::harness::Harness<T,S>::poll",
            "/cargo/registry/src/tokio-1.41.0/src/runtime/task/harness.rs",
            "/cargo/registry/src/tokio-1.41.0/src/runtime/task/harness.rs",
            "",
        ),
        (
            "",
            "hyper::proto::h1::dispatch::Dispatcher<D,Bs,I,T>::poll_catch",
            "/cargo/registry/src/hyper-1.5.0/src/proto/h1/dispatch.rs",
            "/cargo/registry/src/hyper-1.5.0/src/proto/h1/dispatch.rs",
            "",
        ),
    ];
    const RUST_REPEAT: &[SystemFrame] = &[
        (
            "",
            "<core::pin::Pin<P> as core::future::future::Future>::poll",
            "/rustc/library/core/src/future/future.rs",
            "/rustc/library/core/src/future/future.rs",
            "",
        ),
        (
            "",
            "<tower::util::map_future::MapFuture<S,F> as tower_service::Service<R>>::call",
            "/cargo/registry/src/tower-0.5.1/src/util/map_future.rs",
            "/cargo/registry/src/tower-0.5.1/src/util/map_future.rs",
            "",
        ),
        (
            "",
            "axum::routing::route::Route<E>::call",
            "/cargo/registry/src/axum-0.7.9/src/routing/route.rs",
            "/cargo/registry/src/axum-0.7.9/src/routing/route.rs",
            "",
        ),
        (
            "",
            "<sentry_tower::http::SentryHttpFuture<F> as core::future::future::Future>::poll",
            "/cargo/registry/src/sentry-tower-0.34.0/src/http.rs",
            "/cargo/registry/src/sentry-tower-0.34.0/src/http.rs",
            "",
        ),
    ];
    match platform {
        Platform::Python => (PY_BASE, PY_REPEAT),
        Platform::Javascript => (JS_BASE, JS_REPEAT),
        Platform::Java => (JAVA_BASE, JAVA_REPEAT),
        Platform::Rust => (RUST_BASE, RUST_REPEAT),
    }
}

/// Library frames an error can be raised in, below the app's frames.
pub(super) fn inner_frames(platform: Platform) -> &'static [SystemFrame] {
    match platform {
        Platform::Python => &[
            (
                "django.db.models.query",
                "get",
                "django/db/models/query.py",
                "/usr/local/lib/python3.12/site-packages/django/db/models/query.py",
                "raise self.model.DoesNotExist(",
            ),
            (
                "django.db.backends.utils",
                "execute",
                "django/db/backends/utils.py",
                "/usr/local/lib/python3.12/site-packages/django/db/backends/utils.py",
                "return self.cursor.execute(sql, params)",
            ),
            (
                "requests.adapters",
                "send",
                "requests/adapters.py",
                "/usr/local/lib/python3.12/site-packages/requests/adapters.py",
                "raise ConnectionError(e, request=request)",
            ),
        ],
        Platform::Javascript => &[
            (
                "axios.lib.core:settle",
                "settle",
                "/app/node_modules/axios/lib/core/settle.js",
                "/app/node_modules/axios/lib/core/settle.js",
                "reject(new AxiosError(",
            ),
            (
                "node:internal/errors",
                "JSON.parse",
                "<anonymous>",
                "<anonymous>",
                "",
            ),
        ],
        Platform::Java => &[
            (
                "com.zaxxer.hikari.pool.ProxyPreparedStatement",
                "executeQuery",
                "ProxyPreparedStatement.java",
                "ProxyPreparedStatement.java",
                "",
            ),
            (
                "java.util.Objects",
                "requireNonNull",
                "Objects.java",
                "Objects.java",
                "",
            ),
        ],
        Platform::Rust => &[
            (
                "",
                "core::option::unwrap_failed",
                "/rustc/library/core/src/option.rs",
                "/rustc/library/core/src/option.rs",
                "",
            ),
            (
                "",
                "sqlx_core::executor::Executor::fetch_one",
                "/cargo/registry/src/sqlx-core-0.8.2/src/executor.rs",
                "/cargo/registry/src/sqlx-core-0.8.2/src/executor.rs",
                "",
            ),
        ],
    }
}

pub(super) fn exceptions(platform: Platform) -> &'static [ExceptionKind] {
    match platform {
        Platform::Python => &PYTHON_EXCEPTIONS,
        Platform::Javascript => &JS_EXCEPTIONS,
        Platform::Java => &JAVA_EXCEPTIONS,
        Platform::Rust => &RUST_EXCEPTIONS,
    }
}
