//! `skein-bench`: Skein's benchmarks, one binary with a subcommand each. Nothing here ships in
//! the `skein` binary; the figures they print are recorded in `docs/benchmarks.md`.
//!
//! - [`block`]: block encode throughput, bytes per span on disk, trace-by-ID lookup timings;
//! - [`query`]: trace by ID, search and tag listings over a generated dataset in object
//!   storage, with the object-store requests each makes;
//! - [`compact`]: compaction throughput and bytes per span before and after;
//! - [`ingest`]: generated OTLP traffic against a running server (the load generator of
//!   `scripts/bench-ingest.sh`).
//!
//! Build it in release mode for figures worth recording:
//! `cargo build --release -p skein-bench && target/release/skein-bench <subcommand> --help`.

mod block;
mod compact;
mod ingest;
mod measure;
mod query;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The allocator of the `skein` binary, so that the figures are those of a real server.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Skein's benchmarks, one subcommand each.
///
/// Each subcommand generates its own synthetic dataset, measures one part of Skein and prints a
/// report. Build with `cargo build --release -p skein-bench` for figures worth recording;
/// `docs/benchmarks.md` has the recorded ones and the commands that produced them.
#[derive(Debug, Parser)]
#[command(name = "skein-bench", version, about, long_about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The benchmarks.
#[derive(Debug, Subcommand)]
enum Command {
    /// Encode a block and look traces up in it on local disk: encode throughput, bytes per
    /// span on disk, lookup timings.
    Block(block::BlockArgs),
    /// Load a generated dataset into object storage and measure trace by ID, search and tag
    /// listings in process, with the object-store requests each makes.
    Query(query::QueryArgs),
    /// Write ingester-like blocks to a local bucket and compact them: spans per CPU-second,
    /// bytes per span before and after, tag index size, where the CPU time goes.
    Compact(compact::CompactArgs),
    /// Send generated traces to an OTLP endpoint and report throughput and latency.
    Ingest(ingest::IngestArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Block(args) => block::run(args),
        Command::Query(args) => query::run(args),
        Command::Compact(args) => compact::run(args),
        Command::Ingest(args) => ingest::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the whole chain of causes on one line.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
