//! Input that no well-behaved client sends: oversized messages and headers,
//! invalid UTF-8, and owners at their cap. The server must answer with a
//! code and keep serving.

use std::time::Duration;

use tokend::grpc::pb;
use tonic::{Code, Request, metadata::MetadataValue};

use crate::common::*;

/// Checks that the server still validates a known token after an abuse.
async fn still_serving(app: &TestApp, service: &Issued, user: &Issued) {
    assert_eq!(
        app.validate_result(&service.secret, &user.secret).await,
        pb::ValidateResult::Valid
    );
}

#[tokio::test]
async fn oversized_message_is_rejected() {
    let app = spawn_app().await;
    let service = app.validator().await;
    let user = app.bootstrap("u1", &[]).await;

    let result = app
        .validate(&service.secret, &"a".repeat(100_000), &[])
        .await;
    // tonic reports a message over the size limit as OUT_OF_RANGE, naming the limit.
    let message = expect_code(result, Code::OutOfRange);
    assert!(message.contains("65536"), "{message}");

    let long = app
        .validate(&service.secret, &"a".repeat(10_000), &[])
        .await
        .unwrap();
    assert_eq!(long.result(), pb::ValidateResult::Malformed);
    still_serving(&app, &service, &user).await;
}

#[tokio::test]
async fn huge_authorization_header_is_rejected() {
    let app = spawn_app().await;
    let service = app.validator().await;
    let user = app.bootstrap("u1", &[]).await;
    let mut client = app.client().await;

    let mut request = Request::new(pb::ListRequest::default());
    let value: MetadataValue<_> = format!("Bearer {}", "a".repeat(32 * 1024)).parse().unwrap();
    request.metadata_mut().insert("authorization", value);
    assert!(
        client.list(request).await.is_err(),
        "a 32 KiB header is not accepted"
    );

    let mut request = Request::new(pb::ListRequest::default());
    let value: MetadataValue<_> = format!("Bearer {}", "a".repeat(300)).parse().unwrap();
    request.metadata_mut().insert("authorization", value);
    let message = expect_code(client.list(request).await, Code::Unauthenticated);
    assert!(message.contains("malformed"), "{message}");

    still_serving(&app, &service, &user).await;
}

/// A Generate request whose name is raw bytes, to send invalid UTF-8.
#[derive(Clone, PartialEq, prost::Message)]
struct RawGenerateRequest {
    #[prost(bytes = "vec", tag = "1")]
    name: Vec<u8>,
}

#[tokio::test]
async fn invalid_utf8_field_is_rejected() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let service = app.validator().await;
    let user = app.bootstrap("u1", &[]).await;

    let channel = tonic::transport::Channel::from_shared(app.url())
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut grpc = tonic::client::Grpc::new(channel);
    grpc.ready().await.unwrap();
    let codec = tonic_prost::ProstCodec::<RawGenerateRequest, pb::GenerateResponse>::default();
    let path =
        tonic::codegen::http::uri::PathAndQuery::from_static("/tokens.v1.TokenService/Generate");
    let request = authed(
        &admin.secret,
        RawGenerateRequest {
            name: vec![b'o', 0xff, 0xfe, b'k'],
        },
    );
    let result = grpc.unary(request, path, codec).await;

    // gRPC reports a request that does not decode as INTERNAL; what matters
    // is that nothing was created and the server keeps serving.
    let status = result.expect_err("invalid UTF-8 must not create a token");
    assert!(
        matches!(status.code(), Code::Internal | Code::InvalidArgument),
        "{status:?}"
    );
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
    assert_eq!(
        listed.tokens.len(),
        3,
        "only the three bootstrap tokens exist"
    );
    still_serving(&app, &service, &user).await;
}

#[tokio::test]
async fn owner_cap_blocks_generate() {
    let app = spawn_app_with(Settings {
        max_active_per_owner: 3,
        ..Settings::default()
    })
    .await;
    let admin = app.admin().await;
    let user = app
        .generate_for(&admin.secret, "u1", &["tokens:self"])
        .await;
    let second = app.generate_simple(&user.secret, "second", &[], 1).await;
    app.generate_simple(&user.secret, "third", &[], 1).await;

    let request = pb::GenerateRequest {
        name: "fourth".into(),
        ..Default::default()
    };
    let message = expect_code(
        app.generate(&user.secret, request.clone()).await,
        Code::FailedPrecondition,
    );
    assert!(message.contains("limit is 3"), "{message}");

    app.revoke(&user.secret, &second.id).await.unwrap();
    assert!(
        app.generate(&user.secret, request.clone()).await.is_ok(),
        "revoking frees a slot"
    );

    // Expired tokens do not count either.
    app.clock.advance_seconds(DAY);
    let admin = app.admin().await;
    let request = pb::GenerateRequest {
        name: "after expiry".into(),
        owner: "u1".into(),
        ..Default::default()
    };
    assert!(app.generate(&admin.secret, request).await.is_ok());
}

#[tokio::test]
async fn owner_cap_holds_under_concurrent_generate() {
    let app = spawn_app_with(Settings {
        max_active_per_owner: 5,
        ..Settings::default()
    })
    .await;
    let admin = app.admin().await;
    let user = app
        .generate_for(&admin.secret, "u1", &["tokens:self"])
        .await;

    // Twenty calls race for the four slots left after the user's own token.
    let calls = (0..20).map(|index| {
        let request = pb::GenerateRequest {
            name: format!("racer {index}"),
            ..Default::default()
        };
        app.generate(&user.secret, request)
    });
    let results = futures::future::join_all(calls).await;
    let mut created = 0;
    for result in results {
        match result {
            Ok(_) => created += 1,
            Err(status) => assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}"),
        }
    }
    assert_eq!(created, 4, "only the free slots are filled");
    let active = app
        .manager
        .store()
        .count_active(
            &tokend::domain::Owner::parse("u1").unwrap(),
            app.clock.now(),
        )
        .await
        .unwrap();
    assert_eq!(active, 5, "the owner never holds more than the cap");
}

#[tokio::test]
async fn locked_sqlite_is_unavailable() {
    let app = spawn_app().await;
    let Some(path) = app.database.sqlite_path() else {
        eprintln!("the file lock applies to SQLite only");
        return;
    };
    let admin = app.admin().await;
    let user = app
        .generate_for(&admin.secret, "u1", &["tokens:self"])
        .await;

    // Another process holding the write lock, as a backup tool or a stuck
    // writer would. One connection, so BEGIN and ROLLBACK run on the same one.
    use sea_orm::{ConnectOptions, ConnectionTrait, Database};
    let mut options = ConnectOptions::new(format!("sqlite://{}", path.display()));
    options.max_connections(1).min_connections(1);
    let locker = Database::connect(options).await.unwrap();
    locker.execute_unprepared("BEGIN IMMEDIATE").await.unwrap();

    let request = pb::GenerateRequest {
        name: "while locked".into(),
        ..Default::default()
    };
    expect_code(
        app.generate(&user.secret, request.clone()).await,
        Code::Unavailable,
    );
    expect_code(app.revoke(&admin.secret, &user.id).await, Code::Unavailable);

    locker.execute_unprepared("ROLLBACK").await.unwrap();
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(
        app.generate(&user.secret, request).await.is_ok(),
        "writes recover once the lock is gone"
    );
}
