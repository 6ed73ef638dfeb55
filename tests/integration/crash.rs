//! Crash safety: a SIGKILL during a burst of writes loses no acknowledged
//! Generate or Revoke and leaves no half-written row.

use std::time::Duration;

use tokend::grpc::pb::{self, token_service_client::TokenServiceClient};

use crate::{
    common::{TestDatabase, authed},
    process::{Server, admin_create},
};

async fn client(server: &Server) -> TokenServiceClient<tonic::transport::Channel> {
    TokenServiceClient::connect(server.url.clone())
        .await
        .expect("connect to tokend")
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_during_writes_keeps_acknowledged() {
    let database = TestDatabase::create().await;
    let (_, admin) = admin_create(&database, "admin", &["tokens:admin", "tokens:validate"]);
    let server = Server::start(&database, &[], &[]);
    let mut setup = client(&server).await;

    // Tokens that the burst revokes.
    let mut targets = Vec::new();
    for i in 0..40 {
        let request = pb::GenerateRequest {
            name: format!("target {i}"),
            owner: "u1".into(),
            ..Default::default()
        };
        let response = setup
            .generate(authed(&admin, request))
            .await
            .unwrap()
            .into_inner();
        targets.push((response.token.unwrap().id, response.secret));
    }

    let mut workers = Vec::new();
    for (worker, (target_id, target_secret)) in targets.iter().cloned().enumerate() {
        let mut client = client(&server).await;
        let admin = admin.clone();
        workers.push(tokio::spawn(async move {
            let mut generated = Vec::new();
            let mut revoked = None;
            // Bounded: the server dies within a second, and each worker stops at 200 calls.
            for call in 0..200 {
                if call == 5 {
                    let request = pb::RevokeRequest {
                        id: target_id.clone(),
                    };
                    if client.revoke(authed(&admin, request)).await.is_ok() {
                        revoked = Some(target_secret.clone());
                    }
                    continue;
                }
                let request = pb::GenerateRequest {
                    name: format!("burst {worker}-{call}"),
                    owner: "u2".into(),
                    ..Default::default()
                };
                match client.generate(authed(&admin, request)).await {
                    Ok(response) => generated.push(response.into_inner().secret),
                    Err(_) => break,
                }
            }
            (generated, revoked)
        }));
    }
    tokio::time::sleep(Duration::from_millis(400)).await;
    server.kill();

    let mut generated = Vec::new();
    let mut revoked = Vec::new();
    for worker in workers {
        let (secrets, target) = worker.await.unwrap();
        generated.extend(secrets);
        revoked.extend(target);
    }
    assert!(
        !generated.is_empty(),
        "some Generate calls finished before the kill"
    );

    let server = Server::start(&database, &[], &[]);
    let mut after = client(&server).await;
    for (secrets, expected, lost) in [
        (
            &generated,
            pb::ValidateResult::Valid,
            "an acknowledged Generate was lost",
        ),
        (
            &revoked,
            pb::ValidateResult::Revoked,
            "an acknowledged Revoke was lost",
        ),
    ] {
        for secret in secrets {
            let request = pb::ValidateRequest {
                token: secret.clone(),
                required_scopes: vec![],
            };
            let response = after.validate(authed(&admin, request)).await.unwrap();
            assert_eq!(response.into_inner().result(), expected, "{lost}");
        }
    }

    // Every row still decodes: a half-written row would fail List with INTERNAL.
    let mut page_token = String::new();
    let mut rows = 0;
    loop {
        let request = pb::ListRequest {
            page_size: 1000,
            page_token,
            include_revoked: true,
            ..Default::default()
        };
        let page = after
            .list(authed(&admin, request))
            .await
            .expect("list every row")
            .into_inner();
        rows += page.tokens.len();
        for token in &page.tokens {
            assert!(
                !token.name.is_empty()
                    && token.created_at.is_some()
                    && !token.display_hint.is_empty()
            );
        }
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    assert!(
        rows >= 1 + targets.len() + generated.len(),
        "{rows} rows for {} acknowledged tokens",
        generated.len()
    );
}
