//! The harness: a real server on a loopback port over a fresh database per
//! test, on the engine that `TOKEND_TEST_ENGINE` names.
//!
//! `TOKEND_TEST_ENGINE=sqlite` (the default) gives each test a SQLite file
//! in a temporary directory. `TOKEND_TEST_ENGINE=postgres` needs
//! `TOKEND_TEST_POSTGRES_URL`, a superuser URL of a throwaway cluster, and
//! creates one database per test on it.

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use sea_orm::{ConnectionTrait, Database};
pub use tokend::domain::Clock;
use tokend::{
    app,
    domain::{
        HashingKey, LifetimePolicy, ManualClock, Owner, ScopeSet, Timestamp, TokenFormat,
        TokenHasher, TokenName,
    },
    grpc::pb::{self, token_service_client::TokenServiceClient},
    service::{CacheSettings, Policy, TokenManager},
    storage::{self, TokenStore, connect::PoolSettings},
};
use tokio::{net::TcpListener, sync::oneshot, task::JoinHandle};
use tonic::{Code, Request, Status, transport::Channel};

/// Seconds in a day.
pub const DAY: i64 = 86_400;
/// 2026-06-01T00:00:00Z, where every test clock starts unless it says otherwise.
pub const START_SECONDS: i64 = 1_780_272_000;

/// The engine under test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// Reads the engine from `TOKEND_TEST_ENGINE`.
pub fn engine() -> Engine {
    match std::env::var("TOKEND_TEST_ENGINE").as_deref() {
        Ok("postgres") => Engine::Postgres,
        Ok("sqlite") | Err(_) => Engine::Sqlite,
        Ok(other) => panic!("TOKEND_TEST_ENGINE={other:?} is not sqlite or postgres"),
    }
}

/// A database for one test.
pub struct TestDatabase {
    /// URL the server connects to.
    pub url: String,
    /// Temporary directory with the SQLite file or the key file.
    pub dir: tempfile::TempDir,
}

impl TestDatabase {
    /// Creates an empty database on the engine under test.
    pub async fn create() -> Self {
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let url = match engine() {
            Engine::Sqlite => format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("tokend.db").display()
            ),
            Engine::Postgres => {
                let admin_url = std::env::var("TOKEND_TEST_POSTGRES_URL")
                    .expect("TOKEND_TEST_ENGINE=postgres needs TOKEND_TEST_POSTGRES_URL; run ./scripts/test.sh");
                let name = format!("tokend_test_{}", uuid::Uuid::now_v7().simple());
                let admin = Database::connect(admin_url.as_str())
                    .await
                    .expect("connect to the test cluster");
                admin
                    .execute_unprepared(&format!("CREATE DATABASE {name}"))
                    .await
                    .expect("create the test database");
                admin.close().await.expect("close the admin connection");
                let (base, query) = match admin_url.split_once('?') {
                    Some((base, query)) => (base, format!("?{query}")),
                    None => (admin_url.as_str(), String::new()),
                };
                let (server, _) = base.rsplit_once('/').expect("the URL names a database");
                format!("{server}/{name}{query}")
            }
        };
        Self { url, dir }
    }

    fn placeholder() -> Self {
        Self {
            url: String::new(),
            dir: tempfile::tempdir().expect("create a temporary directory"),
        }
    }

    /// Returns the SQLite file path, or `None` on PostgreSQL.
    pub fn sqlite_path(&self) -> Option<PathBuf> {
        (engine() == Engine::Sqlite).then(|| self.dir.path().join("tokend.db"))
    }
}

/// Settings a test may change.
#[derive(Debug, Clone)]
pub struct Settings {
    pub default_ttl_days: i64,
    pub max_ttl_days: i64,
    pub allow_no_expiration: bool,
    pub allowed_scopes: Option<Vec<String>>,
    pub start: Timestamp,
    pub cache: CacheSettings,
    pub max_active_per_owner: u64,
    /// Keys whose digests are still accepted, for rotation tests.
    pub previous_keys: Vec<HashingKey>,
    /// Long by default, so tests decide when last-used times are written.
    pub flush_interval: Duration,
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            default_ttl_days: 30,
            max_ttl_days: 366,
            allow_no_expiration: false,
            allowed_scopes: None,
            start: Timestamp::from_unix(START_SECONDS, 0).unwrap(),
            cache: CacheSettings::default(),
            max_active_per_owner: 1000,
            previous_keys: Vec::new(),
            flush_interval: Duration::from_secs(3600),
        }
    }
}

/// A running server with a controllable clock.
pub struct TestApp {
    pub address: SocketAddr,
    pub clock: Arc<ManualClock>,
    pub manager: TokenManager,
    pub database: TestDatabase,
    pub settings: Settings,
    key: HashingKey,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

/// Starts a server with default settings.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(Settings::default()).await
}

/// Starts a server with `settings` on a database the test created itself.
pub async fn spawn_app_on(database: TestDatabase, settings: Settings) -> TestApp {
    let clock = Arc::new(ManualClock::new(settings.start));
    let key = HashingKey::from_bytes(rand::random());
    start(database, settings, clock, key).await
}

/// Starts a server with `settings` on a fresh database.
pub async fn spawn_app_with(settings: Settings) -> TestApp {
    let database = TestDatabase::create().await;
    let clock = Arc::new(ManualClock::new(settings.start));
    let key = HashingKey::from_bytes(rand::random());
    start(database, settings, clock, key).await
}

async fn start(
    database: TestDatabase,
    settings: Settings,
    clock: Arc<ManualClock>,
    key: HashingKey,
) -> TestApp {
    let store = open_store(&database.url).await;
    let policy = Policy {
        lifetime: LifetimePolicy::new(
            settings.default_ttl_days * DAY,
            settings.max_ttl_days * DAY,
            settings.allow_no_expiration,
        ),
        allowed_scopes: settings
            .allowed_scopes
            .clone()
            .map(|list| list.into_iter().collect()),
        max_active_per_owner: settings.max_active_per_owner,
    };
    let manager = TokenManager::new(
        store,
        TokenHasher::with_previous(key.clone(), settings.previous_keys.clone()),
        TokenFormat::new("tkn_").unwrap(),
        policy,
        clock.clone(),
        settings.cache,
    );

    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let (shutdown, stop) = oneshot::channel::<()>();
    let flush_interval = settings.flush_interval;
    let served = manager.clone();
    let server = tokio::spawn(async move {
        let options = app::ServeOptions {
            health_interval: Duration::from_millis(200),
            flush_interval,
            shutdown_grace: Duration::from_secs(5),
            tls: None,
        };
        app::serve(served, listener, options, async {
            let _ = stop.await;
        })
        .await
        .expect("server runs");
    });

    TestApp {
        address,
        clock,
        manager,
        database,
        settings,
        key,
        shutdown: Some(shutdown),
        server: Some(server),
    }
}

/// Opens and migrates a store on `url`.
pub async fn open_store(url: &str) -> TokenStore {
    let store = storage::connect(url, PoolSettings::default())
        .await
        .expect("open the test database");
    store.migrate().await.expect("migrate the test database");
    store
}

/// Wraps a message with `authorization: Bearer <secret>`.
pub fn authed<T>(secret: &str, message: T) -> Request<T> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {secret}").parse().unwrap());
    request
}

/// A token a test created, with its secret.
#[derive(Debug, Clone)]
pub struct Issued {
    pub id: String,
    pub secret: String,
}

impl TestApp {
    /// Connects a generated client.
    pub async fn client(&self) -> TokenServiceClient<Channel> {
        TokenServiceClient::connect(format!("http://{}", self.address))
            .await
            .expect("connect to the test server")
    }

    /// Returns the server URL.
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Creates a token directly in the database, as `tokend admin create-token` does.
    pub async fn bootstrap(&self, owner: &str, scopes: &[&str]) -> Issued {
        let now = self.clock.now();
        let expires_at = now.checked_add_micros(30 * DAY * 1_000_000);
        let generated = self
            .manager
            .create(
                Owner::parse(owner).unwrap(),
                TokenName::parse("bootstrap").unwrap(),
                ScopeSet::parse(scopes).unwrap(),
                now,
                expires_at,
            )
            .await
            .expect("bootstrap a token");
        Issued {
            id: generated.record.id.to_string(),
            secret: generated.secret.expose().to_owned(),
        }
    }

    /// Creates an admin token.
    pub async fn admin(&self) -> Issued {
        self.bootstrap("admin", &["tokens:admin"]).await
    }

    /// Creates a service token that may call Validate.
    pub async fn validator(&self) -> Issued {
        self.bootstrap("svc:gateway", &["tokens:validate"]).await
    }

    /// Calls Generate.
    pub async fn generate(
        &self,
        caller: &str,
        request: pb::GenerateRequest,
    ) -> Result<pb::GenerateResponse, Status> {
        let mut client = self.client().await;
        client
            .generate(authed(caller, request))
            .await
            .map(|r| r.into_inner())
    }

    /// Generates a token named `name` with `scopes` and a ttl of `days`.
    pub async fn generate_simple(
        &self,
        caller: &str,
        name: &str,
        scopes: &[&str],
        days: i64,
    ) -> Issued {
        let response = self
            .generate(
                caller,
                pb::GenerateRequest {
                    name: name.to_owned(),
                    scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
                    expiration: Some(ttl_days(days)),
                    owner: String::new(),
                },
            )
            .await
            .expect("generate a token");
        Issued {
            id: response.token.unwrap().id,
            secret: response.secret,
        }
    }

    /// Generates a token for `owner` through an admin caller.
    pub async fn generate_for(&self, admin: &str, owner: &str, scopes: &[&str]) -> Issued {
        let response = self
            .generate(
                admin,
                pb::GenerateRequest {
                    name: format!("{owner} token"),
                    scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
                    expiration: None,
                    owner: owner.to_owned(),
                },
            )
            .await
            .expect("generate a token for an owner");
        Issued {
            id: response.token.unwrap().id,
            secret: response.secret,
        }
    }

    /// Calls List.
    pub async fn list(
        &self,
        caller: &str,
        request: pb::ListRequest,
    ) -> Result<pb::ListResponse, Status> {
        let mut client = self.client().await;
        client
            .list(authed(caller, request))
            .await
            .map(|r| r.into_inner())
    }

    /// Lists the caller's own tokens, first page.
    pub async fn list_own(&self, caller: &str) -> Vec<pb::Token> {
        self.list(caller, pb::ListRequest::default())
            .await
            .expect("list tokens")
            .tokens
    }

    /// Calls Revoke.
    pub async fn revoke(&self, caller: &str, id: &str) -> Result<pb::Token, Status> {
        let mut client = self.client().await;
        client
            .revoke(authed(caller, pb::RevokeRequest { id: id.to_owned() }))
            .await
            .map(|r| r.into_inner().token.unwrap())
    }

    /// Calls Validate.
    pub async fn validate(
        &self,
        caller: &str,
        token: &str,
        required: &[&str],
    ) -> Result<pb::ValidateResponse, Status> {
        let mut client = self.client().await;
        client
            .validate(authed(
                caller,
                pb::ValidateRequest {
                    token: token.to_owned(),
                    required_scopes: required.iter().map(|s| (*s).to_owned()).collect(),
                },
            ))
            .await
            .map(|r| r.into_inner())
    }

    /// Validates `token` and returns only the result.
    pub async fn validate_result(&self, caller: &str, token: &str) -> pb::ValidateResult {
        self.validate(caller, token, &[])
            .await
            .expect("validate")
            .result()
    }

    /// Writes pending last-used times now, as the periodic flush would.
    pub async fn flush(&self) {
        self.manager
            .flush_usage()
            .await
            .expect("flush last-used times");
    }

    /// Starts another server on the same database, key and clock, as a
    /// second replica behind a load balancer would run.
    pub async fn replica(&self) -> TestApp {
        let database = TestDatabase {
            url: self.database.url.clone(),
            dir: tempfile::tempdir().expect("create a temporary directory"),
        };
        start(
            database,
            self.settings.clone(),
            self.clock.clone(),
            self.key.clone(),
        )
        .await
    }

    /// Finds one token by id through an admin listing of every owner, after
    /// writing pending last-used times.
    pub async fn find(&self, admin: &str, id: &str) -> Option<pb::Token> {
        self.flush().await;
        let response = self
            .list(
                admin,
                pb::ListRequest {
                    page_size: 1000,
                    include_revoked: true,
                    ..Default::default()
                },
            )
            .await
            .expect("list every token");
        response.tokens.into_iter().find(|t| t.id == id)
    }

    /// Stops the server and starts a new one on the same database, key and clock.
    pub async fn restart(self) -> TestApp {
        let settings = self.settings.clone();
        self.restart_with(settings).await
    }

    /// Restarts like [`TestApp::restart`] with other settings.
    pub async fn restart_with(mut self, settings: Settings) -> TestApp {
        self.stop().await;
        let database = std::mem::replace(&mut self.database, TestDatabase::placeholder());
        start(database, settings, self.clock.clone(), self.key.clone()).await
    }

    /// Restarts with `key` as the current hashing key and `previous` keys.
    pub async fn restart_with_keys(
        mut self,
        key: HashingKey,
        previous: Vec<HashingKey>,
    ) -> TestApp {
        self.stop().await;
        let database = std::mem::replace(&mut self.database, TestDatabase::placeholder());
        let settings = Settings {
            previous_keys: previous,
            ..self.settings.clone()
        };
        start(database, settings, self.clock.clone(), key).await
    }

    /// Returns the current hashing key.
    pub fn key(&self) -> HashingKey {
        self.key.clone()
    }

    /// Stops the server gracefully and waits for it.
    pub async fn stop(&mut self) {
        if let Some(shutdown) = self.shutdown.take() {
            let _ = shutdown.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task ends cleanly");
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

/// An expiration of `days` days.
pub fn ttl_days(days: i64) -> pb::generate_request::Expiration {
    ttl_seconds(days * DAY)
}

/// An expiration of `seconds` seconds.
pub fn ttl_seconds(seconds: i64) -> pb::generate_request::Expiration {
    pb::generate_request::Expiration::Ttl(prost_types::Duration { seconds, nanos: 0 })
}

/// Asserts that `result` failed with `code`, and returns the message.
pub fn expect_code<T: std::fmt::Debug>(result: Result<T, Status>, code: Code) -> String {
    match result {
        Ok(value) => panic!("expected {code:?}, got OK: {value:?}"),
        Err(status) => {
            assert_eq!(status.code(), code, "message: {}", status.message());
            status.message().to_owned()
        }
    }
}

/// Returns the protobuf timestamp of `seconds` after the test start.
pub fn at_offset(start: Timestamp, seconds: i64) -> prost_types::Timestamp {
    let (s, n) = start
        .checked_add_micros(seconds * 1_000_000)
        .unwrap()
        .to_unix();
    prost_types::Timestamp {
        seconds: s,
        nanos: n,
    }
}
