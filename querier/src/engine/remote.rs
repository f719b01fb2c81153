//! Recent data from ingesters in other processes, over their internal HTTP API
//! (`skein_query::recent::paths`), and the record of those that did not answer.
//!
//! A querier in a cluster asks every configured ingester for the spans it holds that may not
//! be in a visible block yet. One configured entry (`host:port`) may stand for several
//! ingesters: the name is resolved again every `ingester_resolve_interval` and every address
//! it resolves to is asked, so a DNS name with one record per ingester (a Kubernetes headless
//! service, Docker's service name) covers them all.
//!
//! An ingester that cannot be reached, answers with an error or does not answer within the
//! configured timeouts is not a failed query: its part is left out, the failure is logged and
//! recorded for the request, and a middleware around the query routers marks the response as
//! partial. The record lives in a task-local value that the middleware sets for the request's
//! task (`recording_failures`); the remote calls must therefore run in that task (not in a
//! spawned one), which is how the lookup and search code calls [`RecentData`]. Within one
//! request an ingester that failed once is not asked again, so a search that reads hundreds of
//! candidate traces waits for a dead ingester once, not once per trace.

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use prost::Message;
use reqwest::{StatusCode, header};
use skein_format::model::spans_from_otlp;
use skein_format::otlp::trace::v1::TracesData;
use skein_format::{SpanRecord, TenantId, TraceId};
use skein_query::recent::{Candidates, RecentData, TENANT_HEADER, decode_traces, paths};

use crate::metrics::{IngesterLabel, metrics};

/// Which ingesters failed during one request, by address.
#[derive(Debug, Default)]
struct Failures(Mutex<BTreeMap<String, String>>);

impl Failures {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

tokio::task_local! {
    static FAILURES: Arc<Failures>;
}

/// True when `addr` already failed during the current request.
fn failed_before(addr: &str) -> bool {
    FAILURES
        .try_with(|f| f.lock().contains_key(addr))
        .unwrap_or(false)
}

/// Records that `addr` was left out of the current request's answer, and logs it.
fn record_failure(addr: &str, reason: String) {
    metrics()
        .ingester_failures
        .get_or_create(&IngesterLabel {
            ingester: addr.to_owned(),
        })
        .inc();
    let recorded = FAILURES.try_with(|f| {
        f.lock().entry(addr.to_owned()).or_insert(reason.clone());
    });
    match recorded {
        Ok(()) => tracing::warn!(
            ingester = addr,
            error = %reason,
            "ingester left out of a query: the response is partial"
        ),
        // Outside a request scope nobody can tell the client; this is a bug in the caller.
        Err(_) => tracing::error!(
            ingester = addr,
            error = %reason,
            "ingester left out of a query, outside a request scope: the response cannot be \
             marked partial"
        ),
    }
}

/// Runs `request` (the handling of one HTTP request) with a fresh failure record, and returns
/// its output with the ingesters left out of its answer meanwhile: address → reason. The HTTP
/// layer wraps every query request in it to mark the response partial.
pub(crate) async fn recording_failures<F: Future>(
    request: F,
) -> (F::Output, BTreeMap<String, String>) {
    let failures = Arc::new(Failures::default());
    let output = FAILURES.scope(Arc::clone(&failures), request).await;
    let failed = std::mem::take(&mut *failures.lock());
    (output, failed)
}

/// How the querier reaches the ingesters of a cluster: `[querier]` settings.
#[derive(Debug, Clone)]
pub struct RemoteOptions {
    /// Longest wait for a TCP connection to an ingester (and for resolving its name).
    pub connect_timeout: Duration,
    /// Longest wait for a whole request to an ingester, answer included.
    pub request_timeout: Duration,
    /// How long the addresses a name resolved to are used before it is resolved again.
    pub resolve_interval: Duration,
}

/// Error in a configured ingester entry.
#[derive(Debug, thiserror::Error)]
#[error(
    "invalid querier.ingesters entry {entry:?}: {reason} (expected host:port, e.g. \
     \"ingester-1:3201\" or \"10.0.0.5:3201\")"
)]
pub struct EntryError {
    entry: String,
    reason: &'static str,
}

/// One configured ingester entry: a `host:port` whose every address is an ingester.
#[derive(Debug)]
pub struct RemoteIngester {
    entry: String,
    host: String,
    port: u16,
    options: RemoteOptions,
    client: reqwest::Client,
    /// Addresses and when they were resolved.
    resolved: tokio::sync::Mutex<Option<(Instant, Vec<SocketAddr>)>>,
}

impl RemoteIngester {
    /// A client for `entry` (`host:port`, or `[v6]:port`). Nothing is resolved or connected
    /// until the first query.
    pub fn new(entry: &str, options: RemoteOptions) -> Result<Self, EntryError> {
        let error = |reason| EntryError {
            entry: entry.to_owned(),
            reason,
        };
        if entry.contains("://") || entry.contains('/') {
            return Err(error("give host:port without a scheme or path"));
        }
        let (host, port) = entry.rsplit_once(':').ok_or_else(|| error("no port"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| error("the port is not a number from 1 to 65535"))?;
        if port == 0 {
            return Err(error("the port is not a number from 1 to 65535"));
        }
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() {
            return Err(error("no host"));
        }
        let client = reqwest::Client::builder()
            .connect_timeout(options.connect_timeout)
            .timeout(options.request_timeout)
            .build()
            .map_err(|_| error("cannot build an HTTP client"))?;
        Ok(RemoteIngester {
            entry: entry.to_owned(),
            host: host.to_owned(),
            port,
            options,
            client,
            resolved: tokio::sync::Mutex::new(None),
        })
    }

    /// The configured entry.
    pub fn entry(&self) -> &str {
        &self.entry
    }

    /// The addresses to ask: resolved again when the last resolution is older than the
    /// interval. A failed resolution keeps the previous addresses, if any.
    async fn addresses(&self) -> Vec<SocketAddr> {
        if let Ok(ip) = self.host.parse::<std::net::IpAddr>() {
            return vec![SocketAddr::new(ip, self.port)];
        }
        let mut resolved = self.resolved.lock().await;
        if let Some((at, addrs)) = &*resolved
            && at.elapsed() < self.options.resolve_interval
        {
            return addrs.clone();
        }
        let lookup = tokio::net::lookup_host((self.host.as_str(), self.port));
        let result = match tokio::time::timeout(self.options.connect_timeout, lookup).await {
            Ok(Ok(addrs)) => {
                let mut addrs: Vec<SocketAddr> = addrs.collect();
                addrs.sort();
                addrs.dedup();
                match addrs.is_empty() {
                    true => Err("the name resolves to no address".to_owned()),
                    false => Ok(addrs),
                }
            }
            Ok(Err(e)) => Err(format!("cannot resolve the name: {e}")),
            Err(_) => Err(format!(
                "resolving the name took longer than {:?}",
                self.options.connect_timeout
            )),
        };
        match result {
            Ok(addrs) => {
                *resolved = Some((Instant::now(), addrs.clone()));
                addrs
            }
            Err(reason) => match &*resolved {
                Some((_, previous)) => {
                    tracing::warn!(
                        ingester = %self.entry,
                        error = %reason,
                        "using the addresses of the previous resolution"
                    );
                    previous.clone()
                }
                None => {
                    if !failed_before(&self.entry) {
                        record_failure(&self.entry, reason);
                    }
                    Vec::new()
                }
            },
        }
    }

    /// Sends one request to every address (at once), returning the bodies of those that
    /// answered 200; `None` stands for 404. Failures are recorded, not returned.
    async fn call_all(
        &self,
        tenant: &TenantId,
        build: impl Fn(&reqwest::Client, SocketAddr) -> reqwest::RequestBuilder,
    ) -> Vec<(String, Option<bytes::Bytes>)> {
        let addrs = self.addresses().await;
        let calls = addrs
            .into_iter()
            .map(|addr| (addr.to_string(), addr))
            .filter(|(name, _)| !failed_before(name))
            .map(|(name, addr)| {
                let request = build(&self.client, addr).header(TENANT_HEADER, tenant.as_str());
                async move {
                    match call(request).await {
                        Ok(body) => Some((name, body)),
                        Err(reason) => {
                            record_failure(&name, reason);
                            None
                        }
                    }
                }
            });
        futures::future::join_all(calls)
            .await
            .into_iter()
            .flatten()
            .collect()
    }
}

/// One request; the body on 200, `None` on 404, the reason otherwise.
async fn call(request: reqwest::RequestBuilder) -> Result<Option<bytes::Bytes>, String> {
    let response = request.send().await.map_err(describe)?;
    let status = response.status();
    if status == StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let body = response.bytes().await.map_err(describe)?;
    if status != StatusCode::OK {
        let text = String::from_utf8_lossy(&body[..body.len().min(300)]).into_owned();
        return Err(format!("answered {status}: {text}"));
    }
    Ok(Some(body))
}

fn describe(e: reqwest::Error) -> String {
    // The innermost cause says the most ("Connection refused"); reqwest's own message
    // repeats the URL.
    let mut cause: Option<String> = None;
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        cause = Some(s.to_string());
        source = s.source();
    }
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    match cause {
        Some(c) if !e.is_timeout() => format!("{what}: {c}"),
        _ => what.to_owned(),
    }
}

#[async_trait]
impl RecentData for RemoteIngester {
    async fn find_trace(
        &self,
        tenant: &TenantId,
        id: &TraceId,
    ) -> skein_query::Result<Vec<SpanRecord>> {
        let path = paths::TRACE_BY_ID.replace("{trace_id}", &id.to_hex());
        let answers = self
            .call_all(tenant, |client, addr| {
                client
                    .get(format!("http://{addr}{path}"))
                    .header(header::ACCEPT, "application/x-protobuf")
            })
            .await;
        let mut spans = Vec::new();
        for (addr, body) in answers {
            let Some(body) = body else { continue };
            match TracesData::decode(body) {
                Ok(data) => spans.extend(spans_from_otlp(data.resource_spans)),
                Err(e) => record_failure(&addr, format!("sent a trace that does not decode: {e}")),
            }
        }
        Ok(spans)
    }

    async fn search(
        &self,
        tenant: &TenantId,
        query: &Candidates,
    ) -> skein_query::Result<Vec<Vec<SpanRecord>>> {
        let body = match serde_json::to_vec(query) {
            Ok(b) => b,
            Err(e) => return Err(skein_query::Error::Unavailable(e.to_string())),
        };
        let answers = self
            .call_all(tenant, |client, addr| {
                client
                    .post(format!("http://{addr}{}", paths::SEARCH))
                    .header(header::CONTENT_TYPE, "application/json")
                    .body(body.clone())
            })
            .await;
        let single = answers.len() == 1;
        let mut parts = Vec::new();
        for (addr, body) in answers {
            let Some(body) = body else { continue };
            match decode_traces(&body, &addr) {
                Ok(traces) => parts.push(traces),
                Err(e) => record_failure(&addr, e.to_string()),
            }
        }
        if single {
            return Ok(parts.pop().unwrap_or_default());
        }
        Ok(newest_first(parts, query.limit))
    }
}

/// Every configured ingester as one source of recent data, asked all at once: a lookup waits
/// for the slowest ingester, not for the sum of them.
#[derive(Debug)]
pub struct RemoteIngesters {
    members: Vec<RemoteIngester>,
}

impl RemoteIngesters {
    /// The ingesters `members`, asked together.
    pub fn new(members: Vec<RemoteIngester>) -> Self {
        RemoteIngesters { members }
    }

    /// The configured entries.
    pub fn entries(&self) -> impl Iterator<Item = &str> {
        self.members.iter().map(RemoteIngester::entry)
    }
}

#[async_trait]
impl RecentData for RemoteIngesters {
    async fn find_trace(
        &self,
        tenant: &TenantId,
        id: &TraceId,
    ) -> skein_query::Result<Vec<SpanRecord>> {
        let answers =
            futures::future::join_all(self.members.iter().map(|m| m.find_trace(tenant, id))).await;
        let mut spans = Vec::new();
        for answer in answers {
            spans.extend(answer?);
        }
        Ok(spans)
    }

    async fn search(
        &self,
        tenant: &TenantId,
        query: &Candidates,
    ) -> skein_query::Result<Vec<Vec<SpanRecord>>> {
        let answers =
            futures::future::join_all(self.members.iter().map(|m| m.search(tenant, query))).await;
        let mut parts = Vec::new();
        for answer in answers {
            parts.push(answer?);
        }
        Ok(newest_first(parts, query.limit))
    }
}

/// Joins the answers of several ingesters: the pieces of one trace become one, newest first
/// (by earliest span start), at most `limit` (0: all).
fn newest_first(parts: Vec<Vec<Vec<SpanRecord>>>, limit: usize) -> Vec<Vec<SpanRecord>> {
    let mut by_id: HashMap<TraceId, Vec<SpanRecord>> = HashMap::new();
    for spans in parts.into_iter().flatten() {
        let Some(id) = spans.first().and_then(|s| s.trace_id().ok()) else {
            continue;
        };
        by_id.entry(id).or_default().extend(spans);
    }
    let mut traces: Vec<(u64, TraceId, Vec<SpanRecord>)> = by_id
        .into_iter()
        .map(|(id, spans)| {
            let start = spans
                .iter()
                .map(|s| s.span.start_time_unix_nano)
                .min()
                .unwrap_or(0);
            (start, id, spans)
        })
        .collect();
    traces.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    if limit > 0 {
        traces.truncate(limit);
    }
    traces.into_iter().map(|(_, _, spans)| spans).collect()
}

#[cfg(test)]
mod tests {
    use std::net::TcpListener;

    use axum::Router;
    use axum::body::Body;
    use axum::extract::Request;
    use axum::response::Response;
    use axum::routing::get;
    use skein_testkit::synth::TraceGenerator;

    use super::*;
    use crate::http::partial::{PARTIAL_HEADER, UNREACHABLE_HEADER, partial_responses};

    fn options() -> RemoteOptions {
        RemoteOptions {
            connect_timeout: Duration::from_millis(500),
            request_timeout: Duration::from_millis(700),
            resolve_interval: Duration::from_secs(10),
        }
    }

    #[test]
    fn entries_are_checked() {
        for bad in ["ingester", "http://a:1", "a:b", ":3201", "a:0", "a:70000"] {
            assert!(RemoteIngester::new(bad, options()).is_err(), "{bad}");
        }
        for good in [
            "a:1",
            "ingester-0.ingester:3201",
            "10.0.0.1:3201",
            "[::1]:3201",
        ] {
            assert!(RemoteIngester::new(good, options()).is_ok(), "{good}");
        }
    }

    #[test]
    fn answers_of_several_ingesters_are_joined_newest_first() {
        let mut g = TraceGenerator::new(4, 1_750_000_000_000_000_000, 1);
        let (a, b, c) = (g.trace(4), g.trace(4), g.trace(4));
        let half = a.len() / 2;
        let parts = vec![
            vec![a[..half].to_vec(), b.clone()],
            vec![c.clone(), a[half..].to_vec()],
        ];
        let joined = newest_first(parts, 0);
        assert_eq!(joined.len(), 3);
        let total: usize = joined.iter().map(Vec::len).sum();
        assert_eq!(total, a.len() + b.len() + c.len());
        let starts: Vec<u64> = joined
            .iter()
            .map(|t| t.iter().map(|s| s.span.start_time_unix_nano).min().unwrap())
            .collect();
        assert!(starts.windows(2).all(|w| w[0] >= w[1]), "{starts:?}");
        assert_eq!(newest_first(vec![vec![a, b, c]], 2).len(), 2);
    }

    /// A route that answers through the remote client, as the query routers do.
    fn app(remote: Arc<RemoteIngester>) -> Router {
        Router::new()
            .route(
                "/q",
                get(move || {
                    let remote = Arc::clone(&remote);
                    async move {
                        let tenant = TenantId::default_tenant();
                        let n = remote
                            .find_trace(&tenant, &TraceId([1; 16]))
                            .await
                            .unwrap()
                            .len();
                        // Asked again in the same request: skipped, not waited for again.
                        let again = Instant::now();
                        remote
                            .search(&tenant, &Candidates::default())
                            .await
                            .unwrap();
                        assert!(again.elapsed() < Duration::from_millis(100));
                        axum::Json(serde_json::json!({ "spans": n }))
                    }
                }),
            )
            .layer(axum::middleware::from_fn(partial_responses))
    }

    async fn get_q(app: Router) -> (Response, serde_json::Value) {
        use tower::ServiceExt;
        let response = app
            .oneshot(Request::get("/q").body(Body::empty()).unwrap())
            .await
            .unwrap();
        let (parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, 1 << 20).await.unwrap();
        let json = serde_json::from_slice(&bytes).unwrap();
        (Response::from_parts(parts, Body::empty()), json)
    }

    #[tokio::test]
    async fn an_unreachable_ingester_makes_the_response_partial() {
        // A port that nothing listens on.
        let addr = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let remote = Arc::new(RemoteIngester::new(&addr.to_string(), options()).unwrap());
        let (response, json) = get_q(app(remote)).await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[PARTIAL_HEADER], "true");
        let unreachable = response.headers()[UNREACHABLE_HEADER].to_str().unwrap();
        assert!(unreachable.contains(&addr.to_string()), "{unreachable}");
        assert_eq!(json["partial"], true);
        assert_eq!(json["spans"], 0);
        assert!(
            json["warnings"][0]
                .as_str()
                .unwrap()
                .contains(&addr.to_string()),
            "{json}"
        );
    }

    #[tokio::test]
    async fn an_ingester_that_does_not_answer_times_out() {
        // Accepts connections (the kernel does) but never answers.
        let silent = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = silent.local_addr().unwrap();
        let remote = Arc::new(RemoteIngester::new(&addr.to_string(), options()).unwrap());
        let started = Instant::now();
        let (response, json) = get_q(app(remote)).await;
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(response.headers()[PARTIAL_HEADER], "true");
        assert_eq!(json["partial"], true);
        drop(silent);
    }

    #[tokio::test]
    async fn a_group_answers_with_the_reachable_ingesters_and_is_partial() {
        let down = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let (up, n) = fake_ingester().await;
        let group = Arc::new(RemoteIngesters::new(vec![
            RemoteIngester::new(&down.to_string(), options()).unwrap(),
            RemoteIngester::new(&up.to_string(), options()).unwrap(),
        ]));
        assert_eq!(group.entries().count(), 2);
        let app = Router::new()
            .route(
                "/q",
                get(move || {
                    let group = Arc::clone(&group);
                    async move {
                        let spans = group
                            .find_trace(&TenantId::default_tenant(), &TraceId([1; 16]))
                            .await
                            .unwrap();
                        axum::Json(serde_json::json!({ "spans": spans.len() }))
                    }
                }),
            )
            .layer(axum::middleware::from_fn(partial_responses));
        let (response, json) = get_q(app).await;
        assert_eq!(json["spans"], n);
        assert_eq!(json["partial"], true);
        let unreachable = response.headers()[UNREACHABLE_HEADER].to_str().unwrap();
        assert!(unreachable.contains(&down.to_string()), "{unreachable}");
        assert!(!unreachable.contains(&up.to_string()), "{unreachable}");
    }

    /// An ingester's internal API that holds one trace and finds nothing by search: its
    /// address and the trace's span count.
    async fn fake_ingester() -> (std::net::SocketAddr, usize) {
        let mut g = TraceGenerator::new(5, 1_750_000_000_000_000_000, 1);
        let trace = g.trace(6);
        let n = trace.len();
        let data = TracesData {
            resource_spans: skein_format::model::spans_to_otlp(trace),
        }
        .encode_to_vec();
        let ingester = Router::new()
            .route(
                paths::TRACE_BY_ID,
                get(move || {
                    let data = data.clone();
                    async move { data }
                }),
            )
            .route(
                paths::SEARCH,
                axum::routing::post(|| async { Vec::<u8>::new() }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, ingester).await });
        (addr, n)
    }

    #[tokio::test]
    async fn a_healthy_ingester_leaves_the_response_alone() {
        let (addr, n) = fake_ingester().await;
        let remote = Arc::new(RemoteIngester::new(&addr.to_string(), options()).unwrap());
        let (response, json) = get_q(app(remote)).await;
        assert!(response.headers().get(PARTIAL_HEADER).is_none());
        assert_eq!(json["spans"], n);
        assert!(json.get("partial").is_none());
    }
}
