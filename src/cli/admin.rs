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
    /// Insert many scope-less tokens in batches, for load tests, and write some secrets to a file.
    Seed(SeedArgs),
}

/// Flags of `tokend admin seed`.
#[derive(Debug, clap::Args)]
pub struct SeedArgs {
    /// Number of tokens to insert.
    #[arg(long)]
    count: usize,

    /// Tokens are spread over this many owners named bench-0, bench-1 and so on.
    #[arg(long, default_value_t = 100)]
    owners: usize,

    /// Tokens per insert statement.
    #[arg(long, default_value_t = 1000)]
    batch: usize,

    /// File that receives secrets, one per line, created with mode 0600.
    #[arg(long)]
    secrets_file: std::path::PathBuf,

    /// How many secrets to write to the file, taken evenly from the whole run.
    #[arg(long, default_value_t = 1000)]
    secrets: usize,

    #[command(flatten)]
    storage: StorageArgs,

    #[command(flatten)]
    policy: PolicyArgs,
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
    match command {
        AdminCommand::CreateToken(args) => create_token(args).await,
        AdminCommand::Seed(args) => seed(args).await,
    }
}

async fn create_token(args: CreateTokenArgs) -> anyhow::Result<ExitCode> {
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
    manager.check_allowed(&scopes).context("--scope")?;
    let (policy, _) = args.policy.build()?;
    let now = manager.now();
    let flag = if args.no_expiration {
        "--no-expiration"
    } else {
        "--ttl"
    };
    let expires_at = policy.lifetime.resolve(now, expiration).context(flag)?;
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

async fn seed(args: SeedArgs) -> anyhow::Result<ExitCode> {
    use std::io::Write;

    telemetry::init(args.storage.log_format);
    if args.count == 0 || args.owners == 0 || args.batch == 0 {
        anyhow::bail!("--count, --owners and --batch must be at least 1");
    }
    // Ten bind parameters per row must stay under SQLite's limit of 32,766.
    if args.batch > 3000 {
        anyhow::bail!(
            "--batch {} is too large; the maximum is 3000 rows per statement",
            args.batch
        );
    }
    let manager = args
        .storage
        .build_manager(&args.policy, CacheSettings::default())
        .await?;
    let (policy, _) = args.policy.build()?;
    let name = TokenName::parse("load test").context("seed name")?;
    let owners: Vec<Owner> = (0..args.owners)
        .map(|i| Owner::parse(&format!("bench-{i}")))
        .collect::<Result<_, _>>()
        .context("owner name")?;

    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(&args.secrets_file)
        .with_context(|| format!("failed to create {}", args.secrets_file.display()))?;

    // Every step-th token's secret is kept, so the sample spans the whole table.
    let step = (args.count / args.secrets.max(1)).max(1);
    let started = std::time::Instant::now();
    let mut written = 0;
    let mut kept = 0;
    while written < args.count {
        let size = args.batch.min(args.count - written);
        let owner = &owners[(written / args.batch) % owners.len()];
        let now = manager.now();
        let expires_at = policy.lifetime.resolve(now, Expiration::Default)?;
        let batch = manager
            .create_batch(owner, &name, size, now, expires_at)
            .await?;
        for (offset, token) in batch.iter().enumerate() {
            if (written + offset) % step == 0 && kept < args.secrets {
                writeln!(file, "{}", token.secret.expose())?;
                kept += 1;
            }
        }
        written += size;
    }
    file.sync_all()?;
    tracing::info!(
        tokens = written,
        secrets = kept,
        seconds = started.elapsed().as_secs_f64(),
        "seeded tokens"
    );
    Ok(ExitCode::SUCCESS)
}
