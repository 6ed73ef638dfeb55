//! The real binary: the CLI walkthrough, the grpcurl walkthrough from the
//! README, and what the server logs.

use std::process::Command;

use crate::{
    common::{DAY, TestDatabase},
    process::{self, Server, admin_create, json, tokend},
};

fn rfc3339_seconds(value: &serde_json::Value) -> i64 {
    let text = value.as_str().expect("an RFC 3339 string");
    chrono::DateTime::parse_from_rfc3339(text)
        .unwrap()
        .timestamp()
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_lifecycle_with_local_time_zone() {
    let database = TestDatabase::create().await;
    let (_, admin) = admin_create(&database, "admin", &["tokens:admin"]);
    let (_, service) = admin_create(&database, "svc:gateway", &["tokens:validate"]);
    // Local time must not change lifetimes: the server runs in a zone with daylight saving.
    let server = Server::start(&database, &[], &[("TZ", "Europe/London")]);
    let url = server.url.clone();

    let generated = json(&tokend(
        &[
            "token",
            "generate",
            "--server",
            &url,
            "--output",
            "json",
            "--name",
            "laptop cli",
            "--owner",
            "alice",
            "--scope",
            "tokens:self",
            "--ttl",
            "60d",
        ],
        Some(&admin),
        None,
    ));
    let id = generated["token"]["id"].as_str().unwrap().to_owned();
    let secret = generated["secret"].as_str().unwrap().to_owned();
    let lifetime = rfc3339_seconds(&generated["token"]["expires_at"])
        - rfc3339_seconds(&generated["token"]["created_at"]);
    assert_eq!(lifetime, 60 * DAY);

    let listed = json(&tokend(
        &["token", "list", "--server", &url, "--output", "json"],
        Some(&secret),
        None,
    ));
    let tokens = listed["tokens"].as_array().unwrap();
    assert_eq!(tokens.len(), 1);
    assert_eq!(tokens[0]["id"], id.as_str());
    assert_eq!(tokens[0]["name"], "laptop cli");

    let table = tokend(&["token", "list", "--server", &url], Some(&secret), None);
    let table = String::from_utf8(table.stdout).unwrap();
    assert!(table.starts_with("ID"), "{table}");
    assert!(table.contains("laptop cli"), "{table}");

    let valid = tokend(
        &[
            "token", "validate", "--server", &url, "--output", "json", &secret,
        ],
        Some(&service),
        None,
    );
    assert_eq!(json(&valid)["result"], "VALID");
    let from_stdin = tokend(
        &["token", "validate", "--server", &url],
        Some(&service),
        Some(&secret),
    );
    assert_eq!(from_stdin.status.code(), Some(0));

    let revoked = json(&tokend(
        &["token", "revoke", "--server", &url, "--output", "json", &id],
        Some(&secret),
        None,
    ));
    assert!(revoked["revoked_at"].is_string());

    let after = tokend(
        &[
            "token", "validate", "--server", &url, "--output", "json", &secret,
        ],
        Some(&service),
        None,
    );
    assert_eq!(
        after.status.code(),
        Some(3),
        "a token that is not valid exits 3"
    );
    let after: serde_json::Value = serde_json::from_slice(&after.stdout).unwrap();
    assert_eq!(after["result"], "REVOKED");

    assert!(server.stop(), "SIGTERM exits 0");
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_reports_errors_with_codes() {
    let database = TestDatabase::create().await;
    let (_, user) = admin_create(&database, "alice", &["tokens:self"]);
    let server = Server::start(&database, &[], &[]);

    let output = tokend(
        &["token", "generate", "--server", &server.url, "--name", "  "],
        Some(&user),
        None,
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("INVALID_ARGUMENT"), "{stderr}");
    assert!(stderr.contains("name"), "{stderr}");
    assert!(
        !stderr.contains(&user),
        "an error message contains the caller's secret"
    );

    let output = tokend(
        &["token", "list", "--server", &server.url],
        Some("tkn_wrong"),
        None,
    );
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(stderr.contains("UNAUTHENTICATED"), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn migrate_runs_twice() {
    let database = TestDatabase::create().await;
    let flags = process::storage_flags(&database);
    let mut args = vec!["migrate"];
    args.extend(flags.iter().map(String::as_str));
    for _ in 0..2 {
        let output = tokend(&args, None, None);
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Runs grpcurl against the server with the caller's token and a JSON body.
fn grpcurl(server: &Server, token: &str, method: &str, body: &str) -> serde_json::Value {
    let mut command = Command::new(process::grpcurl());
    command
        .args([
            "-plaintext",
            "-H",
            &format!("authorization: Bearer {token}"),
            "-d",
            body,
        ])
        .arg(&server.address)
        .arg(format!("tokens.v1.TokenService/{method}"));
    json(&process::run(command, None))
}

#[tokio::test(flavor = "multi_thread")]
async fn grpcurl_walkthrough_through_reflection() {
    let database = TestDatabase::create().await;
    let (_, admin) = admin_create(&database, "admin", &["tokens:admin"]);
    let (_, service) = admin_create(&database, "svc:gateway", &["tokens:validate"]);
    let server = Server::start(&database, &[], &[]);

    let mut listing = Command::new(process::grpcurl());
    listing.args(["-plaintext", &server.address, "list"]);
    let services = String::from_utf8(process::run(listing, None).stdout).unwrap();
    assert!(services.contains("tokens.v1.TokenService"), "{services}");
    assert!(services.contains("grpc.health.v1.Health"), "{services}");

    let generated = grpcurl(
        &server,
        &admin,
        "Generate",
        r#"{"name": "deploy bot", "owner": "alice", "scopes": ["tokens:self", "repo:read"], "ttl": "604800s"}"#,
    );
    let secret = generated["secret"].as_str().unwrap().to_owned();
    let id = generated["token"]["id"].as_str().unwrap().to_owned();

    let listed = grpcurl(&server, &secret, "List", "{}");
    assert_eq!(listed["tokens"][0]["id"], id.as_str());

    let body = serde_json::json!({ "token": secret, "requiredScopes": ["repo:read"] }).to_string();
    let validated = grpcurl(&server, &service, "Validate", &body);
    assert_eq!(validated["result"], "VALIDATE_RESULT_VALID");
    assert_eq!(validated["valid"], true);

    let revoked = grpcurl(
        &server,
        &secret,
        "Revoke",
        &serde_json::json!({ "id": id }).to_string(),
    );
    assert!(revoked["token"]["revokedAt"].is_string());

    let validated = grpcurl(&server, &service, "Validate", &body);
    assert_eq!(validated["result"], "VALIDATE_RESULT_REVOKED");
    assert!(
        validated.get("valid").is_none(),
        "false is omitted from grpcurl's JSON"
    );

    let mut health = Command::new(process::grpcurl());
    health.args(["-plaintext", &server.address, "grpc.health.v1.Health/Check"]);
    assert_eq!(json(&process::run(health, None))["status"], "SERVING");
}

/// Drives every RPC once through the CLI, including failures.
fn exercise(url: &str, admin: &str, service: &str) -> Vec<String> {
    let generated = json(&tokend(
        &[
            "token",
            "generate",
            "--server",
            url,
            "--output",
            "json",
            "--name",
            "log check",
            "--owner",
            "bob",
        ],
        Some(admin),
        None,
    ));
    let secret = generated["secret"].as_str().unwrap().to_owned();
    let id = generated["token"]["id"].as_str().unwrap().to_owned();
    let mut wrong = secret.clone().into_bytes();
    wrong[30] = if wrong[30] == b'a' { b'b' } else { b'a' };
    let wrong = String::from_utf8(wrong).unwrap();

    tokend(
        &["token", "list", "--server", url, "--owner", "bob"],
        Some(admin),
        None,
    );
    tokend(
        &["token", "validate", "--server", url, &secret],
        Some(service),
        None,
    );
    tokend(
        &["token", "validate", "--server", url, &wrong],
        Some(service),
        None,
    );
    tokend(&["token", "list", "--server", url], Some(&wrong), None);
    tokend(&["token", "list", "--server", url], Some(&secret), None);
    tokend(
        &["token", "revoke", "--server", url, &id],
        Some(admin),
        None,
    );
    tokend(
        &["token", "validate", "--server", url, &secret],
        Some(service),
        None,
    );
    vec![secret, wrong]
}

#[tokio::test(flavor = "multi_thread")]
async fn logs_never_contain_secrets() {
    let database = TestDatabase::create().await;
    let (_, admin) = admin_create(&database, "admin", &["tokens:admin"]);
    let (_, service) = admin_create(&database, "svc:gateway", &["tokens:validate"]);
    let key_hex =
        std::fs::read_to_string(process::data_dir(&database).join("hashing.key")).unwrap();
    let key: [u8; 32] = hex::decode(key_hex.trim()).unwrap().try_into().unwrap();

    let mut secrets = vec![admin.clone(), service.clone()];
    let mut logs = String::new();
    for format in ["json", "text"] {
        let server = Server::start(
            &database,
            &["--log-format", format],
            &[("RUST_LOG", "trace")],
        );
        secrets.extend(exercise(&server.url, &admin, &service));
        let log = server.log();
        assert!(server.stop());
        assert!(log.lines().count() > 20, "trace logging is on:\n{log}");
        logs.push_str(&log);
    }

    for secret in &secrets {
        let body = &secret[4..47];
        let digest = blake3::keyed_hash(&key, secret.as_bytes());
        for needle in [
            secret.as_str(),
            body,
            &digest.to_hex()[..],
            &digest.to_hex()[..16],
        ] {
            assert!(
                !logs.contains(needle),
                "a log line contains a secret, its body or its digest"
            );
        }
    }
}

/// Reads the Prometheus text from the metrics listener with one HTTP/1.0 GET.
fn scrape(address: &str) -> String {
    use std::io::{Read, Write};

    let mut stream = std::net::TcpStream::connect(address).expect("connect to the metrics port");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /metrics HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    assert!(
        response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200"),
        "{response}"
    );
    response
}

/// Returns the value of the sample whose name and labels are exactly `series`.
fn sample(metrics: &str, series: &str) -> Option<f64> {
    metrics.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_calls_results_and_cache_lookups() {
    let database = TestDatabase::create().await;
    let (_, admin) = admin_create(&database, "admin", &["tokens:admin"]);
    let (_, service) = admin_create(&database, "svc:gateway", &["tokens:validate"]);
    let metrics_address = format!("127.0.0.1:{}", process::free_port());
    let server = Server::start(&database, &["--metrics-addr", &metrics_address], &[]);

    let generated = grpcurl(
        &server,
        &admin,
        "Generate",
        r#"{"name": "metered", "owner": "alice"}"#,
    );
    let secret = generated["secret"].as_str().unwrap().to_owned();
    let id = generated["token"]["id"].as_str().unwrap().to_owned();
    let body = serde_json::json!({ "token": secret }).to_string();
    for _ in 0..2 {
        let validated = grpcurl(&server, &service, "Validate", &body);
        assert_eq!(validated["result"], "VALIDATE_RESULT_VALID");
    }
    let malformed = grpcurl(&server, &service, "Validate", r#"{"token": "not-a-token"}"#);
    assert_eq!(malformed["result"], "VALIDATE_RESULT_MALFORMED");
    grpcurl(
        &server,
        &admin,
        "Revoke",
        &serde_json::json!({ "id": id }).to_string(),
    );
    let revoked = grpcurl(&server, &service, "Validate", &body);
    assert_eq!(revoked["result"], "VALIDATE_RESULT_REVOKED");
    // A call without credentials fails with a code that has no handle of
    // its own, so it takes the general path.
    let mut anonymous = Command::new(process::grpcurl());
    anonymous
        .args(["-plaintext", "-d", &body, &server.address])
        .arg("tokens.v1.TokenService/Validate");
    let output = anonymous.output().expect("run grpcurl");
    assert!(!output.status.success(), "a call without a token fails");

    let metrics = scrape(&metrics_address);
    let value = |series: &str| {
        sample(&metrics, series).unwrap_or_else(|| panic!("no sample {series} in:\n{metrics}"))
    };
    assert_eq!(
        value(r#"tokend_validate_results_total{result="valid"}"#),
        2.0
    );
    assert_eq!(
        value(r#"tokend_validate_results_total{result="malformed"}"#),
        1.0
    );
    assert_eq!(
        value(r#"tokend_validate_results_total{result="revoked"}"#),
        1.0
    );
    assert_eq!(
        value(r#"tokend_rpc_duration_seconds_count{method="Validate",code="OK"}"#),
        4.0
    );
    assert_eq!(
        value(r#"tokend_rpc_duration_seconds_count{method="Generate",code="OK"}"#),
        1.0
    );
    assert_eq!(
        value(r#"tokend_rpc_duration_seconds_count{method="Revoke",code="OK"}"#),
        1.0
    );
    assert_eq!(
        value(r#"tokend_rpc_duration_seconds_count{method="Validate",code="UNAUTHENTICATED"}"#),
        1.0
    );
    // Counters that nothing has moved yet are there from the start.
    assert_eq!(value("tokend_rehashed_tokens_total"), 0.0);

    // Every authenticated call looks its caller up, and Validate also the
    // token: the first lookup of each token misses, the rest hit.
    assert!(value(r#"tokend_cache_lookups_total{outcome="miss"}"#) >= 3.0);
    assert!(value(r#"tokend_cache_lookups_total{outcome="hit"}"#) >= 4.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn too_small_pool_stops_serve() {
    let database = TestDatabase::create().await;
    // PostgreSQL needs a second connection beside the revocation listener.
    let minimum = if database.sqlite_path().is_some() {
        1
    } else {
        2
    };
    let too_small = (minimum - 1).to_string();
    let address = format!("127.0.0.1:{}", process::free_port());
    let flags = process::storage_flags(&database);
    let mut args = vec![
        "serve",
        "--listen",
        &address,
        "--database-max-connections",
        &too_small,
    ];
    args.extend(flags.iter().map(String::as_str));

    let output = tokend(&args, None, None);
    assert_eq!(output.status.code(), Some(1));
    let message = String::from_utf8_lossy(&output.stderr);
    assert!(
        message.contains(&format!(
            "--database-max-connections {too_small} is too small"
        )),
        "{message}"
    );
    assert!(
        message.contains(&format!("at least {minimum}")),
        "{message}"
    );
    assert!(!message.contains("tokend listening"), "{message}");
}
