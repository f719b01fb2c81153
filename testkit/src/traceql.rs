//! TraceQL test vocabulary: the queries every TraceQL code path of Skein is tested on (the
//! parser, the reference evaluator, index pruning, executors over stored blocks, the search
//! API), so that all tests speak the same language and a new path meets the same forms as the
//! old ones.
//!
//! - [`CONFORMANCE`]: one query per form or combination of forms the language has, written
//!   against the vocabulary of [`crate::synth::TraceGenerator`] (services, routes, span names,
//!   attribute keys and values, kinds, statuses, exception events) and of the OTLP fixtures in
//!   `tests/fixtures/` (the `mythical-*` services, `tempo-vulture`), so that most of them
//!   select something and some select nothing on purpose;
//! - [`MAYBE_UNSUPPORTED`]: forms an implementation may refuse with an "unsupported" error
//!   (arithmetic, scoped intrinsic aliases, metrics, hints); a test accepts either that error or
//!   a result, never a parse error;
//! - [`INVALID`]: malformed queries with the 1-based column their error must point at;
//! - [`random_query`]: random queries over the same vocabulary for property tests, using only
//!   forms of [`CONFORMANCE`].
//!
//! The vocabulary is duplicated from `synth` on purpose: the tests below measure how many
//! queries select something on generated traces, so a change of the generator that leaves
//! these queries behind shows up as a failed test instead of as quietly weaker tests.

use crate::rng::Rng;

/// Valid TraceQL queries, one per form or combination of forms, in the vocabulary of the
/// synthetic traces and the OTLP fixtures. Every implementation must parse all of them and
/// agree on their results.
pub const CONFORMANCE: &[&str] = &[
    // The empty filter, alone and composed.
    "{}",
    "{ }",
    "{ } && { }",
    "{ } >> { }",
    "{} | count() > 0",
    // Span attributes: strings, ints, dotted names.
    r#"{ span.http.request.method = "GET" }"#,
    r#"{ span.http.route = "/api/products/{id}" }"#,
    r#"{ span.db.query.text = "SELECT id, name, price FROM products WHERE id = $1" }"#,
    "{ span.http.response.status_code = 200 }",
    "{ span.http.response.status_code >= 500 }",
    r#"{ span.db.system.name = "redis" }"#,
    r#"{ span.peer.service = "payment" }"#,
    // Resource attributes.
    r#"{ resource.service.name = "frontend" }"#,
    r#"{ resource.service.name != "frontend" }"#,
    r#"{ resource.telemetry.sdk.language = "go" }"#,
    r#"{ resource.service.version = "1.0.0" }"#,
    r#"{ resource.deployment.environment.name = "production" }"#,
    r#"{ resource.service.name = "mythical-server" }"#,
    r#"{ resource.ip = "1.2.3.4" }"#,
    // Event attributes.
    r#"{ event.exception.type = "java.lang.IllegalStateException" }"#,
    r#"{ event.exception.message =~ "order [0-9]+ is in an invalid state" }"#,
    "{ event.attempt = 2 }",
    r#"{ event."vulture-event-int-01" > 0 }"#,
    // Link attributes: no generated span has a link.
    r#"{ link.opentracing.ref_type = "follows_from" }"#,
    "{ link.sampled != nil }",
    // Instrumentation scope attributes: none are generated.
    r#"{ instrumentation.otel.scope.kind = "http" }"#,
    "{ instrumentation.library.version != nil }",
    // Unscoped attributes: span or resource.
    r#"{ .http.request.method = "POST" }"#,
    r#"{ .service.name = "checkout" }"#,
    r#"{ .db.operation.name = "SELECT" && .service.name = "cart" }"#,
    r#"{ .http.method = "GET" }"#,
    r#"{ .beast = "manticore" }"#,
    // Quoted attribute names.
    r#"{ span."http.route" = "/api/cart" }"#,
    r#"{ resource."service.name" = "cart" }"#,
    r#"{ ."db.operation.name" = "SELECT" }"#,
    r#"{ span."no such attribute" = "x" }"#,
    // Intrinsics: name.
    r#"{ name = "GET /api/cart" }"#,
    r#"{ name = "SELECT shop" }"#,
    r#"{ name != "SELECT shop" }"#,
    r#"{ name = "tcp.connect" }"#,
    // status and statusMessage.
    "{ status = error }",
    "{ status = ok }",
    "{ status = unset }",
    "{ status != unset }",
    "{ status != error }",
    r#"{ statusMessage = "internal error" }"#,
    r#"{ statusMessage != "" }"#,
    r#"{ statusMessage = "boom" }"#,
    // kind, all six values.
    "{ kind = server }",
    "{ kind = client }",
    "{ kind = internal }",
    "{ kind = producer }",
    "{ kind = consumer }",
    "{ kind = unspecified }",
    "{ kind != server }",
    // duration and traceDuration.
    "{ duration > 10ms }",
    "{ duration < 250ms }",
    "{ duration >= 1.5s }",
    "{ duration <= 10us }",
    "{ duration > 500000ns }",
    "{ duration < 1h }",
    "{ duration != 0s }",
    "{ duration = 1m }",
    "{ traceDuration > 10ms }",
    "{ traceDuration < 1s }",
    "{ traceDuration >= 2.5s }",
    // rootName, rootServiceName.
    r#"{ rootName = "GET /api/cart" }"#,
    r#"{ rootName =~ "POST .*" }"#,
    r#"{ rootServiceName = "frontend" }"#,
    r#"{ rootServiceName != "frontend" }"#,
    r#"{ rootServiceName = "mythical-requester" }"#,
    // IDs.
    r#"{ span:id != "0000000000000000" }"#,
    r#"{ span:id = "0102030405060708" }"#,
    r#"{ trace:id = "4290b5877a9930de79bb428365398ecc" }"#,
    r#"{ trace:id != "00000000000000000000000000000000" }"#,
    r#"{ span:parentID = "ffffffffffffffff" }"#,
    r#"{ span:parentID != "ffffffffffffffff" && kind = server }"#,
    // Nested-set parent: -1 on roots.
    "{ nestedSetParent = -1 }",
    "{ nestedSetParent < 0 }",
    "{ nestedSetParent > 0 && kind = client }",
    // Event and instrumentation intrinsics.
    r#"{ event:name = "exception" }"#,
    r#"{ event:name = "retry" }"#,
    r#"{ event:name != "exception" }"#,
    r#"{ instrumentation:name = "io.opentelemetry.go.http" }"#,
    r#"{ instrumentation:name =~ "io\\.opentelemetry\\..*" }"#,
    r#"{ instrumentation:name = "@opentelemetry/instrumentation-pg" }"#,
    // Ordering operators on strings, ints, floats, bools.
    r#"{ resource.service.name > "m" }"#,
    r#"{ name <= "GET" }"#,
    r#"{ span.http.route >= "/api/orders" }"#,
    r#"{ span.db.collection.name <= "carts" }"#,
    "{ span.thread.id > 32 }",
    "{ span.thread.id <= 4 }",
    "{ span.server.port != 8080 }",
    "{ span.db.response.returned_rows < 1 }",
    "{ span.http.request.resend_count = 0 }",
    "{ span.thread.id > -1 }",
    "{ span.http.response.status_code > 499.5 }",
    "{ span.thread.id < 2.5 }",
    "{ span.sampling.ratio = 0.25 }",
    "{ span.app.cpu.load >= 1.5 }",
    "{ span.cache.hit = true }",
    "{ span.error = false }",
    "{ .retry != true }",
    r#"{ span.http.response.status_code = "200" }"#,
    // nil checks.
    "{ span.error.type != nil }",
    "{ span.error.type = nil }",
    "{ resource.service.name != nil }",
    "{ event.exception.message != nil }",
    "{ span.db.system.name = nil && kind = client }",
    "{ .nope != nil }",
    // Regular expressions: RE2 syntax, fully anchored.
    r#"{ span.http.request.method =~ "GET|POST" }"#,
    r#"{ span.http.route =~ "/api/.*" }"#,
    r#"{ span.http.route =~ "/api" }"#,
    r#"{ span.url.path =~ "/api/products/[0-9]+" }"#,
    r#"{ span.db.query.text !~ "SELECT.*" }"#,
    r#"{ name =~ ".*cache" }"#,
    r#"{ name !~ "(GET|POST) .*" }"#,
    r#"{ resource.service.name =~ "(?i)FRONTEND" }"#,
    r#"{ span.user_agent.original =~ "Mozilla/5\\.0 .*" }"#,
    r#"{ event.exception.stacktrace =~ ".*Orders\\.java.*" }"#,
    r#"{ event.exception.stacktrace =~ "(?s).*Orders\\.java.*" }"#,
    // &&, ||, parentheses and ! inside a spanset.
    r#"{ span.http.request.method = "GET" && kind = server }"#,
    r#"{ resource.service.name = "cart" || resource.service.name = "checkout" }"#,
    "{ (span.http.response.status_code = 404 || status = error) && kind = server }",
    "{ !(kind = server) }",
    r#"{ !(span.db.system.name = "redis" || span.db.system.name = "postgresql") && kind = client }"#,
    r#"{ kind = client && !(span.http.request.method = "GET") }"#,
    r#"{ (name = "GET cache" && duration > 1ms) || (name = "SET cache" && duration > 1ms) }"#,
    r#"{ resource.service.name = "frontend" && span.http.route = "/api/checkout" && status = error }"#,
    // `&&` and `||` share one precedence level in Tempo's grammar, left-associative: this is
    // `(GET || POST) && route`, not `GET || (POST && route)`.
    r#"{ span.http.request.method = "GET" || span.http.request.method = "POST" && span.http.route = "/api/cart" }"#,
    // Spanset && and ||.
    r#"{ resource.service.name = "frontend" } && { resource.service.name = "payment" }"#,
    "{ status = error } || { duration > 500ms }",
    r#"{ span.db.system.name = "redis" } && { span.db.system.name = "postgresql" }"#,
    "{ kind = server } && { kind = producer }",
    r#"({ name = "SELECT shop" } || { name = "UPDATE shop" }) && { rootServiceName = "frontend" }"#,
    // Structural operators.
    r#"{ resource.service.name = "frontend" } >> { span.db.system.name = "redis" }"#,
    "{ kind = server } > { kind = client }",
    r#"{ name = "SELECT shop" } ~ { name = "GET cache" }"#,
    r#"{ span.db.system.name = "postgresql" } << { kind = server }"#,
    "{ kind = client } < { kind = server }",
    r#"{ resource.service.name = "checkout" } !>> { span.db.system.name != nil }"#,
    "{ kind = server } !> { kind = client }",
    "{ kind = client } !> { kind = server }",
    "{ kind = client } !~ { kind = client }",
    "{ kind = client } !<< { status = error }",
    r#"{ kind = server } !< { rootServiceName = "frontend" }"#,
    "{ nestedSetParent = -1 } &>> { status = error }",
    "{ kind = client } &> { kind = server }",
    r#"{ span.db.system.name = "redis" } &~ { span.db.system.name = "postgresql" }"#,
    "{ nestedSetParent = -1 } > { kind = client } > { kind = server }",
    r#"{ resource.service.name = "frontend" } >> { resource.service.name = "checkout" } >> { resource.service.name = "payment" }"#,
    r#"{ resource.service.name = "mythical-requester" } >> { resource.service.name = "mythical-recorder" }"#,
    "{ kind = producer } > { kind = consumer }",
    // Pipelines: aggregates.
    "{ } | count() > 10",
    "{ kind = server } | count() >= 3",
    r#"{ span.db.system.name = "redis" } | count() = 1"#,
    "{ status = error } | count() > 0",
    "{ } | count() < 5",
    "{ } | count() != 7",
    "{ } | count() > 1000",
    "{ } | avg(duration) > 10ms",
    "{ kind = client } | avg(duration) < 1ms",
    "{ } | min(duration) < 1ms",
    "{ } | max(duration) > 100ms",
    "{ } | sum(duration) > 250ms",
    "{ span.db.system.name != nil } | sum(span.db.response.returned_rows) > 100",
    "{ } | avg(span.http.response.body.size) > 10000",
    "{ } | max(span.thread.id) >= 60",
    "{ kind = server } | min(span.http.response.status_code) = 200",
    // Pipelines: select, by, coalesce, filter stages.
    r#"{ kind = server } | select(span.http.request.method, resource.service.name)"#,
    "{ status = error } | select(statusMessage, event.exception.message)",
    "{ } | select(span.http.route)",
    "{ } | by(resource.service.name)",
    "{ kind = server } | by(span.http.route) | count() > 1",
    "{ } | by(resource.service.name) | count() > 1",
    "{ } | by(kind) | avg(duration) > 5ms",
    "{ } | by(resource.service.name) | coalesce()",
    "{ } | coalesce()",
    "{ kind = server } | { span.http.response.status_code = 200 }",
    r#"{ } | { resource.service.name = "cart" } | count() > 1"#,
    "{ } | count() > 2 | avg(duration) > 1ms",
    "{ } | select(span.http.route) | count() > 5",
    "{ } | count() > 3 | by(resource.service.name)",
    r#"{ kind = server && duration > 1ms } | by(resource.service.name) | count() > 1"#,
    // Grouped spanset expressions before a pipeline.
    "({ kind = server } && { kind = client }) | count() > 2",
    r#"({ resource.service.name = "frontend" } || { resource.service.name = "ad" }) | count() > 2"#,
    "({ kind = server } >> { status = error }) | count() > 1",
    r#"{ nestedSetParent = -1 } > { span.db.system.name != nil } | count() > 0"#,
];

/// Valid TraceQL whose support is optional: arithmetic, aliases of intrinsics in the
/// `scope:name` form that the language added later, union ancestor and parent operators,
/// static conditions, metrics functions, the `parent.` scope and hints. An implementation
/// either answers them like Tempo or refuses them with an "unsupported" error; a parse error
/// is wrong either way.
pub const MAYBE_UNSUPPORTED: &[&str] = &[
    // Arithmetic in field expressions.
    "{ duration > 2 * 100ms }",
    "{ duration > 100ms / 2 }",
    "{ span.http.response.body.size - span.http.request.body.size > 1000 }",
    "{ span.thread.id % 2 = 0 }",
    "{ span.thread.id + 1 > 60 }",
    "{ span.thread.id ^ 2 > 100 }",
    "{ -span.thread.id < -60 }",
    // Scoped aliases of intrinsics and the intrinsics fixtures rarely carry.
    r#"{ span:name = "GET /api/cart" }"#,
    "{ span:duration > 10ms }",
    "{ span:kind = server }",
    "{ span:status = error }",
    r#"{ span:statusMessage = "internal error" }"#,
    r#"{ trace:rootName = "GET /api/cart" }"#,
    r#"{ trace:rootService = "frontend" }"#,
    "{ trace:duration > 10ms }",
    "{ event:timeSinceStart > 1ms }",
    r#"{ link:traceID = "4290b5877a9930de79bb428365398ecc" }"#,
    r#"{ link:spanID != "0000000000000000" }"#,
    r#"{ instrumentation:version = "2.9.0" }"#,
    "{ nestedSetLeft > 0 }",
    "{ nestedSetRight > 0 }",
    "{ span:childCount > 1 }",
    r#"{ span:id =~ "[0-9a-f]{16}" }"#,
    // Union ancestor and parent.
    "{ kind = client } &<< { kind = server }",
    "{ kind = client } &< { kind = server }",
    // Static conditions and bare booleans.
    "{ true }",
    "{ false }",
    "{ !true }",
    "{ 1 = 1 }",
    "{ span.cache.hit }",
    // Other forms: a unit in Unicode, raw strings, metrics, the `parent.` scope, pipelines
    // inside spanset operators, hints.
    "{ duration > 10µs }",
    "{ name = `GET /api/cart` }",
    "{ status = error } | rate()",
    r#"{ parent.http.route = "/api/cart" }"#,
    "({ kind = server } | count() > 2) && ({ kind = client } | count() > 2)",
    "{ } with (most_recent=true)",
];

/// Malformed queries and the 1-based column (in characters) where the error must point: the
/// first token that cannot continue a valid query, the end of input as one past the last
/// character, or the start of a literal that is itself wrong (a string never closed, a regular
/// expression that does not compile, a duration with an unknown unit).
pub const INVALID: &[(&str, usize)] = &[
    ("", 1),
    ("{", 2),
    ("}", 1),
    ("{ .a = }", 8),
    (r#"{ .a = "x }"#, 8),
    ("{ foo = 1 }", 3),
    (r#"{ .a = "x" "#, 12),
    (r#"{ .a =~ "(" }"#, 9),
    (r#"{ .a =~ "[a-" }"#, 9),
    ("{ duration > 1parsec }", 14),
    ("{ } foo", 5),
    ("{ } | count() >", 16),
    ("{ status = maybe }", 12),
    ("{ kind = sever }", 10),
    (r#"{ .a = "x" && }"#, 15),
    (r#"{ .a = "x" } &&"#, 16),
    (r#"{ .a = "x" } >>"#, 16),
    ("{ .a = 1 } | count( > 1", 21),
    ("{ .a = 1 } | avg() > 1", 18),
    ("{ .a = 1 } | by()", 17),
    ("{ } | by(resource.service.name, span.http.route)", 31),
    ("{ (.a = 1 }", 11),
    ("{ .a = 1) }", 9),
    ("{ .a = 'x' }", 8),
    (r#"{ .a = "x" }}"#, 13),
    ("{ nestedSetParent = }", 21),
    (r#"{ .a = "x" } | count() > 1 |"#, 29),
    ("{ span:foo = 1 }", 3),
    ("{ ! }", 5),
    (r#"{ .a = "x" } && && { }"#, 17),
    ("{ kind = server || }", 20),
    (r#"{ .a = "x" } | select()"#, 23),
];

// The vocabulary of `synth::TraceGenerator`.

const SERVICES: &[&str] = &[
    "frontend",
    "checkout",
    "cart",
    "payment",
    "shipping",
    "currency",
    "email",
    "recommendation",
    "product-catalog",
    "ad",
];

const LANGUAGES: &[&str] = &[
    "nodejs", "go", "dotnet", "java", "rust", "cpp", "ruby", "python",
];

const ROUTES: &[&str] = &[
    "/api/products/{id}",
    "/api/cart",
    "/api/cart/items",
    "/api/checkout",
    "/api/recommendations",
    "/api/currency",
    "/api/orders/{id}/ship",
    "/api/ads",
];

/// Span names: HTTP servers (`method route`), HTTP clients (`method`), database calls.
const NAMES: &[&str] = &[
    "GET /api/products/{id}",
    "GET /api/cart",
    "POST /api/cart/items",
    "POST /api/checkout",
    "GET /api/recommendations",
    "GET /api/currency",
    "POST /api/orders/{id}/ship",
    "GET /api/ads",
    "GET",
    "POST",
    "SELECT shop",
    "UPDATE shop",
    "INSERT shop",
    "GET cache",
    "SET cache",
];

const STRING_ATTRS: &[(&str, &[&str])] = &[
    ("http.request.method", &["GET", "POST"]),
    ("http.route", ROUTES),
    ("url.scheme", &["http"]),
    (
        "server.address",
        &[
            "checkout",
            "cart",
            "payment",
            "postgresql.shop.svc",
            "redis.shop.svc",
        ],
    ),
    ("peer.service", &["checkout", "cart", "shipping", "ad"]),
    ("rpc.system", &["http"]),
    ("rpc.method", &["/api/cart", "/api/checkout"]),
    ("db.system.name", &["postgresql", "redis"]),
    (
        "db.operation.name",
        &["SELECT", "UPDATE", "INSERT", "GET", "SET"],
    ),
    (
        "db.collection.name",
        &["products", "carts", "orders", "sessions"],
    ),
    ("db.namespace", &["shop"]),
    ("db.user", &["shop"]),
    (
        "code.function",
        &["handle_go", "handle_java", "handle_nodejs"],
    ),
    ("thread.name", &["worker-0", "worker-7", "worker-15"]),
    ("network.protocol.version", &["1.1"]),
    ("error.type", &["500"]),
    ("pool.name", &["primary"]),
];

/// Values that no generated span has, for filters that select nothing.
const ABSENT_STRINGS: &[&str] = &["DELETE", "/api/none", "mysql", "idle", ""];

const INT_ATTRS: &[(&str, &[i64])] = &[
    ("http.response.status_code", &[200, 201, 204, 304, 404, 500]),
    ("server.port", &[8080, 5432, 6379]),
    ("network.peer.port", &[8080, 5432, 6379]),
    ("thread.id", &[1, 16, 32, 48, 64]),
    ("db.response.returned_rows", &[0, 10, 25, 49]),
    ("http.request.body.size", &[0, 1024, 2048, 4095]),
    ("http.response.body.size", &[0, 4096, 16384, 65535]),
    ("http.request.resend_count", &[0]),
    ("db.client.connection.pool.size", &[20]),
];

const RESOURCE_ATTRS: &[(&str, &[&str])] = &[
    ("service.namespace", &["shop"]),
    ("service.version", &["1.0.0", "1.1.2", "1.3.1"]),
    ("deployment.environment.name", &["production"]),
    ("k8s.namespace.name", &["shop"]),
    ("k8s.node.name", &["node-0", "node-3", "node-5"]),
    ("telemetry.sdk.name", &["opentelemetry"]),
    ("telemetry.sdk.language", LANGUAGES),
    ("telemetry.sdk.version", &["1.28.0"]),
];

/// Attributes some spans have and others lack, for nil checks.
const NIL_KEYS: &[&str] = &[
    "span.error.type",
    "span.db.system.name",
    "span.http.route",
    "span.url.full",
    "span.peer.service",
    "span.enduser.id",
    "span.client.address",
    "span.db.query.text",
    "event.exception.message",
    "resource.service.name",
    "resource.k8s.node.name",
    "span.cache.hit",
    "link.opentracing.ref_type",
];

const REGEXES: &[(&str, &[&str])] = &[
    (
        "name",
        &[
            "GET .*",
            "(GET|POST) /api/.*",
            ".* cache",
            "(SELECT|UPDATE|INSERT) shop",
            "POST",
            ".*/ship",
            "DELETE .*",
        ],
    ),
    (
        "span.http.route",
        &[
            "/api/.*",
            "/api/cart.*",
            "/api/(cart|checkout)",
            "/api",
            "/api/products/.*",
        ],
    ),
    (
        "resource.service.name",
        &[
            "(cart|checkout)",
            "p.*",
            ".*-catalog",
            "front.*",
            "mythical-.*",
        ],
    ),
    ("span.http.request.method", &["GET|POST", "P.*", "G.T"]),
    (
        "span.db.query.text",
        &["SELECT .*", ".*user_id.*", "(GET|SET) .*"],
    ),
    (
        "span.url.path",
        &[
            "/api/products/[0-9]+",
            "/api/orders/[0-9]+/ship",
            "/api/cart",
        ],
    ),
    ("span.enduser.id", &["user-[0-9]+", "user-1[0-9]*"]),
    ("rootName", &["GET .*", "POST /api/c.*"]),
];

const DURATIONS: &[&str] = &[
    "10us", "250us", "1ms", "2ms", "5ms", "10ms", "20ms", "50ms", "100ms", "250ms", "1s", "1.5s",
];

const CMP: &[&str] = &["=", "!=", ">", ">=", "<", "<="];
const ORDER: &[&str] = &[">", ">=", "<", "<="];

/// Spanset operators, the common ones listed more than once so that they come up more often.
const SPANSET_OPS: &[&str] = &[
    "&&", "&&", "||", "||", ">>", ">>", ">", ">", "~", "<<", "<", "!>>", "!>", "!~", "!<<", "!<",
    "&>>", "&>", "&~",
];

const GROUP_FIELDS: &[&str] = &[
    "resource.service.name",
    "span.http.route",
    "span.http.request.method",
    "kind",
    "name",
    "status",
];

const SELECT_FIELDS: &[&str] = &[
    "span.http.request.method",
    "resource.service.name",
    "span.http.route",
    "span.db.system.name",
    "duration",
    "name",
    "statusMessage",
];

/// A random valid query over the vocabulary of `synth::TraceGenerator`, using only forms of
/// [`CONFORMANCE`]: a spanset filter of leaves (name, service, attributes, status, kind,
/// durations, root and event intrinsics, regular expressions, nil checks) nested with `&&`,
/// `||` and `!` up to depth 3; sometimes several such spansets joined by `&&`, `||` or a
/// structural operator; sometimes a pipeline of aggregates, `by`, `coalesce`, `select` and
/// filters. Values are mostly ones the generator produces, so that a good share of queries
/// select something. The same `rng` state gives the same query.
pub fn random_query(rng: &mut Rng) -> String {
    let (mut q, top) = spanset_expression(rng, 0);
    if rng.chance(0.35) {
        if top.is_some() && rng.chance(0.5) {
            q = format!("({q})");
        }
        for _ in 0..1 + rng.below(2) {
            q.push_str(" | ");
            q.push_str(&stage(rng));
        }
    }
    q
}

/// A spanset expression of up to three spansets, and the operator at its top if any.
fn spanset_expression(rng: &mut Rng, depth: u32) -> (String, Option<&'static str>) {
    if depth >= 2 || rng.chance(0.55) {
        return (spanset(rng), None);
    }
    let op = *rng.pick(SPANSET_OPS);
    let (left, top) = spanset_expression(rng, depth + 1);
    // A chain of the same child or descendant operator reads as a path, `{a} > {b} > {c}`,
    // grouped to the left; any other operand with an operator of its own is parenthesized.
    let path = top == Some(op) && (op == ">" || op == ">>");
    let left = if top.is_some() && !(path && rng.chance(0.5)) {
        format!("({left})")
    } else {
        left
    };
    (format!("{left} {op} {}", spanset(rng)), Some(op))
}

fn spanset(rng: &mut Rng) -> String {
    if rng.chance(0.05) {
        "{ }".to_owned()
    } else {
        format!("{{ {} }}", filter(rng, 0))
    }
}

/// A field expression of `&&`, `||` and `!` over leaves, nested up to depth 3.
fn filter(rng: &mut Rng, depth: u32) -> String {
    // Ever fewer operators deeper down, so that most filters stay selective but satisfiable.
    if depth >= 3 || rng.chance([0.45, 0.65, 0.8][depth as usize]) {
        return leaf(rng);
    }
    match rng.below(10) {
        0 => format!("!({})", filter(rng, depth + 1)),
        n => {
            let op = if n <= 5 { "&&" } else { "||" };
            let a = operand(rng, depth);
            let b = operand(rng, depth);
            format!("{a} {op} {b}")
        }
    }
}

fn operand(rng: &mut Rng, depth: u32) -> String {
    let f = filter(rng, depth + 1);
    // Leaves never contain `&&` or `||`: their strings come from the vocabulary above.
    if f.contains("&&") || f.contains("||") {
        format!("({f})")
    } else {
        f
    }
}

fn quoted(s: impl std::fmt::Display) -> String {
    format!("\"{s}\"")
}

/// A string from `values`, now and then one that no generated span has.
fn string_value(rng: &mut Rng, values: &[&str]) -> String {
    if rng.chance(0.1) {
        quoted(rng.pick(ABSENT_STRINGS))
    } else {
        quoted(rng.pick(values))
    }
}

/// `=` most of the time, `!=` otherwise.
fn eq_op(rng: &mut Rng) -> &'static str {
    if rng.chance(0.75) { "=" } else { "!=" }
}

fn leaf(rng: &mut Rng) -> String {
    match rng.below(20) {
        0 | 1 => {
            let v = string_value(rng, NAMES);
            format!("name {} {v}", eq_op(rng))
        }
        2 | 3 => {
            let v = string_value(rng, SERVICES);
            format!("resource.service.name {} {v}", eq_op(rng))
        }
        4 | 5 => {
            let (key, values) = *rng.pick(STRING_ATTRS);
            let v = string_value(rng, values);
            format!("span.{key} {} {v}", eq_op(rng))
        }
        6 | 7 => {
            let (key, values) = *rng.pick(INT_ATTRS);
            let v = if rng.chance(0.1) {
                -1 - rng.below(10) as i64
            } else {
                *rng.pick(values)
            };
            format!("span.{key} {} {v}", rng.pick(CMP))
        }
        8 => {
            let s = *rng.pick(&["error", "error", "unset", "unset", "ok"]);
            format!("status {} {s}", eq_op(rng))
        }
        9 => {
            let k = *rng.pick(&[
                "server",
                "server",
                "client",
                "client",
                "internal",
                "producer",
                "consumer",
                "unspecified",
            ]);
            format!("kind {} {k}", eq_op(rng))
        }
        10 | 11 => format!("duration {} {}", rng.pick(ORDER), rng.pick(DURATIONS)),
        12 => {
            let op = if rng.chance(0.5) { "=" } else { "!=" };
            format!("{} {op} nil", rng.pick(NIL_KEYS))
        }
        13 => {
            let (field, patterns) = *rng.pick(REGEXES);
            let op = if rng.chance(0.8) { "=~" } else { "!~" };
            format!("{field} {op} {}", quoted(rng.pick(patterns)))
        }
        14 => match rng.below(4) {
            0 => format!("event:name {} \"exception\"", eq_op(rng)),
            1 => "event.exception.type = \"java.lang.IllegalStateException\"".to_owned(),
            2 => "statusMessage = \"internal error\"".to_owned(),
            _ => "event.exception.message != nil".to_owned(),
        },
        15 => match rng.below(3) {
            0 => format!(
                "rootServiceName {} {}",
                eq_op(rng),
                quoted(rng.pick(SERVICES))
            ),
            1 => {
                let v = string_value(rng, &NAMES[..8]);
                format!("rootName {} {v}", eq_op(rng))
            }
            _ => format!("traceDuration {} {}", rng.pick(ORDER), rng.pick(DURATIONS)),
        },
        16 => {
            let op = *rng.pick(&["=", "!=", "<", ">"]);
            let v = *rng.pick(&["-1", "0"]);
            format!("nestedSetParent {op} {v}")
        }
        17 => {
            let lang = *rng.pick(LANGUAGES);
            format!(
                "instrumentation:name {} \"io.opentelemetry.{lang}.http\"",
                eq_op(rng)
            )
        }
        18 => {
            let (key, values) = *rng.pick(RESOURCE_ATTRS);
            let v = string_value(rng, values);
            format!("resource.{key} {} {v}", eq_op(rng))
        }
        _ => {
            // Unscoped and quoted names.
            let (key, values) = *rng.pick(STRING_ATTRS);
            let v = string_value(rng, values);
            if rng.chance(0.5) {
                format!(".{key} {} {v}", eq_op(rng))
            } else {
                format!("span.\"{key}\" {} {v}", eq_op(rng))
            }
        }
    }
}

/// One pipeline stage.
fn stage(rng: &mut Rng) -> String {
    match rng.below(9) {
        0 | 1 => {
            let n = if rng.chance(0.1) { 50 } else { rng.below(6) };
            format!("count() {} {n}", rng.pick(CMP))
        }
        2 => format!("avg(duration) {} {}", rng.pick(ORDER), rng.pick(DURATIONS)),
        3 => {
            let f = *rng.pick(&["min", "max", "sum", "avg"]);
            if rng.chance(0.5) {
                format!("{f}(duration) {} {}", rng.pick(ORDER), rng.pick(DURATIONS))
            } else {
                let (key, values) = *rng.pick(INT_ATTRS);
                let v = *rng.pick(values);
                format!("{f}(span.{key}) {} {v}", rng.pick(ORDER))
            }
        }
        4 => format!("by({})", rng.pick(GROUP_FIELDS)),
        5 => "coalesce()".to_owned(),
        6 => {
            let a = *rng.pick(SELECT_FIELDS);
            if rng.chance(0.5) {
                format!("select({a})")
            } else {
                format!("select({a}, {})", rng.pick(SELECT_FIELDS))
            }
        }
        _ => format!("{{ {} }}", filter(rng, 1)),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};

    use skein_format::SpanRecord;

    use super::*;
    use crate::synth::TraceGenerator;

    /// A few hundred generated traces of 5 to 40 spans, each trace's spans together.
    fn dataset() -> Vec<Vec<SpanRecord>> {
        let mut generator = TraceGenerator::new(11, 1_700_000_000_000_000_000, 1_000_000);
        let mut sizes = Rng::new(12);
        (0..300)
            .map(|_| generator.trace(5 + sizes.below(36) as usize))
            .collect()
    }

    /// How many traces of `data` the query selects something in.
    fn traces_matched(query: &str, data: &[Vec<SpanRecord>]) -> usize {
        let q =
            skein_traceql::parse(query).unwrap_or_else(|e| panic!("{query}: does not parse: {e}"));
        data.iter().filter(|t| !q.evaluate(t).is_empty()).count()
    }

    #[test]
    fn queries_are_distinct() {
        let mut seen = HashSet::new();
        for q in CONFORMANCE.iter().chain(MAYBE_UNSUPPORTED) {
            assert!(seen.insert(*q), "{q:?} is listed twice");
        }
        let mut seen = HashSet::new();
        for (q, _) in INVALID {
            assert!(seen.insert(*q), "{q:?} is listed twice");
        }
        assert!(CONFORMANCE.len() >= 130, "{} queries", CONFORMANCE.len());
    }

    #[test]
    fn conformance_queries_parse() {
        let failed: Vec<String> = CONFORMANCE
            .iter()
            .filter_map(|q| skein_traceql::parse(q).err().map(|e| format!("{q}: {e}")))
            .collect();
        assert!(failed.is_empty(), "do not parse:\n{}", failed.join("\n"));
    }

    #[test]
    fn maybe_unsupported_queries_parse_or_are_refused_as_unsupported() {
        let failed: Vec<String> = MAYBE_UNSUPPORTED
            .iter()
            .filter_map(|q| match skein_traceql::parse(q) {
                Ok(_) | Err(skein_traceql::Error::Unsupported { .. }) => None,
                Err(e) => Some(format!("{q}: {e}")),
            })
            .collect();
        assert!(
            failed.is_empty(),
            "neither parse nor are unsupported:\n{}",
            failed.join("\n")
        );
    }

    #[test]
    fn invalid_queries_fail_at_their_column() {
        let mut failed = Vec::new();
        for &(q, column) in INVALID {
            match skein_traceql::parse(q) {
                Ok(_) => failed.push(format!("{q:?}: parses")),
                Err(e @ skein_traceql::Error::Parse { .. }) => {
                    if e.column() != column {
                        failed.push(format!("{q:?}: column {} not {column}: {e}", e.column()));
                    }
                }
                Err(e) => failed.push(format!("{q:?}: not a parse error: {e}")),
            }
        }
        assert!(failed.is_empty(), "{}", failed.join("\n"));
    }

    #[test]
    fn random_queries_are_deterministic_and_parse() {
        let mut forms = HashSet::new();
        for seed in 0..2000 {
            let q = random_query(&mut Rng::new(seed));
            assert_eq!(q, random_query(&mut Rng::new(seed)), "seed {seed}");
            if let Err(e) = skein_traceql::parse(&q) {
                panic!("seed {seed}: {q}: {e}");
            }
            forms.insert(q);
        }
        assert!(forms.len() > 1800, "only {} distinct queries", forms.len());
    }

    #[test]
    fn conformance_queries_mostly_match_generated_traces() {
        let data = dataset();
        let mut counts = BTreeMap::new();
        let mut none = Vec::new();
        for q in CONFORMANCE {
            let n = traces_matched(q, &data);
            counts.insert(*q, n);
            if n == 0 {
                none.push(*q);
            }
        }
        let some = CONFORMANCE.len() - none.len();
        eprintln!(
            "{some} of {} queries match some of {} traces; these match none:\n  {}",
            CONFORMANCE.len(),
            data.len(),
            none.join("\n  ")
        );
        // Thresholds below the measured share, so that a generator or evaluator change that
        // leaves the vocabulary behind fails here.
        assert!(
            some * 100 >= CONFORMANCE.len() * 65,
            "only {some} of {} queries match something",
            CONFORMANCE.len()
        );
        assert!(
            none.len() * 100 >= CONFORMANCE.len() * 15,
            "only {} of {} queries match nothing",
            none.len(),
            CONFORMANCE.len()
        );
        // Queries that must select something in any few hundred generated traces.
        for q in ["{}", "{ status = error }", "{ nestedSetParent = -1 }"] {
            assert!(counts[q] > 0, "{q} matches nothing");
        }
        assert_eq!(counts["{}"], data.len(), "{{}} matches every trace");
    }

    #[test]
    fn random_queries_match_at_a_reasonable_rate() {
        // Half the dataset keeps the test fast; the rates hardly move.
        let data = &dataset()[..150];
        let queries: u64 = 200;
        let (mut some, mut all) = (0, 0);
        for seed in 0..queries {
            let q = random_query(&mut Rng::new(seed));
            let n = traces_matched(&q, data);
            some += u64::from(n > 0);
            all += u64::from(n == data.len());
        }
        eprintln!("of {queries} random queries, {some} match some trace, {all} every trace");
        // Measured: about 60% match some trace, 20% every trace. Selective but satisfiable
        // queries are what a property test comparing two executors needs.
        assert!(
            (queries * 40..=queries * 90).contains(&(some * 100)),
            "{some} of {queries} match something"
        );
        assert!(
            all * 100 <= queries * 40,
            "{all} of {queries} match everything"
        );
    }
}
