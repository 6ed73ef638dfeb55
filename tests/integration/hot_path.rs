//! The Validate hot path: cache, coalesced last-used writes, and
//! revocation across replicas.

use std::time::{Duration, Instant};

use tokend::{grpc::pb, service::CacheSettings};

use crate::{
    common::*,
    process::{self, Server, admin_create, tokend},
};

#[tokio::test]
async fn cached_token_expires_by_clock() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let service = app.validator().await;
    let user = app.generate_simple(&admin.secret, "short", &[], 1).await;

    assert_eq!(
        app.validate_result(&service.secret, &user.secret).await,
        pb::ValidateResult::Valid
    );
    app.clock.advance_seconds(DAY);

    assert_eq!(
        app.validate_result(&service.secret, &user.secret).await,
        pb::ValidateResult::Expired
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn concurrent_validations_write_once() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let service = app.validator().await;
    let user = app.generate_for(&admin.secret, "u1", &["repo:read"]).await;
    app.flush().await;

    let deadline = Instant::now() + Duration::from_secs(2);
    let client = app.client().await;
    let workers = (0..500).map(|_| {
        let (service, user) = (service.secret.clone(), user.secret.clone());
        // Clones share one HTTP/2 connection, as a service's client would.
        let mut client = client.clone();
        async move {
            let mut results = Vec::new();
            while Instant::now() < deadline {
                let request = pb::ValidateRequest {
                    token: user.clone(),
                    required_scopes: vec!["repo:read".into()],
                };
                let response = client.validate(authed(&service, request)).await;
                results.push(
                    response
                        .map(|r| r.into_inner().result())
                        .map_err(|s| s.code()),
                );
            }
            results
        }
    });
    let results: Vec<_> = futures::future::join_all(workers)
        .await
        .into_iter()
        .flatten()
        .collect();

    assert!(results.len() >= 500, "every worker made at least one call");
    let failures: Vec<_> = results
        .iter()
        .filter(|r| **r != Ok(pb::ValidateResult::Valid))
        .collect();
    assert!(
        failures.is_empty(),
        "{} of {} calls were not VALID: {:?}",
        failures.len(),
        results.len(),
        &failures[..failures.len().min(5)]
    );
    let written = app.manager.flush_usage().await.unwrap();
    assert_eq!(
        written, 2,
        "one pending row each for the validated token and the caller"
    );
}

#[tokio::test]
async fn flush_after_revoke_keeps_revocation() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let service = app.validator().await;
    let user = app.generate_for(&admin.secret, "u1", &[]).await;

    app.clock.advance_seconds(5);
    let used_at = at_offset(app.clock.now(), 0);
    assert_eq!(
        app.validate_result(&service.secret, &user.secret).await,
        pb::ValidateResult::Valid
    );
    app.revoke(&admin.secret, &user.id).await.unwrap();
    app.flush().await;

    let token = app.find(&admin.secret, &user.id).await.unwrap();
    assert_eq!(token.status(), pb::TokenStatus::Revoked);
    assert!(token.revoked_at.is_some());
    assert_eq!(
        token.last_used_at,
        Some(used_at),
        "the use before the revocation is kept"
    );
    assert_eq!(
        app.validate_result(&service.secret, &user.secret).await,
        pb::ValidateResult::Revoked
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn last_used_flushed_on_sigterm() {
    let database = TestDatabase::create().await;
    let (_, admin) = admin_create(&database, "admin", &["tokens:admin"]);
    let (user_id, user) = admin_create(&database, "alice", &[]);
    let (_, service) = admin_create(&database, "svc", &["tokens:validate"]);
    let server = Server::start(&database, &["--last-used-flush-interval", "1h"], &[]);
    let validated = tokend(
        &["token", "validate", "--server", &server.url, &user],
        Some(&service),
        None,
    );
    assert_eq!(validated.status.code(), Some(0));
    assert!(server.stop(), "SIGTERM exits 0");

    let server = Server::start(&database, &[], &[]);
    let token = process::list_owner(&server, &admin, "alice")
        .into_iter()
        .find(|t| t["id"] == user_id.as_str())
        .unwrap();
    assert!(
        token["last_used_at"].is_string(),
        "the shutdown flush wrote last_used_at: {token}"
    );
    drop(process::data_dir(&database));
}

/// Polls `check` every 20 ms until it returns true or `limit` passes.
async fn eventually(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    None
}

#[tokio::test]
async fn revocation_reaches_every_replica() {
    if engine() != Engine::Postgres {
        eprintln!("replicas share one PostgreSQL database; nothing to check on SQLite");
        return;
    }
    let first = spawn_app().await;
    let second = first.replica().await;
    let third = first.replica().await;
    let admin = first.admin().await;
    let service = first.validator().await;
    let user = first.generate_for(&admin.secret, "u1", &[]).await;
    for replica in [&first, &second, &third] {
        assert_eq!(
            replica.validate_result(&service.secret, &user.secret).await,
            pb::ValidateResult::Valid
        );
    }

    first.revoke(&admin.secret, &user.id).await.unwrap();

    assert_eq!(
        first.validate_result(&service.secret, &user.secret).await,
        pb::ValidateResult::Revoked
    );
    for replica in [&second, &third] {
        let seen = eventually(Duration::from_secs(5), async || {
            replica.validate_result(&service.secret, &user.secret).await
                == pb::ValidateResult::Revoked
        })
        .await;
        assert!(
            seen.is_some(),
            "a replica still answers VALID 5 s after the revocation"
        );
    }
}

#[tokio::test]
async fn lost_notice_bounded_by_cache_ttl() {
    if engine() != Engine::Postgres {
        eprintln!("replicas share one PostgreSQL database; nothing to check on SQLite");
        return;
    }
    let settings = Settings {
        cache: CacheSettings {
            ttl: Duration::from_secs(1),
            ..CacheSettings::default()
        },
        ..Settings::default()
    };
    let first = spawn_app_with(settings).await;
    let second = first.replica().await;
    let admin = first.admin().await;
    let service = first.validator().await;
    let user = first.generate_for(&admin.secret, "u1", &[]).await;
    assert_eq!(
        second.validate_result(&service.secret, &user.secret).await,
        pb::ValidateResult::Valid
    );

    // Cut every listener connection, as a network fault or a failover would.
    use sea_orm::ConnectionTrait;
    first
        .manager
        .store()
        .connection()
        .execute_unprepared(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query LIKE 'LISTEN%' AND pid <> pg_backend_pid()",
        )
        .await
        .unwrap();
    first.revoke(&admin.secret, &user.id).await.unwrap();

    let seen = eventually(Duration::from_secs(10), async || {
        second.validate_result(&service.secret, &user.secret).await == pb::ValidateResult::Revoked
    })
    .await;
    assert!(
        seen.is_some(),
        "the replica answered VALID beyond the cache lifetime"
    );
}
