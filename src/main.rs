//! The `skein` binary. Everything it does is in the library, so that tests can reach it.

use std::process::ExitCode;

use clap::Parser;

/// mimalloc instead of the system allocator: the ingester allocates and frees many small
/// objects per request (decoded spans), and glibc's malloc keeps freed memory in per-thread
/// arenas, which inflates resident memory under load (see docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    match skein::run(skein::cli::Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` prints the whole chain of causes on one line.
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
