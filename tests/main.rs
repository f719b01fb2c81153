//! Skein's end-to-end tests: one test binary (linking the workspace once) whose modules start
//! the real `skein` binary, a real S3 server, real OpenTelemetry SDKs and a real browser.
//!
//! - `common`: the `skein` process on free 127.0.0.1 ports, OTLP request builders, load and
//!   verification of what reached the bucket; `compact_support`: blocks written straight
//!   into a bucket for the compaction tests;
//! - `ingest_*`: the write path (protocols, SDKs, limits, bad input, crashes, outages);
//! - `query_*`: the Tempo and Jaeger APIs and tenants; `compact_*`: compaction end to end;
//! - `binary`, `config`, `compose`, `cluster`, `ui_browser`: the binary, its configuration,
//!   the compose file, cluster mode and the web UI;
//! - `golden`: the committed artefacts of every readable format version;
//! - `dependency_rule`: the crate layering.
//!
//! Run one area with a filter: `cargo test --test it ingest_`. External tools (the S3
//! server, Python, Chromium) come from `scripts/test.sh` through `SKEIN_TEST_*` variables.

mod common;
mod compact_support;

mod binary;
mod cluster;
mod compact_crash;
mod compact_overrides;
mod compact_queries;
mod compose;
mod config;
mod dependency_rule;
mod golden;
mod ingest_bad_input;
mod ingest_crash;
mod ingest_fixtures;
mod ingest_grpc;
mod ingest_limits;
mod ingest_outage;
mod ingest_sdk;
mod ingest_smoke;
mod query_grafana;
mod query_jaeger;
mod query_search;
mod query_tenants;
mod query_trace_by_id;
mod query_traceql;
mod ui_browser;
