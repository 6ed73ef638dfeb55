//! The `tokend` binary: parses the command line and runs the command.

use std::process::ExitCode;

use clap::Parser;
use tokend::cli::{self, Cli};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli::run(cli).await {
        Ok(code) => code,
        Err(error) => {
            // Display, not Debug, so a hint with a shell command keeps its
            // quotes and backslashes as written.
            tracing::error!(error = %format_args!("{error:#}"), "tokend failed");
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
