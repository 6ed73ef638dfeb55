//! Database outages: tokend fails closed while the database is gone and
//! recovers on its own once it is back.

use std::{
    path::Path,
    process::Command,
    time::{Duration, Instant},
};

use tokend::grpc::pb;
use tonic::Code;
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

use crate::common::*;

/// A PostgreSQL cluster of this test's own, so stopping it disturbs no other test.
struct PrivateCluster {
    state: tempfile::TempDir,
}

impl PrivateCluster {
    fn script(&self, command: &str) -> String {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/postgres.sh");
        let output = Command::new(script)
            .arg(command)
            .env("TOKEND_PG_STATE", self.state.path().join("state"))
            .output()
            .expect("run scripts/postgres.sh");
        assert!(
            output.status.success(),
            "postgres.sh {command}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap().trim().to_owned()
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let _ = std::panic::catch_unwind(|| self.script("stop"));
    }
}

pub async fn health(app: &TestApp) -> ServingStatus {
    let Ok(channel) = tonic::transport::Channel::from_shared(app.url())
        .unwrap()
        .connect()
        .await
    else {
        return ServingStatus::Unknown;
    };
    match HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: String::new(),
        })
        .await
    {
        Ok(response) => response.into_inner().status(),
        Err(_) => ServingStatus::Unknown,
    }
}

/// Polls the health service until it reports `expected`, and returns how long that took.
pub async fn health_becomes(
    app: &TestApp,
    expected: ServingStatus,
    limit: Duration,
) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if health(app).await == expected {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    None
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_outage_fails_closed_and_recovers() {
    if engine() != Engine::Postgres {
        eprintln!(
            "stopping the database server applies to PostgreSQL; SQLite locks are covered in hostile.rs"
        );
        return;
    }
    let cluster = PrivateCluster {
        state: tempfile::tempdir().unwrap(),
    };
    let url = cluster.script("start");
    let database = TestDatabase {
        url,
        dir: tempfile::tempdir().unwrap(),
    };
    let app = spawn_app_on(database, Settings::default()).await;
    let admin = app.admin().await;
    let service = app.validator().await;
    let cached = app
        .generate_for(&admin.secret, "u1", &["tokens:self"])
        .await;
    let uncached = app.generate_for(&admin.secret, "u1", &[]).await;
    assert_eq!(
        app.validate_result(&service.secret, &cached.secret).await,
        pb::ValidateResult::Valid
    );
    assert_eq!(
        app.validate_result(&admin.secret, &cached.secret).await,
        pb::ValidateResult::Valid
    );
    assert!(
        health_becomes(&app, ServingStatus::Serving, Duration::from_secs(5))
            .await
            .is_some()
    );

    cluster.script("pause");

    let flipped = health_becomes(&app, ServingStatus::NotServing, Duration::from_secs(2)).await;
    assert!(
        flipped.is_some(),
        "health did not report NOT_SERVING within 2 s"
    );
    let message = expect_code(
        app.validate(&service.secret, &uncached.secret, &[]).await,
        Code::Unavailable,
    );
    assert!(!message.contains(&uncached.secret));
    let request = pb::GenerateRequest {
        name: "during outage".into(),
        owner: "u1".into(),
        ..Default::default()
    };
    expect_code(
        app.generate(&admin.secret, request.clone()).await,
        Code::Unavailable,
    );
    expect_code(
        app.revoke(&admin.secret, &cached.id).await,
        Code::Unavailable,
    );
    // A token validated shortly before the outage is answered from the cache
    // until its entry expires.
    assert_eq!(
        app.validate_result(&service.secret, &cached.secret).await,
        pb::ValidateResult::Valid
    );

    cluster.script("resume");

    assert!(
        health_becomes(&app, ServingStatus::Serving, Duration::from_secs(10))
            .await
            .is_some(),
        "health did not return to SERVING after the database came back"
    );
    assert_eq!(
        app.validate_result(&service.secret, &uncached.secret).await,
        pb::ValidateResult::Valid
    );
    assert!(app.generate(&admin.secret, request).await.is_ok());
    assert!(app.revoke(&admin.secret, &cached.id).await.is_ok());
    assert_eq!(
        app.validate_result(&service.secret, &cached.secret).await,
        pb::ValidateResult::Revoked
    );
}
