//! last_used_at: set by successful validations only, on the right token.

use tokend::grpc::pb;

use crate::common::*;

#[tokio::test]
async fn never_used_until_first_valid() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let service = app.validator().await;
    let user = app.generate_for(&admin.secret, "u1", &["repo:read"]).await;

    let token = app.find(&admin.secret, &user.id).await.unwrap();
    assert!(token.last_used_at.is_none());

    let insufficient = app
        .validate(&service.secret, &user.secret, &["repo:write"])
        .await
        .unwrap();
    assert_eq!(insufficient.result(), pb::ValidateResult::InsufficientScope);
    assert!(
        app.find(&admin.secret, &user.id)
            .await
            .unwrap()
            .last_used_at
            .is_none()
    );

    app.clock.advance_seconds(10);
    let expected = at_offset(app.clock.now(), 0);
    assert_eq!(
        app.validate_result(&service.secret, &user.secret).await,
        pb::ValidateResult::Valid
    );
    assert_eq!(
        app.find(&admin.secret, &user.id)
            .await
            .unwrap()
            .last_used_at,
        Some(expected)
    );
}

#[tokio::test]
async fn side_effects_follow_the_right_token() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let service = app.validator().await;
    let a = app.generate_for(&admin.secret, "u1", &[]).await;
    let b = app.generate_for(&admin.secret, "u1", &[]).await;
    let wrong = app.generate_for(&admin.secret, "u2", &[]).await;
    app.revoke(&admin.secret, &wrong.id).await.unwrap();

    app.clock.advance_seconds(5);
    let first_use = at_offset(app.clock.now(), 0);
    assert_eq!(
        app.validate_result(&service.secret, &a.secret).await,
        pb::ValidateResult::Valid
    );

    app.clock.advance_seconds(5);
    let mut changed = a.secret.clone().into_bytes();
    changed[20] = if changed[20] == b'x' { b'y' } else { b'x' };
    let changed = String::from_utf8(changed).unwrap();
    assert_eq!(
        app.validate_result(&service.secret, &changed).await,
        pb::ValidateResult::Malformed
    );
    assert_eq!(
        app.validate_result(&service.secret, &wrong.secret).await,
        pb::ValidateResult::Revoked
    );

    app.revoke(&admin.secret, &a.id).await.unwrap();
    app.clock.advance_seconds(5);
    assert_eq!(
        app.validate_result(&service.secret, &a.secret).await,
        pb::ValidateResult::Revoked
    );

    let a_now = app.find(&admin.secret, &a.id).await.unwrap();
    assert_eq!(a_now.last_used_at, Some(first_use));
    let b_now = app.find(&admin.secret, &b.id).await.unwrap();
    assert!(b_now.last_used_at.is_none());
    let wrong_now = app.find(&admin.secret, &wrong.id).await.unwrap();
    assert!(wrong_now.last_used_at.is_none());
}

#[tokio::test]
async fn last_used_never_moves_backwards() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let service = app.validator().await;
    let user = app.generate_for(&admin.secret, "u1", &[]).await;

    app.clock.advance_seconds(100);
    let latest = at_offset(app.clock.now(), 0);
    app.validate_result(&service.secret, &user.secret).await;
    app.clock.advance_seconds(-50);
    app.validate_result(&service.secret, &user.secret).await;

    assert_eq!(
        app.find(&admin.secret, &user.id)
            .await
            .unwrap()
            .last_used_at,
        Some(latest)
    );
}
