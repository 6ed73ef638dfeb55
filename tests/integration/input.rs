//! Input rules: the one token parser behind Validate and caller
//! authentication, names and scopes.

use tokend::grpc::pb;
use tonic::{Code, Request, Status, metadata::AsciiMetadataValue};
use tonic_types::StatusExt;

use crate::common::*;

/// Replaces the character at `index` with another base62 character.
fn change_letter(secret: &str, index: usize) -> String {
    let mut bytes = secret.as_bytes().to_vec();
    bytes[index] = if bytes[index] == b'a' { b'b' } else { b'a' };
    String::from_utf8(bytes).expect("ASCII stays UTF-8")
}

/// Flips the case of the first letter after the `tkn_` prefix.
fn flip_case(secret: &str) -> String {
    let index = secret[4..]
        .find(|c: char| c.is_ascii_alphabetic())
        .expect("a base62 body has a letter")
        + 4;
    let mut bytes = secret.as_bytes().to_vec();
    bytes[index] ^= 0x20;
    String::from_utf8(bytes).expect("ASCII stays UTF-8")
}

/// Returns `Bearer`, `spaces` spaces and the secret, so a test can set the
/// total length exactly.
fn padded_bearer(secret: &str, spaces: usize) -> String {
    format!("Bearer{}{secret}", " ".repeat(spaces))
}

fn generate_request(name: &str, scopes: &[String]) -> pb::GenerateRequest {
    pb::GenerateRequest {
        name: name.to_owned(),
        scopes: scopes.to_vec(),
        expiration: Some(ttl_days(7)),
        owner: String::new(),
    }
}

fn strings(values: &[&str]) -> Vec<String> {
    values.iter().map(|s| (*s).to_owned()).collect()
}

/// Returns the field of the first `BadRequest` violation in `status`.
fn violated_field(status: &Status) -> Option<String> {
    let details = status.get_error_details();
    let violation = details.bad_request()?.field_violations.first()?;
    Some(violation.field.clone())
}

/// Calls Validate on `token` with `value` as the caller's whole
/// `authorization` metadata value.
async fn validate_with_metadata(
    app: &TestApp,
    value: AsciiMetadataValue,
    token: &str,
) -> Result<pb::ValidateResponse, Status> {
    let mut request = Request::new(pb::ValidateRequest {
        token: token.to_owned(),
        required_scopes: Vec::new(),
    });
    request.metadata_mut().insert("authorization", value);
    let mut client = app.client().await;
    client
        .validate(request)
        .await
        .map(|response| response.into_inner())
}

#[tokio::test]
async fn validate_accepts_bearer_forms() {
    let app = spawn_app().await;
    let service = app.validator().await;
    let user = app.bootstrap("u1", &["repo:read"]).await;
    let secret = &user.secret;
    // "Bearer" (6) + 196 spaces + the 53-character secret is 255, the
    // longest value accepted.
    assert_eq!(padded_bearer(secret, 196).len(), 255);

    let inputs = [
        secret.clone(),
        format!("Bearer {secret}"),
        format!("bearer {secret}"),
        format!("BEARER    {secret}"),
        format!("bEaReR {secret}"),
        format!("  {secret}  "),
        format!("\t\n {secret} \r\n"),
        format!("\t Bearer  {secret}\n"),
        padded_bearer(secret, 196),
    ];
    for input in inputs {
        let response = app.validate(&service.secret, &input, &[]).await.unwrap();
        assert_eq!(
            response.result(),
            pb::ValidateResult::Valid,
            "input {input:?}"
        );
        assert!(response.valid, "input {input:?}");
        assert_eq!(response.token.unwrap().id, user.id, "input {input:?}");
    }
}

#[tokio::test]
async fn validate_rejects_malformed_values() {
    let app = spawn_app().await;
    let service = app.validator().await;
    let user = app.bootstrap("u1", &["repo:read"]).await;
    let secret = &user.secret;
    let (head, tail) = secret.split_at(20);

    let inputs = [
        ("no space after the scheme", format!("Bearer{secret}")),
        ("tab after the scheme", format!("Bearer\t{secret}")),
        ("changed letter in the body", change_letter(secret, 10)),
        (
            "changed letter in the checksum",
            change_letter(secret, secret.len() - 1),
        ),
        ("changed letter case", flip_case(secret)),
        ("one character more", format!("{secret}a")),
        ("one character less", secret[..secret.len() - 1].to_owned()),
        ("other prefix", format!("ghp_{}", &secret[4..])),
        ("non-ASCII inside", format!("{head}é{tail}")),
        ("non-breaking space around", format!("\u{a0}{secret}\u{a0}")),
        ("NUL inside", format!("{head}\0{tail}")),
        ("bell inside", format!("{head}\u{7}{tail}")),
        ("tab inside", format!("{head}\t{tail}")),
        ("256 characters with the scheme", padded_bearer(secret, 197)),
        ("256 letters", "a".repeat(256)),
        ("10000 letters", "a".repeat(10_000)),
        ("empty", String::new()),
        ("spaces only", "   ".to_owned()),
        ("whitespace only", " \t\r\n ".to_owned()),
        ("scheme only", "Bearer ".to_owned()),
        ("scheme and spaces", "Bearer      ".to_owned()),
    ];
    for (case, input) in inputs {
        let response = app.validate(&service.secret, &input, &[]).await.unwrap();
        assert_eq!(response.result(), pb::ValidateResult::Malformed, "{case}");
        assert!(!response.valid, "{case}");
        assert!(
            response.token.is_none(),
            "{case}: a malformed token identifies no token"
        );
    }
    assert_eq!(
        app.validate_result(&service.secret, secret).await,
        pb::ValidateResult::Valid
    );
}

#[tokio::test]
async fn validate_other_server_token_not_found() {
    let app = spawn_app().await;
    let service = app.validator().await;
    // A second server has its own hashing key and database, so its secrets
    // are well formed here but belong to no token.
    let other = spawn_app().await;
    let foreign = other.bootstrap("u1", &["repo:read"]).await;

    let response = app
        .validate(&service.secret, &foreign.secret, &[])
        .await
        .unwrap();
    assert_eq!(response.result(), pb::ValidateResult::NotFound);
    assert!(!response.valid);
    assert!(response.token.is_none());
    let bearer = format!("Bearer {}", foreign.secret);
    assert_eq!(
        app.validate_result(&service.secret, &bearer).await,
        pb::ValidateResult::NotFound
    );
}

#[tokio::test]
async fn metadata_accepts_bearer_forms() {
    let app = spawn_app().await;
    let service = app.validator().await;
    let user = app.bootstrap("u1", &["repo:read"]).await;
    let secret = &service.secret;

    let values = [
        format!("bearer   {secret}"),
        format!("BEARER {secret}"),
        format!("Bearer {secret}"),
        secret.clone(),
        padded_bearer(secret, 196),
        format!(" Bearer {secret} "),
        format!("\tBearer {secret}\t"),
    ];
    for value in values {
        let metadata = value.parse().unwrap();
        let response = validate_with_metadata(&app, metadata, &user.secret).await;
        let response = response.unwrap_or_else(|status| panic!("metadata {value:?}: {status:?}"));
        assert_eq!(
            response.result(),
            pb::ValidateResult::Valid,
            "metadata {value:?}"
        );
    }
}

// NOTE: tonic's `MetadataValue` rejects line breaks and every control
// character except tab, so values with those cannot be sent and are not
// tested here. The token field of Validate covers them.
#[tokio::test]
async fn metadata_rejects_malformed_values() {
    let app = spawn_app().await;
    let service = app.validator().await;
    let user = app.bootstrap("u1", &["repo:read"]).await;
    let secret = &service.secret;
    let (head, tail) = secret.split_at(20);

    let mut values: Vec<(&str, AsciiMetadataValue)> = [
        ("no space after the scheme", format!("Bearer{secret}")),
        (
            "changed letter",
            format!("Bearer {}", change_letter(secret, 10)),
        ),
        ("tab inside", format!("Bearer {head}\t{tail}")),
        ("256 characters", padded_bearer(secret, 197)),
        ("empty", String::new()),
        ("spaces only", "   ".to_owned()),
        ("scheme only", "Bearer".to_owned()),
        ("garbage", "Bearer not-a-token".to_owned()),
    ]
    .into_iter()
    .map(|(case, value)| (case, value.parse().unwrap()))
    .collect();
    // Bytes above 0x7F are allowed in a metadata value built from bytes.
    let non_ascii = format!("Bearer {head}é{tail}");
    values.push((
        "non-ASCII inside",
        AsciiMetadataValue::try_from(non_ascii.as_bytes()).unwrap(),
    ));

    for (case, value) in values {
        let message = expect_code(
            validate_with_metadata(&app, value, &user.secret).await,
            Code::Unauthenticated,
        );
        assert!(
            !message.contains(head),
            "{case}: the message contains the secret: {message}"
        );
        assert!(
            !message.contains(tail),
            "{case}: the message contains the secret: {message}"
        );
    }
}

#[tokio::test]
async fn name_rejects_invalid_values() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let before = app.list_own(&admin.secret).await;

    let names = [
        ("empty", String::new(), None),
        ("spaces only", "   ".to_owned(), None),
        ("tab and newline only", "\t\n".to_owned(), None),
        ("101 letters", "a".repeat(101), Some("100")),
        ("101 emoji", "🚀".repeat(101), Some("100")),
        ("NUL inside", "deploy\0key".to_owned(), None),
        ("newline inside", "deploy\nkey".to_owned(), None),
        ("DEL inside", "deploy\u{7f}key".to_owned(), None),
    ];
    for (case, name, limit) in names {
        let result = app
            .generate(&admin.secret, generate_request(&name, &[]))
            .await;
        let status = result.expect_err(case);
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{case}: {}",
            status.message()
        );
        assert!(
            status.message().contains("name"),
            "{case}: {}",
            status.message()
        );
        assert_eq!(violated_field(&status).as_deref(), Some("name"), "{case}");
        if let Some(limit) = limit {
            assert!(
                status.message().contains(limit),
                "{case}: the message names the limit: {}",
                status.message()
            );
        }
        assert!(
            !status.message().contains(&admin.secret),
            "{case}: the message contains the secret"
        );
    }

    assert_eq!(
        app.list_own(&admin.secret).await,
        before,
        "no token was created"
    );
}

#[tokio::test]
async fn name_accepts_limits_and_unicode() {
    let app = spawn_app().await;
    let admin = app.admin().await;

    let names = [
        ("a".repeat(100), "a".repeat(100)),
        ("🚀".repeat(100), "🚀".repeat(100)),
        ("é".repeat(100), "é".repeat(100)),
        (format!("  {}\t ", "b".repeat(100)), "b".repeat(100)),
        ("déploiement 🚀".to_owned(), "déploiement 🚀".to_owned()),
        ("x".to_owned(), "x".to_owned()),
    ];
    for (name, stored) in names {
        let response = app
            .generate(&admin.secret, generate_request(&name, &[]))
            .await;
        let token = response
            .unwrap_or_else(|status| panic!("name {name:?}: {status:?}"))
            .token
            .unwrap();
        assert_eq!(
            token.name.as_bytes(),
            stored.as_bytes(),
            "name {name:?} in the Generate response"
        );

        let listed = app.find(&admin.secret, &token.id).await.unwrap();
        assert_eq!(
            listed.name.as_bytes(),
            stored.as_bytes(),
            "name {name:?} in List"
        );
    }
}

#[tokio::test]
async fn scope_count_limit_is_32() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let scopes: Vec<String> = (0..33).map(|i| format!("scope.{i}")).collect();

    let response = app
        .generate(&admin.secret, generate_request("32 scopes", &scopes[..32]))
        .await
        .unwrap();
    assert_eq!(response.token.unwrap().scopes.len(), 32);

    let status = app
        .generate(&admin.secret, generate_request("33 scopes", &scopes))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
    assert!(status.message().contains("scopes"), "{}", status.message());
    assert!(
        status.message().contains("32"),
        "the message names the limit: {}",
        status.message()
    );
    assert_eq!(violated_field(&status).as_deref(), Some("scopes"));

    // Duplicates collapse before counting, so 33 entries with one repeat fit.
    let mut repeated = scopes[..32].to_vec();
    repeated.push(scopes[0].clone());
    assert!(
        app.generate(&admin.secret, generate_request("repeat", &repeated))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn scope_length_limit_is_64() {
    let app = spawn_app().await;
    let admin = app.admin().await;
    let longest = format!("s{}", "a".repeat(63));
    let too_long = format!("s{}", "a".repeat(64));

    let response = app
        .generate(
            &admin.secret,
            generate_request("64", std::slice::from_ref(&longest)),
        )
        .await
        .unwrap();
    assert_eq!(response.token.unwrap().scopes, [longest]);

    let status = app
        .generate(
            &admin.secret,
            generate_request("65", std::slice::from_ref(&too_long)),
        )
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
    assert!(
        status.message().contains(&too_long),
        "the message names the value: {}",
        status.message()
    );
    assert!(
        status.message().contains("63"),
        "the message names the limit: {}",
        status.message()
    );
    assert_eq!(violated_field(&status).as_deref(), Some("scopes"));
}

#[tokio::test]
async fn scope_invalid_values_named() {
    let app = spawn_app().await;
    let admin = app.admin().await;

    for scope in [
        "Repo:read",
        "REPO",
        "repo read",
        "",
        " repo",
        "1repo",
        "repo/read",
        "répo",
        "repo\0",
    ] {
        let request = generate_request("bad scope", &strings(&["repo:read", scope]));
        let status = app.generate(&admin.secret, request).await.unwrap_err();
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "scope {scope:?}: {}",
            status.message()
        );
        assert!(
            status.message().contains("scopes"),
            "scope {scope:?}: {}",
            status.message()
        );
        let quoted = format!("{scope:?}");
        assert!(
            status.message().contains(&quoted),
            "the message names {quoted}: {}",
            status.message()
        );
    }
}

#[tokio::test]
async fn required_scopes_invalid_argument() {
    let app = spawn_app().await;
    let service = app.validator().await;
    let user = app.bootstrap("u1", &["repo:read"]).await;
    let too_many: Vec<String> = (0..33).map(|i| format!("scope.{i}")).collect();
    let too_many: Vec<&str> = too_many.iter().map(String::as_str).collect();

    let cases: [&[&str]; 4] = [
        &["Repo:read"],
        &["repo:read", ""],
        &["repo read"],
        &too_many,
    ];
    for required in cases {
        let status = app
            .validate(&service.secret, &user.secret, required)
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "required {required:?}: {}",
            status.message()
        );
        assert!(
            status.message().contains("required_scopes"),
            "{}",
            status.message()
        );
        assert_eq!(violated_field(&status).as_deref(), Some("required_scopes"));
        assert!(
            !status.message().contains(&user.secret),
            "the message contains the secret"
        );
    }
}

#[tokio::test]
async fn insufficient_scope_carries_token() {
    let app = spawn_app().await;
    let service = app.validator().await;
    let user = app.bootstrap("u1", &["repo:read", "tokens:self"]).await;

    let response = app
        .validate(&service.secret, &user.secret, &["repo:read", "repo:write"])
        .await
        .unwrap();
    assert_eq!(response.result(), pb::ValidateResult::InsufficientScope);
    assert!(!response.valid);
    let token = response
        .token
        .expect("an identified token comes with its metadata");
    assert_eq!(token.id, user.id);
    assert_eq!(token.owner, "u1");
    assert_eq!(token.scopes, ["repo:read", "tokens:self"]);

    let response = app
        .validate(&service.secret, &user.secret, &["repo:read"])
        .await
        .unwrap();
    assert_eq!(response.result(), pb::ValidateResult::Valid);
    let response = app
        .validate(&service.secret, &user.secret, &["repo:read", "repo:read"])
        .await
        .unwrap();
    assert_eq!(
        response.result(),
        pb::ValidateResult::Valid,
        "a repeated required scope is one scope"
    );
}

#[tokio::test]
async fn allow_list_rejects_unknown_scope() {
    let app = spawn_app_with(Settings {
        allowed_scopes: Some(strings(&["repo:read", "repo:write"])),
        ..Settings::default()
    })
    .await;
    let admin = app.admin().await;

    let request = generate_request("unknown", &strings(&["repo:read", "deploy:prod"]));
    let status = app.generate(&admin.secret, request).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
    assert!(
        status.message().contains("\"deploy:prod\""),
        "the message names the value: {}",
        status.message()
    );
    assert_eq!(violated_field(&status).as_deref(), Some("scopes"));

    let allowed = generate_request("allowed", &strings(&["repo:read", "repo:write"]));
    assert!(app.generate(&admin.secret, allowed).await.is_ok());
    let reserved = generate_request(
        "reserved",
        &strings(&["tokens:admin", "tokens:self", "tokens:validate"]),
    );
    let token = app
        .generate(&admin.secret, reserved)
        .await
        .unwrap()
        .token
        .unwrap();
    assert_eq!(
        token.scopes,
        ["tokens:admin", "tokens:self", "tokens:validate"]
    );
}
