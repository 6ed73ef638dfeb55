//! `tokend admin`: bootstrap commands that write to the database directly,
//! so the first admin token exists before any server runs.

use std::{process::ExitCode, time::Duration};

use anyhow::Context;
use clap::Subcommand;
use serde::Serialize;

use super::{OutputFormat, output};
use crate::{
    config::{PolicyArgs, StorageArgs},
    domain::{Expiration, Owner, ScopeSet, TokenName},
    service::CacheSettings,
    telemetry,
};

/// Host-side administration.
#[derive(Debug, Subcommand)]
pub enum AdminCommand {
    /// Create a token and print its secret once.
    CreateToken(CreateTokenArgs),
}

/// Flags of `tokend admin create-token`.
#[derive(Debug, clap::Args)]
pub struct CreateTokenArgs {
    /// Owner of the new token, such as a user id.
    #[arg(long)]
    owner: String,

    /// Name or purpose of the token.
    #[arg(long, default_value = "bootstrap admin")]
    name: String,

    /// Scope to grant; repeat for several, such as --scope tokens:admin.
    #[arg(long = "scope")]
    scopes: Vec<String>,

    /// Lifetime, such as 30d or 12h. Default: the server's default lifetime.
    #[arg(long, value_parser = humantime::parse_duration, conflicts_with = "no_expiration")]
    ttl: Option<Duration>,

    /// Create a token that never expires; needs --allow-no-expiration.
    #[arg(long)]
    no_expiration: bool,

    /// Output format.
    #[arg(long, env = "TOKEND_OUTPUT", value_enum, default_value = "table")]
    output: OutputFormat,

    #[command(flatten)]
    storage: StorageArgs,

    #[command(flatten)]
    policy: PolicyArgs,
}

#[derive(Serialize)]
struct Created {
    token: output::TokenView,
    secret: String,
}

/// Runs an admin subcommand.
///
/// # Errors
///
/// Returns an error naming the invalid flag, or the database failure.
pub(super) async fn run(command: AdminCommand) -> anyhow::Result<ExitCode> {
    let AdminCommand::CreateToken(args) = command;
    telemetry::init(args.storage.log_format);

    let owner = Owner::parse(&args.owner).context("--owner")?;
    let name = TokenName::parse(&args.name).context("--name")?;
    let scopes = ScopeSet::parse(&args.scopes).context("--scope")?;
    let expiration = match (args.ttl, args.no_expiration) {
        (_, true) => Expiration::Never,
        (Some(ttl), false) => Expiration::Ttl {
            seconds: i64::try_from(ttl.as_secs()).context("--ttl is too long")?,
            nanos: ttl.subsec_nanos() as i32,
        },
        (None, false) => Expiration::Default,
    };

    let manager = args
        .storage
        .build_manager(&args.policy, CacheSettings::default())
        .await?;
    let (policy, _) = args.policy.build()?;
    let now = manager.now();
    let expires_at = policy.lifetime.resolve(now, expiration).context("--ttl")?;
    let generated = manager.create(owner, name, scopes, now, expires_at).await?;
    tracing::info!(token_id = %generated.record.id, owner = %generated.record.owner, "token created by admin command");

    let created = Created {
        token: output::TokenView::from(&crate::grpc::token_message(&generated.record, now)),
        secret: generated.secret.expose().to_owned(),
    };
    match args.output {
        OutputFormat::Json => output::print_json(&created)?,
        OutputFormat::Table => {
            output::print_table(std::slice::from_ref(&created.token));
            println!();
            println!("secret: {}", created.secret);
            println!("Store the secret now: it is shown only once.");
        }
    }
    Ok(ExitCode::SUCCESS)
}
