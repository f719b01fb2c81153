//! Deterministic synthetic traces that look like a real microservice application: for tests,
//! benchmarks and the load generator.
//!
//! Each trace starts at an HTTP server span of the `frontend` service and fans out through
//! client and server spans of other services, database and queue spans, about 20 attributes
//! per span (resource attributes not counted), a mix of low-cardinality values (methods,
//! routes, status codes) and high-cardinality ones (client addresses, user and order IDs,
//! body sizes) in the proportions seen in production traces, and about 2% failed requests
//! with exception events.

use std::sync::Arc;

use skein_format::model::{ResourceInfo, ScopeInfo, SpanRecord};
use skein_format::otlp::common::v1::{AnyValue, InstrumentationScope, KeyValue, any_value::Value};
use skein_format::otlp::resource::v1::Resource;
use skein_format::otlp::trace::v1::{Span, Status, span, span::SpanKind, status::StatusCode};

pub use crate::rng::Rng;

/// Roughly log-normal duration around `median_us` microseconds, in nanoseconds.
fn duration(rng: &mut Rng, median_us: u64) -> u64 {
    let spread = 1 + rng.below(4) + if rng.chance(0.05) { rng.below(20) } else { 0 };
    let base = median_us * 1000;
    base / 2 + rng.below(base * spread)
}

fn kv(key: &str, value: Value) -> KeyValue {
    KeyValue {
        key: key.to_owned(),
        value: Some(AnyValue { value: Some(value) }),
        ..Default::default()
    }
}

fn s(key: &str, v: impl Into<String>) -> KeyValue {
    kv(key, Value::StringValue(v.into()))
}

fn i(key: &str, v: i64) -> KeyValue {
    kv(key, Value::IntValue(v))
}

const SERVICES: &[(&str, &str)] = &[
    ("frontend", "nodejs"),
    ("checkout", "go"),
    ("cart", "dotnet"),
    ("payment", "java"),
    ("shipping", "rust"),
    ("currency", "cpp"),
    ("email", "ruby"),
    ("recommendation", "python"),
    ("product-catalog", "go"),
    ("ad", "java"),
];

const ROUTES: &[(&str, &str)] = &[
    ("GET", "/api/products/{id}"),
    ("GET", "/api/cart"),
    ("POST", "/api/cart/items"),
    ("POST", "/api/checkout"),
    ("GET", "/api/recommendations"),
    ("GET", "/api/currency"),
    ("POST", "/api/orders/{id}/ship"),
    ("GET", "/api/ads"),
];

const QUERIES: &[(&str, &str, &str)] = &[
    (
        "postgresql",
        "SELECT",
        "SELECT id, name, price FROM products WHERE id = $1",
    ),
    (
        "postgresql",
        "UPDATE",
        "UPDATE carts SET updated_at = now() WHERE user_id = $1",
    ),
    (
        "postgresql",
        "INSERT",
        "INSERT INTO orders (id, user_id, total) VALUES ($1, $2, $3)",
    ),
    ("redis", "GET", "GET cart:{user}"),
    ("redis", "SET", "SET session:{id} EX 3600"),
];

const AGENTS: &[&str] = &[
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "okhttp/4.12.0",
    "python-requests/2.32.3",
];

/// Generates traces.
#[derive(Debug)]
pub struct TraceGenerator {
    rng: Rng,
    resources: Vec<Arc<ResourceInfo>>,
    scopes: Vec<Arc<ScopeInfo>>,
    /// Start of the next trace, ns since the epoch.
    pub next_start_unix_nano: u64,
    /// Gap between trace starts, ns.
    pub interval_nanos: u64,
    request_id: String,
    client_ip: String,
    lean: bool,
}

/// The span attributes the lean workload keeps: what OpenTelemetry's HTTP and database
/// instrumentations record by default.
const LEAN_KEYS: &[&str] = &[
    "http.request.method",
    "http.route",
    "url.path",
    "url.scheme",
    "url.full",
    "http.response.status_code",
    "server.address",
    "server.port",
    "network.peer.address",
    "client.address",
    "error.type",
    "db.system.name",
    "db.namespace",
    "db.operation.name",
    "db.query.text",
    "db.collection.name",
];

impl TraceGenerator {
    /// A generator; traces start at `start_unix_nano` and every `interval_nanos` after.
    pub fn new(seed: u64, start_unix_nano: u64, interval_nanos: u64) -> Self {
        let mut rng = Rng::new(seed);
        let mut resources = Vec::new();
        let mut scopes = Vec::new();
        for (n, (name, lang)) in SERVICES.iter().enumerate() {
            // Three replicas per service, as a deployment would have.
            for replica in 0..3 {
                let pod = format!("{name}-{:08x}-{replica}", rng.next_u64() as u32);
                resources.push(Arc::new(ResourceInfo {
                    resource: Resource {
                        attributes: vec![
                            s("service.name", *name),
                            s("service.namespace", "shop"),
                            s("service.version", format!("1.{}.{}", n % 4, replica)),
                            s("service.instance.id", pod.clone()),
                            s("deployment.environment.name", "production"),
                            s("k8s.namespace.name", "shop"),
                            s("k8s.pod.name", pod.clone()),
                            s("k8s.node.name", format!("node-{}", rng.below(6))),
                            s("host.name", pod),
                            s("telemetry.sdk.name", "opentelemetry"),
                            s("telemetry.sdk.language", *lang),
                            s("telemetry.sdk.version", "1.28.0"),
                        ],
                        ..Default::default()
                    },
                    schema_url: "https://opentelemetry.io/schemas/1.26.0".into(),
                }));
            }
            scopes.push(Arc::new(ScopeInfo {
                scope: InstrumentationScope {
                    name: format!("io.opentelemetry.{lang}.http"),
                    version: "2.9.0".into(),
                    ..Default::default()
                },
                schema_url: String::new(),
            }));
        }
        TraceGenerator {
            rng,
            resources,
            scopes,
            next_start_unix_nano: start_unix_nano,
            interval_nanos,
            request_id: String::new(),
            client_ip: String::new(),
            lean: false,
        }
    }

    /// The lean workload: spans keep only the attributes OpenTelemetry's HTTP and database
    /// instrumentations record by default (6 to 8 per span; about 325 bytes of OTLP
    /// protobuf per span in requests of 1,000 spans, against about 715 for the full
    /// workload, whose spans also carry thread, code, user, session, request-ID, body-size and
    /// RPC attributes). Traces, timings and resources are the same.
    pub fn lean(mut self) -> Self {
        self.lean = true;
        self
    }

    fn resource(&mut self, service: usize) -> Arc<ResourceInfo> {
        let replica = self.rng.below(3) as usize;
        Arc::clone(&self.resources[service * 3 + replica])
    }

    /// Generates one trace of about `target_spans` spans (at least 2).
    pub fn trace(&mut self, target_spans: usize) -> Vec<SpanRecord> {
        let mut trace_id = [0u8; 16];
        trace_id[..8].copy_from_slice(&self.rng.next_u64().to_le_bytes());
        trace_id[8..].copy_from_slice(&self.rng.next_u64().to_le_bytes());
        let start = self.next_start_unix_nano;
        self.next_start_unix_nano += self.interval_nanos;
        let failed = self.rng.chance(0.02);
        let user = self.rng.below(50_000);
        // Per-trace facts, the same on every span of the trace, as real propagation makes
        // them: the request ID and the user's session and address.
        self.request_id = format!("{:08x}", self.rng.next_u64() as u32);
        self.client_ip = format!(
            "10.{}.{}.{}",
            self.rng.below(4),
            self.rng.below(256),
            self.rng.below(256)
        );
        let mut out = Vec::with_capacity(target_spans);
        let (method, route) = *self.rng.pick(ROUTES);
        let root_duration = duration(&mut self.rng, 40_000);
        let root = self.http_server(
            0,
            trace_id,
            None,
            start,
            root_duration,
            method,
            route,
            user,
            failed,
        );
        let root_id = root.span.span_id.clone();
        out.push(root);
        // Fan out: each call is a client span in the caller and a server span in the callee,
        // plus database calls under the callee.
        let mut parents: Vec<(usize, Vec<u8>, u64, u64)> = vec![(0, root_id, start, root_duration)];
        while out.len() + 1 < target_spans.max(2) {
            let (caller, parent_id, p_start, p_dur) =
                parents[self.rng.below(parents.len() as u64) as usize].clone();
            let offset = self.rng.below(p_dur / 2 + 1);
            let dur = (p_dur - offset)
                .min(duration(&mut self.rng, 8_000))
                .max(1000);
            let c_start = p_start + offset;
            if self.rng.chance(0.3) || out.len() + 2 >= target_spans {
                let db = self.db_span(caller, trace_id, &parent_id, c_start, dur / 2 + 1, user);
                out.push(db);
                continue;
            }
            let callee = 1 + self.rng.below(SERVICES.len() as u64 - 1) as usize;
            let (m, r) = *self.rng.pick(ROUTES);
            let err = failed && self.rng.chance(0.5);
            let client = self.http_client(
                caller, callee, trace_id, &parent_id, c_start, dur, m, r, err,
            );
            let client_id = client.span.span_id.clone();
            out.push(client);
            let srv_start = c_start + dur / 20;
            let srv_dur = dur - dur / 10;
            let server = self.http_server(
                callee,
                trace_id,
                Some(&client_id),
                srv_start,
                srv_dur,
                m,
                r,
                user,
                err,
            );
            parents.push((callee, server.span.span_id.clone(), srv_start, srv_dur));
            out.push(server);
        }
        if self.lean {
            for s in &mut out {
                s.span
                    .attributes
                    .retain(|kv| LEAN_KEYS.contains(&kv.key.as_str()));
            }
        }
        out
    }

    fn span_base(
        &mut self,
        trace_id: [u8; 16],
        parent: Option<&[u8]>,
        name: String,
        kind: SpanKind,
        start: u64,
        dur: u64,
    ) -> Span {
        Span {
            trace_id: trace_id.to_vec(),
            span_id: self.rng.next_u64().to_le_bytes().to_vec(),
            parent_span_id: parent.map(<[u8]>::to_vec).unwrap_or_default(),
            flags: 0x101,
            name,
            kind: kind as i32,
            start_time_unix_nano: start,
            end_time_unix_nano: start + dur,
            ..Default::default()
        }
    }

    fn common_attrs(&mut self, attrs: &mut Vec<KeyValue>, service: usize) {
        let (name, lang) = SERVICES[service];
        attrs.push(i("thread.id", 1 + self.rng.below(64) as i64));
        attrs.push(s("thread.name", format!("worker-{}", self.rng.below(16))));
        attrs.push(s("code.namespace", format!("shop.{name}.handlers")));
        attrs.push(s("code.function", format!("handle_{lang}")));
    }

    #[allow(clippy::too_many_arguments)]
    fn http_server(
        &mut self,
        service: usize,
        trace_id: [u8; 16],
        parent: Option<&[u8]>,
        start: u64,
        dur: u64,
        method: &str,
        route: &str,
        user: u64,
        failed: bool,
    ) -> SpanRecord {
        let mut span = self.span_base(
            trace_id,
            parent,
            format!("{method} {route}"),
            SpanKind::Server,
            start,
            dur,
        );
        let id = self.rng.below(100_000);
        let path = route.replace("{id}", &id.to_string());
        let status = if failed {
            500
        } else {
            *self.rng.pick(&[200, 200, 200, 200, 201, 204, 304, 404])
        };
        let a = &mut span.attributes;
        a.push(s("http.request.method", method));
        a.push(s("http.route", route));
        a.push(s("url.path", path));
        a.push(s("url.scheme", "http"));
        a.push(i("http.response.status_code", status));
        a.push(s("server.address", SERVICES[service].0));
        a.push(i("server.port", 8080));
        a.push(s("network.protocol.version", "1.1"));
        // The root sees the end user's address; inner servers see a caller pod's.
        let client = match parent {
            None => self.client_ip.clone(),
            Some(_) => format!("10.1.{}.{}", service, self.rng.below(3)),
        };
        a.push(s("client.address", client));
        a.push(s("user_agent.original", *self.rng.pick(AGENTS)));
        a.push(i("http.request.body.size", self.rng.below(4096) as i64));
        a.push(i("http.response.body.size", self.rng.below(65536) as i64));
        a.push(s("enduser.id", format!("user-{user}")));
        a.push(s(
            "session.id",
            format!("{:016x}", user.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
        ));
        a.push(s("app.request.id", self.request_id.clone()));
        self.common_attrs(&mut span.attributes, service);
        if failed {
            span.status = Some(Status {
                code: StatusCode::Error as i32,
                message: "internal error".into(),
            });
            span.events.push(span::Event {
                time_unix_nano: start + dur / 2,
                name: "exception".into(),
                attributes: vec![
                    s("exception.type", "java.lang.IllegalStateException"),
                    s("exception.message", format!("order {id} is in an invalid state")),
                    s("exception.stacktrace", "java.lang.IllegalStateException: invalid state\n\tat shop.Orders.ship(Orders.java:120)\n\tat shop.Handlers.handle(Handlers.java:44)"),
                ],
                dropped_attributes_count: 0,
            });
        }
        let resource = self.resource(service);
        SpanRecord {
            resource,
            scope: Arc::clone(&self.scopes[service]),
            span,
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn http_client(
        &mut self,
        caller: usize,
        callee: usize,
        trace_id: [u8; 16],
        parent: &[u8],
        start: u64,
        dur: u64,
        method: &str,
        route: &str,
        failed: bool,
    ) -> SpanRecord {
        let mut span = self.span_base(
            trace_id,
            Some(parent),
            method.to_string(),
            SpanKind::Client,
            start,
            dur,
        );
        let host = SERVICES[callee].0;
        let path = route.replace("{id}", &self.rng.below(100_000).to_string());
        let a = &mut span.attributes;
        a.push(s("http.request.method", method));
        a.push(s("url.full", format!("http://{host}:8080{path}")));
        a.push(s("server.address", host));
        a.push(i("server.port", 8080));
        a.push(i(
            "http.response.status_code",
            if failed { 500 } else { 200 },
        ));
        a.push(s("network.protocol.version", "1.1"));
        a.push(s(
            "network.peer.address",
            format!("10.1.{}.{}", self.rng.below(256), self.rng.below(256)),
        ));
        a.push(i("network.peer.port", 8080));
        a.push(s("peer.service", host));
        a.push(i("http.request.resend_count", 0));
        a.push(i("http.request.body.size", self.rng.below(2048) as i64));
        a.push(i("http.response.body.size", self.rng.below(16384) as i64));
        a.push(s("app.request.id", self.request_id.clone()));
        a.push(s("rpc.system", "http"));
        a.push(s("rpc.service", host));
        a.push(s("rpc.method", route));
        self.common_attrs(&mut span.attributes, caller);
        if failed {
            span.status = Some(Status {
                code: StatusCode::Error as i32,
                message: String::new(),
            });
            span.attributes.push(s("error.type", "500"));
        }
        let resource = self.resource(caller);
        SpanRecord {
            resource,
            scope: Arc::clone(&self.scopes[caller]),
            span,
        }
    }

    fn db_span(
        &mut self,
        service: usize,
        trace_id: [u8; 16],
        parent: &[u8],
        start: u64,
        dur: u64,
        user: u64,
    ) -> SpanRecord {
        let (system, op, query) = *self.rng.pick(QUERIES);
        let name = format!("{op} {}", if system == "redis" { "cache" } else { "shop" });
        let mut span = self.span_base(trace_id, Some(parent), name, SpanKind::Client, start, dur);
        let a = &mut span.attributes;
        a.push(s("db.system.name", system));
        a.push(s("db.namespace", "shop"));
        a.push(s("db.operation.name", op));
        a.push(s("db.query.text", query));
        a.push(s("server.address", format!("{system}.shop.svc")));
        a.push(i(
            "server.port",
            if system == "redis" { 6379 } else { 5432 },
        ));
        a.push(s(
            "network.peer.address",
            format!("10.2.0.{}", self.rng.below(8)),
        ));
        a.push(i(
            "network.peer.port",
            if system == "redis" { 6379 } else { 5432 },
        ));
        a.push(s("db.user", "shop"));
        a.push(i("db.response.returned_rows", self.rng.below(50) as i64));
        a.push(s(
            "db.collection.name",
            *self.rng.pick(&["products", "carts", "orders", "sessions"]),
        ));
        a.push(s("enduser.id", format!("user-{user}")));
        a.push(s("pool.name", "primary"));
        a.push(i("db.client.connection.pool.size", 20));
        a.push(s("db.client.connection.state", "used"));
        self.common_attrs(&mut span.attributes, service);
        let resource = self.resource(service);
        SpanRecord {
            resource,
            scope: Arc::clone(&self.scopes[service]),
            span,
        }
    }

    /// At least `spans` spans in traces of 5 to 40 spans (mean about 20).
    pub fn spans(&mut self, spans: usize) -> Vec<SpanRecord> {
        let mut out = Vec::with_capacity(spans + 40);
        while out.len() < spans {
            let n = 5 + self.rng.below(36) as usize;
            out.extend(self.trace(n));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_traces_are_well_formed_and_deterministic() {
        let a = TraceGenerator::new(7, 1_700_000_000_000_000_000, 1_000_000).spans(2000);
        let b = TraceGenerator::new(7, 1_700_000_000_000_000_000, 1_000_000).spans(2000);
        assert_eq!(a, b);
        let mut roots = 0;
        for rec in &a {
            assert!(rec.trace_id().is_ok() && rec.span_id().is_ok());
            assert!(rec.span.end_time_unix_nano >= rec.span.start_time_unix_nano);
            roots += usize::from(rec.is_root());
            let n = rec.span.attributes.len();
            assert!((15..=25).contains(&n), "{} attributes", n);
        }
        let traces = a.iter().filter(|r| r.is_root()).count();
        assert_eq!(roots, traces);
        assert!(a.len() / traces > 10 && a.len() / traces < 30);

        let lean = TraceGenerator::new(7, 1_700_000_000_000_000_000, 1_000_000)
            .lean()
            .spans(2000);
        assert_eq!(lean.len(), a.len(), "the same traces");
        for (l, full) in lean.iter().zip(&a) {
            assert_eq!(l.span.span_id, full.span.span_id);
            let n = l.span.attributes.len();
            assert!((6..=8).contains(&n), "{} attributes", n);
        }
    }
}
