//! What the database holds: digests only, behind a unique index that the
//! Validate lookup uses.

use sea_orm::{ConnectionTrait, DbBackend, Statement, TransactionTrait};

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
