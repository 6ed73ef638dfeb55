//! The `tokend` command line: server subcommands and client subcommands.

mod admin;
mod client;
mod output;

use std::{net::SocketAddr, time::Duration};

use clap::{Parser, Subcommand};

use crate::{
    app,
    config::{CacheArgs, PolicyArgs, StorageArgs},
    telemetry,
    tls::ServerTlsArgs,
};

pub use output::OutputFormat;

/// Personal access token service.
#[derive(Debug, Parser)]
#[command(name = "tokend", version, about)]
pub struct Cli {
    /// The subcommand to run.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the gRPC server.
    Serve(ServeArgs),
    /// Apply database migrations and exit.
    Migrate(MigrateArgs),
    /// Host-side administration that writes to the database directly.
    #[command(subcommand)]
    Admin(admin::AdminCommand),
    /// Manage tokens through a running server, authenticated by TOKEND_TOKEN.
    #[command(subcommand)]
    Token(client::TokenCommand),
}

/// Flags of `tokend serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// Address to listen on, such as 127.0.0.1:50051 or [::]:50051.
    #[arg(long, env = "TOKEND_LISTEN", default_value = "127.0.0.1:50051")]
    pub listen: SocketAddr,

    /// Interval between health pings of the database, such as 1s.
    #[arg(long, env = "TOKEND_HEALTH_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub health_interval: Duration,

    /// Address for Prometheus metrics over HTTP, such as 127.0.0.1:9090. Off when unset.
    #[arg(long, env = "TOKEND_METRICS_ADDR")]
    pub metrics_addr: Option<SocketAddr>,

    /// How long in-flight calls may run after SIGTERM or SIGINT, such as 30s.
    #[arg(long, env = "TOKEND_SHUTDOWN_GRACE", default_value = "30s", value_parser = humantime::parse_duration)]
    pub shutdown_grace: Duration,

    /// How often last-used times are written to the database, such as 1s.
    #[arg(long, env = "TOKEND_LAST_USED_FLUSH_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
    pub last_used_flush_interval: Duration,

    #[command(flatten)]
    pub storage: StorageArgs,

    #[command(flatten)]
    pub policy: PolicyArgs,

    #[command(flatten)]
    pub cache: CacheArgs,

    #[command(flatten)]
    pub tls: ServerTlsArgs,
}

/// Flags of `tokend migrate`.
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
}

/// Runs the parsed command.
///
/// # Errors
///
/// Returns the error that ended the command; `main` prints it.
pub async fn run(cli: Cli) -> anyhow::Result<std::process::ExitCode> {
    match cli.command {
        Command::Serve(args) => {
            telemetry::init(args.storage.log_format);
            tracing::info!(version = env!("CARGO_PKG_VERSION"), "tokend starting");
            // Bad TLS files fail the start before the database is opened.
            let tls = args.tls.load()?;
            if let Some(address) = args.metrics_addr {
                crate::metrics::install(address)?;
            }
            let manager = args
                .storage
                .build_manager(&args.policy, args.cache.settings())
                .await?;
            let listener = tokio::net::TcpListener::bind(args.listen)
                .await
                .map_err(|error| anyhow::anyhow!("failed to listen on {}: {error}", args.listen))?;
            let options = app::ServeOptions {
                health_interval: args.health_interval,
                flush_interval: args.last_used_flush_interval,
                shutdown_grace: args.shutdown_grace,
                tls,
            };
            app::serve(manager, listener, options, app::shutdown_signal()).await?;
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Migrate(args) => {
            telemetry::init(args.storage.log_format);
            args.storage.open_store().await?;
            Ok(std::process::ExitCode::SUCCESS)
        }
        Command::Admin(command) => admin::run(command).await,
        Command::Token(command) => client::run(command).await,
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    #[test]
    fn command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }
}
