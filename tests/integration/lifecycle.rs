//! The token lifecycle through the generated client, and persistence.

use tokend::grpc::pb;

use crate::common::*;

#[tokio::test]
async fn lifecycle_generate_list_validate_revoke() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let service = app.validator().await;

    let user = app
        .generate_for(&admin.secret, "alice", &["tokens:self", "repo:read"])
        .await;
    let listed = app.list_own(&user.secret).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].id, user.id);
    assert_eq!(listed[0].owner, "alice");
    assert_eq!(listed[0].status(), pb::TokenStatus::Active);

    let response = app
        .validate(&service.secret, &user.secret, &["repo:read"])
        .await
        .unwrap();
    assert!(response.valid);
    assert_eq!(response.result(), pb::ValidateResult::Valid);
    let token = response.token.unwrap();
    assert_eq!(token.owner, "alice");
    assert_eq!(token.scopes, ["repo:read", "tokens:self"]);

    let revoked = app.revoke(&admin.secret, &user.id).await.unwrap();
    assert!(revoked.revoked_at.is_some());
    assert_eq!(revoked.status(), pb::TokenStatus::Revoked);
    assert_eq!(
        app.validate_result(&service.secret, &user.secret).await,
        pb::ValidateResult::Revoked
    );
}

#[tokio::test]
async fn secret_is_returned_only_by_generate() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let service = app.validator().await;
    let user = app
        .generate_for(&admin.secret, "alice", &["tokens:self"])
        .await;
    let body = &user.secret[4..47];

    let listed = app
        .list(
            &admin.secret,
            pb::ListRequest {
                include_revoked: true,
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let validated = app
        .validate(&service.secret, &user.secret, &[])
        .await
        .unwrap();
    let revoked = app.revoke(&user.secret, &user.id).await.unwrap();

    for text in [
        format!("{listed:?}"),
        format!("{validated:?}"),
        format!("{revoked:?}"),
    ] {
        assert!(
            !text.contains(&user.secret),
            "a response after Generate contains the secret"
        );
        assert!(
            !text.contains(body),
            "a response after Generate contains the base62 body"
        );
    }
}

#[tokio::test]
async fn generate_returns_metadata_and_hint() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let response = app
        .generate(
            &admin.secret,
            pb::GenerateRequest {
                name: "ci deploy".into(),
                scopes: vec!["repo:write".into(), "repo:read".into(), "repo:read".into()],
                expiration: Some(ttl_days(7)),
                owner: "bob".into(),
            },
        )
        .await
        .unwrap();
    let token = response.token.unwrap();
    assert_eq!(token.name, "ci deploy");
    assert_eq!(token.owner, "bob");
    assert_eq!(token.scopes, ["repo:read", "repo:write"]);
    assert_eq!(
        token.display_hint,
        format!("tkn_…{}", &response.secret[response.secret.len() - 4..])
    );
    assert!(token.last_used_at.is_none());
    assert!(token.revoked_at.is_none());
    assert_eq!(response.secret.len(), 53);
}

#[tokio::test]
async fn generate_never_overwrites_same_name() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let first = app
        .generate_for(&admin.secret, "alice", &["tokens:self"])
        .await;
    let second = app
        .generate_for(&admin.secret, "alice", &["tokens:self"])
        .await;
    assert_ne!(first.id, second.id);
    assert_ne!(first.secret, second.secret);
    assert_eq!(app.list_own(&first.secret).await.len(), 2);
}

#[tokio::test]
async fn token_survives_restart() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let service = app.validator().await;
    let user = app
        .generate_for(&admin.secret, "alice", &["tokens:self"])
        .await;

    let app = app.restart().await;

    assert_eq!(
        app.validate_result(&service.secret, &user.secret).await,
        pb::ValidateResult::Valid
    );
    assert_eq!(app.list_own(&user.secret).await[0].id, user.id);
}

#[tokio::test]
async fn health_reports_serving() {
    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };

    let app = spawn_app().await;
    let channel = tonic::transport::Channel::from_shared(app.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut health = HealthClient::new(channel);
    let mut status = ServingStatus::Unknown;
    // The first database ping runs right after start; allow a few intervals.
    for _ in 0..50 {
        status = health
            .check(HealthCheckRequest {
                service: String::new(),
            })
            .await
            .unwrap()
            .into_inner()
            .status();
        if status == ServingStatus::Serving {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, ServingStatus::Serving);
}
