//! The `skein` binary. Everything it does is in the library, so that tests can reach it.

use std::process::ExitCode;

use clap::Parser;

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
