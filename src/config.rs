//! Command-line and environment configuration shared by the server
//! subcommands, and the construction of the token operations from it.

use std::{
    collections::BTreeSet,
    fs,
    io::Write,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context, bail};
use clap::Args;

use crate::{
    domain::{HashingKey, LifetimePolicy, SystemClock, TokenFormat, TokenHasher, digest::KEY_LEN},
    service::{CacheSettings, Policy, TokenManager},
    storage::{self, TokenStore, connect::PoolSettings},
    telemetry::LogFormat,
};

/// Name of the key file created beside the SQLite database.
pub const KEY_FILE_NAME: &str = "hashing.key";
/// Name of the SQLite database file in the data directory.
pub const DATABASE_FILE_NAME: &str = "tokend.db";

/// Storage location and connection settings.
#[derive(Debug, Clone, Args)]
pub struct StorageArgs {
    /// Directory for the embedded SQLite database and the generated hashing key.
    #[arg(long, env = "TOKEND_DATA_DIR", default_value = "./data")]
    pub data_dir: PathBuf,

    /// Database URL, such as postgres://user@host/db. When unset, SQLite in the data directory is used.
    #[arg(long, env = "TOKEND_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// File with the 32-byte hashing key as 64 hex characters; TOKEND_HASHING_KEY may hold the key itself. Default: hashing.key in the data directory, created on first start with SQLite only.
    #[arg(long, env = "TOKEND_HASHING_KEY_FILE")]
    pub hashing_key_file: Option<PathBuf>,

    /// Comma-separated files with previous hashing keys. Tokens hashed under them still validate and are re-hashed under the current key on first use.
    #[arg(long, env = "TOKEND_PREVIOUS_HASHING_KEY_FILES", value_delimiter = ',')]
    pub previous_hashing_key_files: Vec<PathBuf>,

    /// Maximum open database connections; at least 2 on PostgreSQL, where the revocation listener keeps one.
    #[arg(long, env = "TOKEND_DATABASE_MAX_CONNECTIONS", default_value_t = 16)]
    pub database_max_connections: u32,

    /// Log format: text or json.
    #[arg(long, env = "TOKEND_LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// Token rules.
#[derive(Debug, Clone, Args)]
pub struct PolicyArgs {
    /// Prefix of every new secret: 1 to 16 characters of a-z, 0-9 or '_'.
    #[arg(long, env = "TOKEND_TOKEN_PREFIX", default_value = "tkn_")]
    pub token_prefix: String,

    /// Lifetime of a token created without an expiration, such as 30d or 12h. Clamped to --max-ttl.
    #[arg(long, env = "TOKEND_DEFAULT_TTL", default_value = "30d", value_parser = parse_lifetime)]
    pub default_ttl: Duration,

    /// Maximum lifetime of a token, inclusive.
    #[arg(long, env = "TOKEND_MAX_TTL", default_value = "366d", value_parser = parse_lifetime)]
    pub max_ttl: Duration,

    /// Allow tokens that never expire.
    #[arg(long, env = "TOKEND_ALLOW_NO_EXPIRATION")]
    pub allow_no_expiration: bool,

    /// Maximum active (not revoked, not expired) tokens per owner; Generate fails with FAILED_PRECONDITION beyond it.
    #[arg(
        long,
        env = "TOKEND_MAX_ACTIVE_TOKENS_PER_OWNER",
        default_value_t = 1000
    )]
    pub max_active_tokens_per_owner: u64,

    /// Comma-separated scopes that may be granted besides the reserved tokens:* scopes. Default: any valid scope.
    #[arg(long, env = "TOKEND_ALLOWED_SCOPES", value_delimiter = ',')]
    pub allowed_scopes: Option<Vec<String>>,
}

/// The Validate cache and the last-used writer.
#[derive(Debug, Clone, Args)]
pub struct CacheArgs {
    /// Maximum cached token lookups; 0 turns the cache off.
    #[arg(long, env = "TOKEND_CACHE_CAPACITY", default_value_t = 100_000)]
    pub cache_capacity: u64,

    /// How long a known token stays cached, such as 10s. On PostgreSQL it
    /// bounds how long a revocation may take to reach a replica that missed the notice.
    #[arg(long, env = "TOKEND_CACHE_TTL", default_value = "10s", value_parser = humantime::parse_duration)]
    pub cache_ttl: Duration,

    /// How long an unknown token stays cached, such as 2s.
    #[arg(long, env = "TOKEND_CACHE_NEGATIVE_TTL", default_value = "2s", value_parser = humantime::parse_duration)]
    pub cache_negative_ttl: Duration,
}

impl CacheArgs {
    /// Returns the cache settings.
    pub fn settings(&self) -> CacheSettings {
        CacheSettings {
            capacity: self.cache_capacity,
            ttl: self.cache_ttl,
            negative_ttl: self.cache_negative_ttl,
        }
    }
}

impl Default for PolicyArgs {
    fn default() -> Self {
        Self {
            token_prefix: "tkn_".to_owned(),
            default_ttl: Duration::from_secs(30 * 86_400),
            max_ttl: Duration::from_secs(366 * 86_400),
            allow_no_expiration: false,
            max_active_tokens_per_owner: 1000,
            allowed_scopes: None,
        }
    }
}

/// Parses a lifetime such as `30d`, `12h` or `90m`; it must be at least one second.
fn parse_lifetime(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text)
        .map_err(|error| format!("{error}; use a form such as 30d, 12h or 90m"))?;
    if duration.as_secs() == 0 {
        return Err("the lifetime must be at least 1s".to_owned());
    }
    if duration.as_secs() > 10_000 * 366 * 86_400 {
        return Err("the lifetime must be at most 10000 years".to_owned());
    }
    Ok(duration)
}

impl PolicyArgs {
    /// Builds the policy and the token format.
    ///
    /// # Errors
    ///
    /// Returns an error naming the invalid setting.
    pub fn build(&self) -> anyhow::Result<(Policy, TokenFormat)> {
        let format = TokenFormat::new(&self.token_prefix).context("--token-prefix")?;
        let lifetime = LifetimePolicy::new(
            self.default_ttl.as_secs() as i64,
            self.max_ttl.as_secs() as i64,
            self.allow_no_expiration,
        );
        if self.default_ttl > self.max_ttl {
            tracing::warn!(
                default_ttl = ?self.default_ttl,
                max_ttl = ?self.max_ttl,
                "default lifetime is longer than the maximum; using the maximum as the default"
            );
        }
        let allowed_scopes = match &self.allowed_scopes {
            None => None,
            Some(list) => {
                let parsed = crate::domain::ScopeSet::parse(list).context("--allowed-scopes")?;
                Some(parsed.iter().map(str::to_owned).collect::<BTreeSet<_>>())
            }
        };
        Ok((
            Policy {
                lifetime,
                allowed_scopes,
                max_active_per_owner: self.max_active_tokens_per_owner,
            },
            format,
        ))
    }
}

impl StorageArgs {
    /// Returns the database URL: the given one, or the SQLite file in the data directory.
    ///
    /// # Errors
    ///
    /// Returns an error when the data directory cannot be created.
    pub fn database_url(&self) -> anyhow::Result<String> {
        if let Some(url) = &self.database_url {
            return Ok(url.clone());
        }
        create_data_dir(&self.data_dir)?;
        let path = self.data_dir.join(DATABASE_FILE_NAME);
        Ok(format!("sqlite://{}?mode=rwc", path.display()))
    }

    /// Opens the database pool and applies pending migrations.
    ///
    /// # Errors
    ///
    /// Returns an error when the database cannot be opened or migrated.
    pub async fn open_store(&self) -> anyhow::Result<TokenStore> {
        let url = self.database_url()?;
        // On PostgreSQL the revocation listener keeps one pooled connection,
        // so a pool of one would leave no connection for queries.
        let minimum = if url.starts_with("sqlite:") { 1 } else { 2 };
        if self.database_max_connections < minimum {
            anyhow::bail!(
                "--database-max-connections {} is too small: {} needs at least {minimum}",
                self.database_max_connections,
                engine_name(&url)
            );
        }
        let store = storage::connect(
            &url,
            PoolSettings {
                max_connections: self.database_max_connections,
                ..PoolSettings::default()
            },
        )
        .await
        .with_context(|| format!("failed to open the {} database", engine_name(&url)))?;
        store
            .migrate()
            .await
            .context("failed to apply migrations")?;
        tracing::info!(engine = ?store.engine(), "database ready, migrations applied");
        Ok(store)
    }

    /// Loads the hashing key from `--hashing-key-file`, `TOKEND_HASHING_KEY`
    /// or `hashing.key` in the data directory, in that order.
    ///
    /// With the embedded SQLite database a missing key file is created. With
    /// an external database it is not, because every replica and every admin
    /// command must use the same key: a new key would make tokens that no
    /// replica accepts.
    ///
    /// # Errors
    ///
    /// Returns an error when the key cannot be read, parsed or created, or
    /// when an external database has no configured key.
    pub fn hashing_key(&self) -> anyhow::Result<HashingKey> {
        if let Some(path) = &self.hashing_key_file {
            return read_key(path);
        }
        if let Ok(hex) = std::env::var("TOKEND_HASHING_KEY") {
            return HashingKey::from_hex(&hex)
                .map_err(|message| anyhow::anyhow!("TOKEND_HASHING_KEY: {message}"));
        }
        let path = self.data_dir.join(KEY_FILE_NAME);
        if path.exists() {
            return read_key(&path);
        }
        if self.database_url.is_some() {
            bail!(
                "no hashing key for the external database: pass --hashing-key-file or set TOKEND_HASHING_KEY \
                 (64 hex characters), the same on every replica and admin command; \
                 create one with: od -An -tx1 -N32 /dev/urandom | tr -d ' \\n'"
            );
        }
        create_data_dir(&self.data_dir)?;
        create_key(&path)
    }

    /// Opens the store and builds the token operations with `policy`.
    ///
    /// # Errors
    ///
    /// Returns an error for an invalid setting or an unreachable database.
    pub async fn build_manager(
        &self,
        policy: &PolicyArgs,
        cache: CacheSettings,
    ) -> anyhow::Result<TokenManager> {
        let (policy, format) = policy.build()?;
        let key = self.hashing_key()?;
        let previous = self
            .previous_hashing_key_files
            .iter()
            .map(|path| read_key(path))
            .collect::<anyhow::Result<Vec<_>>>()
            .context("--previous-hashing-key-files")?;
        if !previous.is_empty() {
            tracing::info!(
                previous_keys = previous.len(),
                "accepting tokens hashed under previous keys"
            );
        }
        let store = self.open_store().await?;
        Ok(TokenManager::new(
            store,
            TokenHasher::with_previous(key, previous),
            format,
            policy,
            Arc::new(SystemClock),
            cache,
        ))
    }
}

/// Creates the data directory readable only by its owner, because the
/// database lists every owner and token name.
fn create_data_dir(dir: &Path) -> anyhow::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .with_context(|| format!("failed to create data directory {}", dir.display()))
}

fn engine_name(url: &str) -> &'static str {
    if url.starts_with("sqlite:") {
        "SQLite"
    } else {
        "PostgreSQL"
    }
}

fn read_key(path: &Path) -> anyhow::Result<HashingKey> {
    let text = fs::read_to_string(path)
        .with_context(|| format!("failed to read hashing key file {}", path.display()))?;
    HashingKey::from_hex(&text).map_err(|message| anyhow::anyhow!("{}: {message}", path.display()))
}

/// Creates a key file readable only by its owner. `create_new` fails if
/// another process created the file first, so two first starts cannot end
/// with different keys.
fn create_key(path: &Path) -> anyhow::Result<HashingKey> {
    use rand::{TryRngCore, rngs::OsRng};

    let mut bytes = [0u8; KEY_LEN];
    OsRng
        .try_fill_bytes(&mut bytes)
        .map_err(|error| anyhow::anyhow!("no randomness from the operating system: {error}"))?;
    let key = HashingKey::from_bytes(bytes);
    zeroize::Zeroize::zeroize(&mut bytes);

    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = match options.open(path) {
        Ok(file) => file,
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => return read_key(path),
        Err(error) => bail!(
            "failed to create hashing key file {}: {error}",
            path.display()
        ),
    };
    file.write_all(key.to_hex().as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("failed to write hashing key file {}", path.display()))?;
    tracing::info!(path = %path.display(), "generated a new hashing key");
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetimes_parse_in_days() {
        assert_eq!(
            parse_lifetime("30d").unwrap(),
            Duration::from_secs(30 * 86_400)
        );
        assert_eq!(
            parse_lifetime("12h").unwrap(),
            Duration::from_secs(12 * 3_600)
        );
        assert!(parse_lifetime("0s").is_err());
        assert!(parse_lifetime("soon").is_err());
    }

    #[test]
    fn key_file_is_created_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(KEY_FILE_NAME);
        let first = create_key(&path).unwrap();
        let second = create_key(&path).unwrap();
        assert_eq!(*first.to_hex(), *second.to_hex());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
