//! Revoke: immediate, idempotent, one source of truth for every path.

use tokend::grpc::pb;
use tonic::Code;

use crate::common::*;

#[tokio::test]
async fn revoked_token_fails_next_validate() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let service = app.validator().await;
    let user = app
        .generate_for(&admin.secret, "u1", &["tokens:self"])
        .await;

    for _ in 0..3 {
        assert_eq!(
            app.validate_result(&service.secret, &user.secret).await,
            pb::ValidateResult::Valid
        );
    }
    app.revoke(&admin.secret, &user.id).await.unwrap();

    assert_eq!(
        app.validate_result(&service.secret, &user.secret).await,
        pb::ValidateResult::Revoked
    );
}

#[tokio::test]
async fn revoke_is_idempotent_on_every_path() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let service = app.validator().await;
    let by_user = app
        .generate_for(&admin.secret, "u1", &["tokens:self"])
        .await;
    let by_admin = app
        .generate_for(&admin.secret, "u1", &["tokens:self"])
        .await;

    let first_user = app.revoke(&by_user.secret, &by_user.id).await.unwrap();
    let first_admin = app.revoke(&admin.secret, &by_admin.id).await.unwrap();
    app.clock.advance_seconds(60);

    for (issued, first) in [(&by_user, &first_user), (&by_admin, &first_admin)] {
        for _ in 0..2 {
            let again = app.revoke(&admin.secret, &issued.id).await.unwrap();
            assert_eq!(
                again.revoked_at, first.revoked_at,
                "a repeat returns the original revoked_at"
            );
            assert_eq!(again.status(), pb::TokenStatus::Revoked);
        }
        assert_eq!(
            app.validate_result(&service.secret, &issued.secret).await,
            pb::ValidateResult::Revoked
        );
    }
    let listed = app
        .list(
            &admin.secret,
            pb::ListRequest {
                owner: "u1".into(),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert!(
        listed.tokens.is_empty(),
        "revoked tokens are gone from the default list"
    );
}

#[tokio::test]
async fn revoked_caller_is_unauthenticated() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let user = app
        .generate_for(&admin.secret, "u1", &["tokens:self"])
        .await;
    app.revoke(&user.secret, &user.id).await.unwrap();

    let message = expect_code(
        app.revoke(&user.secret, &user.id).await,
        Code::Unauthenticated,
    );
    assert!(message.contains("revoked"), "{message}");
}

#[tokio::test]
async fn revoked_listed_with_include_revoked() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let user = app
        .generate_for(&admin.secret, "u1", &["tokens:self"])
        .await;
    let kept = app
        .generate_for(&admin.secret, "u1", &["tokens:self"])
        .await;
    app.revoke(&admin.secret, &user.id).await.unwrap();

    let all = app
        .list(
            &kept.secret,
            pb::ListRequest {
                include_revoked: true,
                ..Default::default()
            },
        )
        .await
        .unwrap()
        .tokens;
    assert_eq!(all.len(), 2);
    let revoked = all.iter().find(|t| t.id == user.id).unwrap();
    assert_eq!(revoked.status(), pb::TokenStatus::Revoked);
    assert!(revoked.revoked_at.is_some());
}

#[tokio::test]
async fn concurrent_revokes_agree_on_time() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let user = app
        .generate_for(&admin.secret, "u1", &["tokens:self"])
        .await;

    let attempts = (0..8).map(|_| app.revoke(&admin.secret, &user.id));
    let results = futures::future::join_all(attempts).await;

    let times: Vec<_> = results.into_iter().map(|r| r.unwrap().revoked_at).collect();
    assert!(
        times.iter().all(|t| *t == times[0]),
        "every revoke returns one revoked_at: {times:?}"
    );
}
