//! What the database holds: digests only, behind a unique index that the
//! Validate lookup uses.

use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};
use tokend::{
    domain::{Digest, Owner, ScopeSet, Timestamp, TokenRecord},
    storage::NewToken,
};

use crate::common::*;

async fn texts(app: &TestApp, sql: &str) -> Vec<String> {
    let connection = app.manager.store().connection();
    let rows = connection
        .query_all_raw(Statement::from_string(
            connection.get_database_backend(),
            sql,
        ))
        .await
        .expect("query the test database");
    rows.iter()
        .map(|row| row.try_get_by_index::<String>(0).expect("a text column"))
        .collect()
}

#[tokio::test]
async fn database_never_holds_the_secret() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let user = app
        .generate_for(&admin.secret, "u1", &["tokens:self"])
        .await;
    let body = &user.secret[4..47];

    let stored = match app.database.sqlite_path() {
        Some(path) => {
            let mut bytes = Vec::new();
            for suffix in ["", "-wal", "-shm"] {
                let file = format!("{}{suffix}", path.display());
                if let Ok(content) = std::fs::read(&file) {
                    bytes.extend(content);
                }
            }
            assert!(!bytes.is_empty(), "the SQLite files exist");
            String::from_utf8_lossy(&bytes).into_owned()
        }
        None => texts(&app, "SELECT t::text FROM tokens t").await.join("\n"),
    };

    assert!(
        !stored.contains(&user.secret),
        "the database contains the secret"
    );
    assert!(
        !stored.contains(body),
        "the database contains the base62 body"
    );
    assert!(
        !stored.contains(&admin.secret),
        "the database contains the admin secret"
    );
}

#[tokio::test]
async fn digest_has_unique_index_used_by_lookup() {
    let app = spawn_app().await;
    app.admin().await;
    let connection = app.manager.store().connection();

    match connection.get_database_backend() {
        DbBackend::Sqlite => {
            let indexes = connection
                .query_all_raw(Statement::from_string(
                    DbBackend::Sqlite,
                    "PRAGMA index_list('tokens')",
                ))
                .await
                .unwrap();
            let digest_index = indexes
                .iter()
                .find(|row| row.try_get::<String>("", "name").unwrap() == "tokens_digest_key")
                .expect("tokens_digest_key exists");
            assert_eq!(digest_index.try_get::<i32>("", "unique").unwrap(), 1);

            let plan = connection
                .query_all_raw(Statement::from_string(
                    DbBackend::Sqlite,
                    "EXPLAIN QUERY PLAN SELECT * FROM tokens WHERE digest = x'00'",
                ))
                .await
                .unwrap();
            let detail: Vec<String> = plan
                .iter()
                .map(|row| row.try_get::<String>("", "detail").unwrap())
                .collect();
            assert!(
                detail
                    .iter()
                    .any(|d| d.contains("USING INDEX tokens_digest_key")),
                "plan: {detail:?}"
            );
        }
        DbBackend::Postgres => {
            let definitions = texts(
                &app,
                "SELECT indexdef FROM pg_indexes WHERE indexname = 'tokens_digest_key'",
            )
            .await;
            assert_eq!(definitions.len(), 1);
            assert!(
                definitions[0].starts_with("CREATE UNIQUE INDEX"),
                "{}",
                definitions[0]
            );

            // A tiny table makes a sequential scan cheapest, so the planner is
            // told to avoid it; the plan must then use the digest index.
            let transaction = connection.begin().await.unwrap();
            transaction
                .execute_unprepared("SET LOCAL enable_seqscan = off")
                .await
                .unwrap();
            let rows = transaction
                .query_all_raw(Statement::from_string(
                    DbBackend::Postgres,
                    "EXPLAIN SELECT * FROM tokens WHERE digest = '\\x00'::bytea",
                ))
                .await
                .unwrap();
            let plan: Vec<String> = rows
                .iter()
                .map(|row| row.try_get_by_index::<String>(0).unwrap())
                .collect();
            assert!(
                plan.iter().any(|line| line.contains("tokens_digest_key")),
                "plan: {plan:?}"
            );
        }
        other => panic!("unexpected backend {other:?}"),
    }
}

/// Inserts `count` tokens for one owner straight into the store.
async fn insert_tokens(app: &TestApp, count: usize) -> Vec<uuid::Uuid> {
    let now = app.clock.now();
    let tokens: Vec<NewToken> = (0..count)
        .map(|index| {
            let mut digest = [0u8; 32];
            digest[..8].copy_from_slice(&(index as u64).to_be_bytes());
            digest[8] = 0xa5;
            NewToken {
                record: TokenRecord {
                    id: uuid::Uuid::now_v7(),
                    owner: Owner::parse("batch-owner").unwrap(),
                    name: format!("batch {index}"),
                    scopes: ScopeSet::parse(&["read"]).unwrap(),
                    display_hint: "tkd_…abcd".into(),
                    created_at: now,
                    expires_at: None,
                    last_used_at: None,
                    revoked_at: None,
                },
                digest: Digest::from_bytes(digest),
            }
        })
        .collect();
    let store = app.manager.store();
    for chunk in tokens.chunks(500) {
        store.insert_many(chunk).await.expect("insert a batch");
    }
    tokens.iter().map(|token| token.record.id).collect()
}

/// Reads `last_used_at` and `revoked_at` of token `id`.
async fn use_and_revocation(app: &TestApp, id: uuid::Uuid) -> (Option<Timestamp>, bool) {
    let record = app
        .manager
        .store()
        .find_by_id(id, None)
        .await
        .expect("read a token")
        .expect("the token exists");
    (record.last_used_at, record.revoked_at.is_some())
}

#[tokio::test]
async fn last_used_batches_span_several_statements() {
    let app = spawn_app().await;
    let store = app.manager.store();
    // More tokens than one statement carries, so the batch is split.
    let ids = insert_tokens(&app, 2_345).await;
    let revoked = ids[1_500];
    store
        .revoke(revoked, None, app.clock.now())
        .await
        .expect("revoke one token");

    let now = app.clock.now();
    let later = now.checked_add_micros(60_000_000).unwrap();
    let earlier = now.checked_add_micros(30_000_000).unwrap();
    let uses: Vec<_> = ids.iter().map(|id| (*id, later)).collect();
    store.record_uses(&uses).await.expect("record uses");
    let older: Vec<_> = ids.iter().map(|id| (*id, earlier)).collect();
    store.record_uses(&older).await.expect("record older uses");

    for id in [ids[0], ids[999], ids[1_000], revoked, ids[2_344]] {
        let (last_used, is_revoked) = use_and_revocation(&app, id).await;
        assert_eq!(
            last_used,
            Some(later),
            "token {id} keeps the later use: an older one never moves it back"
        );
        assert_eq!(
            is_revoked,
            id == revoked,
            "a flush never changes revocation"
        );
    }
}
