//! Who may call what: the reserved scopes, owner checks and object-level
//! authorization of Revoke.

use tokend::grpc::pb::{self, token_service_client::TokenServiceClient};
use tonic::{Code, Request, Status, transport::Channel};

use crate::common::*;

/// The four RPCs, in the column order of the permission table.
#[derive(Debug, Clone, Copy)]
enum Rpc {
    Generate,
    List,
    Revoke,
    Validate,
}

const RPCS: [Rpc; 4] = [Rpc::Generate, Rpc::List, Rpc::Revoke, Rpc::Validate];

/// One kind of caller: the `authorization` value it sends, if any, and the
/// owner whose token the Revoke column targets.
struct CallerKind {
    label: &'static str,
    authorization: Option<String>,
    owner: &'static str,
}

/// Wraps `message` with `authorization` set to `value` verbatim, or with no
/// authorization metadata at all.
fn with_authorization<T>(value: Option<&str>, message: T) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(value) = value {
        request.metadata_mut().insert(
            "authorization",
            value.parse().expect("a valid ASCII metadata value"),
        );
    }
    request
}

/// Calls `rpc` with a request that succeeds for a caller allowed to make it.
async fn call(
    client: &mut TokenServiceClient<Channel>,
    rpc: Rpc,
    authorization: Option<&str>,
    revoke_id: &str,
    validated_secret: &str,
) -> Result<(), Status> {
    match rpc {
        Rpc::Generate => {
            let request = pb::GenerateRequest {
                name: "matrix".into(),
                scopes: Vec::new(),
                expiration: Some(ttl_days(7)),
                owner: String::new(),
            };
            client
                .generate(with_authorization(authorization, request))
                .await
                .map(drop)
        }
        Rpc::List => {
            let request = pb::ListRequest::default();
            client
                .list(with_authorization(authorization, request))
                .await
                .map(drop)
        }
        Rpc::Revoke => {
            let request = pb::RevokeRequest {
                id: revoke_id.to_owned(),
            };
            client
                .revoke(with_authorization(authorization, request))
                .await
                .map(drop)
        }
        Rpc::Validate => {
            let request = pb::ValidateRequest {
                token: validated_secret.to_owned(),
                required_scopes: Vec::new(),
            };
            client
                .validate(with_authorization(authorization, request))
                .await
                .map(drop)
        }
    }
}

/// Returns the ids of every token, revoked ones included.
async fn inventory(app: &TestApp, admin: &str) -> Vec<String> {
    let request = pb::ListRequest {
        page_size: 1000,
        include_revoked: true,
        ..Default::default()
    };
    let response = app.list(admin, request).await.expect("list every token");
    response.tokens.into_iter().map(|token| token.id).collect()
}

fn generate_request(scopes: &[&str], owner: &str) -> pb::GenerateRequest {
    pb::GenerateRequest {
        name: "widen".into(),
        scopes: scopes.iter().map(|s| (*s).to_owned()).collect(),
        expiration: Some(ttl_days(7)),
        owner: owner.to_owned(),
    }
}

fn list_for(owner: &str) -> pb::ListRequest {
    pb::ListRequest {
        owner: owner.to_owned(),
        page_size: 1000,
        ..Default::default()
    }
}

fn ids(tokens: &[pb::Token]) -> Vec<String> {
    tokens.iter().map(|token| token.id.clone()).collect()
}

#[tokio::test]
async fn permission_matrix_every_rpc() {
    let app = spawn_app().await;
    // Bootstrap tokens live 30 days, so this one is expired once the clock
    // moves 31 days, and every other caller is created after the move.
    let expired = app.bootstrap("admin-expired", &["tokens:admin"]).await;
    app.clock.advance_seconds(31 * DAY);

    let admin = app.admin().await;
    let own = app.bootstrap("u1", &["tokens:self"]).await;
    let service = app.validator().await;
    let plain = app.bootstrap("u1", &["repo:read"]).await;
    let revoked = app.bootstrap("admin-revoked", &["tokens:admin"]).await;
    app.revoke(&admin.secret, &revoked.id)
        .await
        .expect("revoke the revoked caller");

    let callers = [
        CallerKind {
            label: "admin",
            authorization: Some(format!("Bearer {}", admin.secret)),
            owner: "admin",
        },
        CallerKind {
            label: "self",
            authorization: Some(format!("Bearer {}", own.secret)),
            owner: "u1",
        },
        CallerKind {
            label: "validate-only",
            authorization: Some(format!("Bearer {}", service.secret)),
            owner: "svc:gateway",
        },
        CallerKind {
            label: "plain scope",
            authorization: Some(format!("Bearer {}", plain.secret)),
            owner: "u1",
        },
        CallerKind {
            label: "expired admin",
            authorization: Some(format!("Bearer {}", expired.secret)),
            owner: "admin-expired",
        },
        CallerKind {
            label: "revoked admin",
            authorization: Some(format!("Bearer {}", revoked.secret)),
            owner: "admin-revoked",
        },
        CallerKind {
            label: "missing",
            authorization: None,
            owner: "u1",
        },
        CallerKind {
            label: "malformed",
            authorization: Some("Bearer not-a-token".into()),
            owner: "u1",
        },
    ];

    use Code::{Ok as OK, PermissionDenied as DENIED, Unauthenticated as UNAUTHENTICATED};
    // Columns follow RPCS: Generate, List, Revoke, Validate.
    let table: [(&str, [Code; 4]); 8] = [
        ("admin", [OK, OK, OK, OK]),
        ("self", [OK, OK, OK, DENIED]),
        ("validate-only", [DENIED, DENIED, DENIED, OK]),
        ("plain scope", [DENIED, DENIED, DENIED, DENIED]),
        ("expired admin", [UNAUTHENTICATED; 4]),
        ("revoked admin", [UNAUTHENTICATED; 4]),
        ("missing", [UNAUTHENTICATED; 4]),
        ("malformed", [UNAUTHENTICATED; 4]),
    ];
    assert_eq!(table.len(), callers.len(), "every caller kind has one row");

    let mut client = app.client().await;
    for (label, expected_codes) in table {
        let caller = callers
            .iter()
            .find(|c| c.label == label)
            .expect("the row names a caller kind");
        let authorization = caller.authorization.as_deref();
        // Each row revokes a fresh token of the caller's own owner, so a
        // denial comes from the permission check and not from a lookup.
        let target = app.generate_for(&admin.secret, caller.owner, &[]).await;

        for (rpc, expected) in RPCS.into_iter().zip(expected_codes) {
            let before = inventory(&app, &admin.secret).await;
            let result = call(&mut client, rpc, authorization, &target.id, &own.secret).await;
            let (actual, message) = match &result {
                Ok(()) => (Code::Ok, String::new()),
                Err(status) => (status.code(), status.message().to_owned()),
            };
            assert_eq!(
                actual, expected,
                "{label} calling {rpc:?}: message {message:?}"
            );

            if expected == Code::Ok {
                continue;
            }
            match rpc {
                Rpc::Generate => {
                    let after = inventory(&app, &admin.secret).await;
                    assert_eq!(
                        after, before,
                        "{label} calling Generate was rejected but created a token"
                    );
                }
                Rpc::Revoke => {
                    let token = app
                        .find(&admin.secret, &target.id)
                        .await
                        .expect("the target exists");
                    assert!(
                        token.revoked_at.is_none(),
                        "{label} calling Revoke was rejected but revoked the target"
                    );
                }
                Rpc::List | Rpc::Validate => {}
            }
        }
    }
}

#[tokio::test]
async fn self_generate_cannot_widen_scopes() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let user = app
        .generate_for(&admin.secret, "u1", &["tokens:self", "repo:read"])
        .await;
    let _other = app
        .generate_for(&admin.secret, "u2", &["tokens:self"])
        .await;
    let own_before = ids(&app.list_own(&user.secret).await);
    let every_before = inventory(&app, &admin.secret).await;

    let denied = [
        (generate_request(&["repo:write"], ""), "repo:write"),
        (generate_request(&["tokens:admin"], ""), "tokens:admin"),
        (
            generate_request(&["repo:read", "tokens:validate"], ""),
            "tokens:validate",
        ),
    ];
    for (request, missing) in denied {
        let message = expect_code(
            app.generate(&user.secret, request).await,
            Code::PermissionDenied,
        );
        assert!(
            message.contains(missing),
            "the message names the missing scope {missing}: {message}"
        );
    }
    let for_other = generate_request(&["repo:read"], "u2");
    let message = expect_code(
        app.generate(&user.secret, for_other).await,
        Code::PermissionDenied,
    );
    assert!(message.contains("owner"), "{message}");

    assert_eq!(
        ids(&app.list_own(&user.secret).await),
        own_before,
        "u1's list is unchanged"
    );
    assert_eq!(
        inventory(&app, &admin.secret).await,
        every_before,
        "no token was created for any owner"
    );

    let subset = app
        .generate(&user.secret, generate_request(&["repo:read"], ""))
        .await
        .unwrap();
    let token = subset.token.unwrap();
    assert_eq!(token.scopes, ["repo:read"]);
    assert_eq!(token.owner, "u1");
    let same = app
        .generate(
            &user.secret,
            generate_request(&["repo:read", "tokens:self"], "u1"),
        )
        .await
        .unwrap();
    assert_eq!(same.token.unwrap().scopes, ["repo:read", "tokens:self"]);
    let none = app
        .generate(&user.secret, generate_request(&[], ""))
        .await
        .unwrap();
    assert!(none.token.unwrap().scopes.is_empty());
}

#[tokio::test]
async fn admin_generate_for_any_owner() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let request = generate_request(&["tokens:admin", "repo:write"], "u2");
    let token = app
        .generate(&admin.secret, request)
        .await
        .unwrap()
        .token
        .unwrap();
    assert_eq!(token.owner, "u2");
    assert_eq!(token.scopes, ["repo:write", "tokens:admin"]);
}

#[tokio::test]
async fn list_other_owner_admin_only() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let u1 = app
        .generate_for(&admin.secret, "u1", &["tokens:self"])
        .await;
    let u2 = app
        .generate_for(&admin.secret, "u2", &["tokens:self"])
        .await;

    let message = expect_code(
        app.list(&u1.secret, list_for("u2")).await,
        Code::PermissionDenied,
    );
    assert!(message.contains("tokens:admin"), "{message}");
    let own = app.list(&u1.secret, list_for("u1")).await.unwrap();
    assert_eq!(ids(&own.tokens), std::slice::from_ref(&u1.id));

    let listed = app.list(&admin.secret, list_for("u2")).await.unwrap();
    assert_eq!(ids(&listed.tokens), std::slice::from_ref(&u2.id));

    let every = app.list(&admin.secret, list_for("")).await.unwrap();
    let mut owners: Vec<&str> = every.tokens.iter().map(|t| t.owner.as_str()).collect();
    owners.sort_unstable();
    assert_eq!(
        owners,
        ["admin", "u1", "u2"],
        "an admin listing with no owner returns every owner"
    );
}

#[tokio::test]
async fn repeated_authorization_is_unauthenticated() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let mut request = Request::new(pb::ListRequest::default());
    // Both values are the same valid admin token: a repeated header is
    // ambiguous even when the copies agree.
    for _ in 0..2 {
        let value = format!("Bearer {}", admin.secret).parse().unwrap();
        request.metadata_mut().append("authorization", value);
    }
    let mut client = app.client().await;
    let message = expect_code(client.list(request).await, Code::Unauthenticated);
    assert!(message.contains("more than one"), "{message}");
    assert!(
        !message.contains(&admin.secret),
        "the message contains the secret"
    );
}

#[tokio::test]
async fn revoke_other_owner_not_found() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let service = app.validator().await;
    let u1 = app
        .generate_for(&admin.secret, "u1", &["tokens:self"])
        .await;
    let u2 = app
        .generate_for(&admin.secret, "u2", &["tokens:self"])
        .await;
    let t1 = app.generate_simple(&u1.secret, "t1", &[], 30).await;
    let other = app.generate_simple(&u1.secret, "other", &[], 30).await;

    expect_code(app.revoke(&u2.secret, &t1.id).await, Code::NotFound);
    assert_eq!(
        app.validate_result(&service.secret, &t1.secret).await,
        pb::ValidateResult::Valid
    );
    assert!(
        ids(&app.list_own(&u1.secret).await).contains(&t1.id),
        "T1 is still listed for u1"
    );
    assert!(
        !ids(&app.list_own(&u2.secret).await).contains(&t1.id),
        "u2's list contains T1"
    );

    let revoked = app.revoke(&admin.secret, &t1.id).await.unwrap();
    assert_eq!(revoked.id, t1.id);
    assert!(revoked.revoked_at.is_some());
    assert_eq!(
        app.validate_result(&service.secret, &t1.secret).await,
        pb::ValidateResult::Revoked
    );

    for untouched in [&u1, &u2, &other] {
        let token = app.find(&admin.secret, &untouched.id).await.unwrap();
        assert!(
            token.revoked_at.is_none(),
            "token {} was revoked too",
            untouched.id
        );
        let result = app
            .validate_result(&service.secret, &untouched.secret)
            .await;
        assert_eq!(result, pb::ValidateResult::Valid, "token {}", untouched.id);
    }
}

#[tokio::test]
async fn not_found_does_not_leak_existence() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let u1 = app
        .generate_for(&admin.secret, "u1", &["tokens:self"])
        .await;
    let u2 = app
        .generate_for(&admin.secret, "u2", &["tokens:self"])
        .await;
    let unknown = uuid::Uuid::now_v7().to_string();

    let for_unknown = expect_code(app.revoke(&u2.secret, &unknown).await, Code::NotFound);
    let for_other = expect_code(app.revoke(&u2.secret, &u1.id).await, Code::NotFound);
    assert!(for_unknown.contains(&unknown), "{for_unknown}");
    assert_eq!(
        for_unknown.replace(&unknown, "<id>"),
        for_other.replace(&u1.id, "<id>"),
        "an unknown id and another owner's id must be indistinguishable"
    );

    let for_admin = expect_code(app.revoke(&admin.secret, &unknown).await, Code::NotFound);
    assert_eq!(for_admin, for_unknown);
}

#[tokio::test]
async fn revoke_non_uuid_is_invalid() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    for id in ["not-a-uuid", "", "12345"] {
        let message = expect_code(app.revoke(&admin.secret, id).await, Code::InvalidArgument);
        assert!(message.contains("id"), "id {id:?}: {message}");
    }
}
