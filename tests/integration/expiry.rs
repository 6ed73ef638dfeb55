//! Lifetimes and expiry with a clock the test controls.

use tokend::{domain::Timestamp, grpc::pb};
use tonic::Code;

use crate::common::*;

fn request(expiration: Option<pb::generate_request::Expiration>) -> pb::GenerateRequest {
    pb::GenerateRequest {
        name: "expiry".into(),
        scopes: vec!["tokens:self".into()],
        expiration,
        owner: String::new(),
    }
}

fn seconds_between(token: &pb::Token) -> i64 {
    let created = token.created_at.unwrap();
    let expires = token.expires_at.unwrap();
    assert_eq!(
        created.nanos, expires.nanos,
        "expiry keeps the sub-second part of now"
    );
    expires.seconds - created.seconds
}

#[tokio::test]
async fn ttl_is_exact_days_across_dst_and_leap_day() {
    // 2027-03-28T00:59:59Z is one second before British Summer Time starts.
    let app = spawn_app_with(Settings {
        max_ttl_days: 60,
        start: Timestamp::from_unix(1_806_195_599, 0).unwrap(),
        ..Settings::default()
    })
    .await;
    let user = app.bootstrap("u1", &["tokens:self"]).await;
    let token = app
        .generate(&user.secret, request(Some(ttl_days(60))))
        .await
        .unwrap()
        .token
        .unwrap();
    assert_eq!(seconds_between(&token), 60 * DAY);
    assert_eq!(token.created_at.unwrap().seconds, 1_806_195_599);

    // 2028-02-29T12:00:00Z, a leap day.
    let app = app
        .restart_with(Settings {
            max_ttl_days: 366,
            ..Settings::default()
        })
        .await;
    app.clock
        .set(Timestamp::from_unix(1_835_438_400, 0).unwrap());
    let user = app.bootstrap("u1", &["tokens:self"]).await;
    let token = app
        .generate(&user.secret, request(Some(ttl_days(365))))
        .await
        .unwrap()
        .token
        .unwrap();
    assert_eq!(seconds_between(&token), 365 * DAY);
}

#[tokio::test]
async fn max_lifetime_is_inclusive_and_default_clamped() {
    let app = spawn_app_with(Settings {
        default_ttl_days: 60,
        max_ttl_days: 40,
        ..Settings::default()
    })
    .await;
    let user = app.bootstrap("u1", &["tokens:self"]).await;

    for days in [1, 39, 40] {
        let token = app
            .generate(&user.secret, request(Some(ttl_days(days))))
            .await
            .unwrap()
            .token
            .unwrap();
        assert_eq!(seconds_between(&token), days * DAY, "ttl {days} days");
    }
    let token = app
        .generate(&user.secret, request(None))
        .await
        .unwrap()
        .token
        .unwrap();
    assert_eq!(
        seconds_between(&token),
        40 * DAY,
        "the default is clamped to the maximum"
    );

    let message = expect_code(
        app.generate(&user.secret, request(Some(ttl_days(41))))
            .await,
        Code::InvalidArgument,
    );
    assert!(message.contains("40 days"), "{message}");
    assert!(message.contains("ttl"), "{message}");

    let exact = at_offset(app.clock.now(), 40 * DAY);
    let expires = pb::generate_request::Expiration::ExpiresAt(exact);
    assert!(
        app.generate(&user.secret, request(Some(expires)))
            .await
            .is_ok()
    );
    let later = prost_types::Timestamp {
        seconds: exact.seconds + 1,
        ..exact
    };
    let expires = pb::generate_request::Expiration::ExpiresAt(later);
    expect_code(
        app.generate(&user.secret, request(Some(expires))).await,
        Code::InvalidArgument,
    );
}

#[tokio::test]
async fn default_lifetime_is_thirty_days() {
    let app = spawn_app().await;
    let user = app.bootstrap("u1", &["tokens:self"]).await;
    let token = app
        .generate(&user.secret, request(None))
        .await
        .unwrap()
        .token
        .unwrap();
    assert_eq!(seconds_between(&token), 30 * DAY);
}

#[tokio::test]
async fn past_or_present_expiry_is_rejected() {
    let app = spawn_app().await;
    let user = app.bootstrap("u1", &["tokens:self"]).await;
    let before = app.list_own(&user.secret).await;

    for offset in [-1, 0] {
        let expires =
            pb::generate_request::Expiration::ExpiresAt(at_offset(app.clock.now(), offset));
        let message = expect_code(
            app.generate(&user.secret, request(Some(expires))).await,
            Code::InvalidArgument,
        );
        assert!(message.contains("expires_at"), "{message}");
    }
    for seconds in [0, -1] {
        expect_code(
            app.generate(&user.secret, request(Some(ttl_seconds(seconds))))
                .await,
            Code::InvalidArgument,
        );
    }

    assert_eq!(app.list_own(&user.secret).await, before);
}

#[tokio::test]
async fn out_of_range_values_are_invalid() {
    let app = spawn_app().await;
    let user = app.bootstrap("u1", &["tokens:self"]).await;
    let cases = [
        pb::generate_request::Expiration::Ttl(prost_types::Duration {
            seconds: i64::MAX,
            nanos: 999_999_999,
        }),
        pb::generate_request::Expiration::Ttl(prost_types::Duration {
            seconds: 1,
            nanos: -1,
        }),
        pb::generate_request::Expiration::ExpiresAt(prost_types::Timestamp {
            seconds: 253_402_300_800,
            nanos: 0,
        }),
        pb::generate_request::Expiration::ExpiresAt(prost_types::Timestamp {
            seconds: i64::MIN,
            nanos: 0,
        }),
        pb::generate_request::Expiration::ExpiresAt(prost_types::Timestamp {
            seconds: 0,
            nanos: -1,
        }),
        pb::generate_request::Expiration::NoExpiration(false),
    ];
    for expiration in cases {
        let result = app.generate(&user.secret, request(Some(expiration))).await;
        expect_code(result, Code::InvalidArgument);
    }
}

#[tokio::test]
async fn no_expiration_follows_policy() {
    let app = spawn_app_with(Settings {
        allow_no_expiration: true,
        ..Settings::default()
    })
    .await;
    let user = app.bootstrap("u1", &["tokens:self"]).await;
    let never = pb::generate_request::Expiration::NoExpiration(true);
    let response = app
        .generate(&user.secret, request(Some(never)))
        .await
        .unwrap();
    let id = response.token.unwrap().id;

    let listed = app.list_own(&user.secret).await;
    let token = listed.iter().find(|t| t.id == id).unwrap();
    assert!(
        token.expires_at.is_none(),
        "no 1970 or year-1 date stands in for never"
    );

    app.clock.advance_seconds(50 * 366 * DAY);
    // Bootstrap tokens live 30 days, so the service token is made after the jump.
    let service = app.validator().await;
    let validated = app
        .validate(&service.secret, &response.secret, &[])
        .await
        .unwrap();
    assert_eq!(validated.result(), pb::ValidateResult::Valid);
    assert!(validated.token.unwrap().expires_at.is_none());

    let app = app
        .restart_with(Settings {
            allow_no_expiration: false,
            ..Settings::default()
        })
        .await;
    let admin = app.admin().await;
    let never = pb::generate_request::Expiration::NoExpiration(true);
    let message = expect_code(
        app.generate(&admin.secret, request(Some(never))).await,
        Code::InvalidArgument,
    );
    assert!(message.contains("no_expiration"), "{message}");
}

#[tokio::test]
async fn expired_exactly_at_expires_at() {
    let app = spawn_app().await;
    let service = app.bootstrap("svc", &["tokens:validate"]).await;
    let admin = app.bootstrap("admin", &["tokens:admin"]).await;
    let user = app.generate_simple(&admin.secret, "one day", &[], 1).await;

    app.clock.advance_seconds(DAY - 1);
    assert_eq!(
        app.validate_result(&service.secret, &user.secret).await,
        pb::ValidateResult::Valid
    );
    app.clock.advance_seconds(1);
    assert_eq!(
        app.validate_result(&service.secret, &user.secret).await,
        pb::ValidateResult::Expired
    );
}

#[tokio::test]
async fn expired_token_status_and_last_used() {
    let app = spawn_app().await;
    let service = app.bootstrap("svc", &["tokens:validate"]).await;
    let admin = app.bootstrap("admin", &["tokens:admin"]).await;
    let user = app.generate_simple(&admin.secret, "one day", &[], 1).await;

    app.clock.advance_seconds(DAY + 1);
    let response = app
        .validate(&service.secret, &user.secret, &[])
        .await
        .unwrap();
    assert_eq!(response.result(), pb::ValidateResult::Expired);
    assert!(!response.valid);

    let token = app.find(&admin.secret, &user.id).await.unwrap();
    assert_eq!(token.status(), pb::TokenStatus::Expired);
    assert!(token.last_used_at.is_none());
}
