//! TLS and mutual TLS through the real binary: `tokend serve` with
//! certificates made by rcgen in each test, and the CLI as the client.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

use crate::{
    common::TestDatabase,
    process::{self, Server, admin_create, json, tokend},
};

/// A certificate and its private key, written as PEM files.
struct IdentityFiles {
    cert: PathBuf,
    key: PathBuf,
}

impl IdentityFiles {
    fn cert(&self) -> &str {
        self.cert.to_str().unwrap()
    }

    fn key(&self) -> &str {
        self.key.to_str().unwrap()
    }
}

/// A test CA with a server certificate for 127.0.0.1 and localhost and a
/// client certificate, all under one directory.
struct Pki {
    ca: PathBuf,
    server: IdentityFiles,
    client: IdentityFiles,
}

impl Pki {
    fn ca(&self) -> &str {
        self.ca.to_str().unwrap()
    }
}

fn new_ca(name: &str) -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.distinguished_name.push(DnType::CommonName, name);
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// Issues a certificate for `names` (DNS names or IP addresses) and writes
/// it and its key to `<dir>/<stem>.pem` and `<dir>/<stem>.key`.
fn issue(
    ca: &CertifiedIssuer<'static, KeyPair>,
    common_name: &str,
    names: &[&str],
    usage: ExtendedKeyUsagePurpose,
    dir: &Path,
    stem: &str,
) -> IdentityFiles {
    let names: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
    let mut params = CertificateParams::new(names).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, ca).unwrap();

    let files = IdentityFiles {
        cert: dir.join(format!("{stem}.pem")),
        key: dir.join(format!("{stem}.key")),
    };
    std::fs::write(&files.cert, cert.pem()).unwrap();
    std::fs::write(&files.key, key.serialize_pem()).unwrap();
    files
}

/// Creates a CA named `name` and its server and client certificates in
/// `<database dir>/<name>`.
fn create_pki(database: &TestDatabase, name: &str) -> Pki {
    let dir = database.dir.path().join(name);
    std::fs::create_dir(&dir).unwrap();
    let ca = new_ca(&format!("tokend test CA {name}"));
    let ca_path = dir.join("ca.pem");
    std::fs::write(&ca_path, ca.pem()).unwrap();
    let server = issue(
        &ca,
        "localhost",
        &["localhost", "127.0.0.1"],
        ExtendedKeyUsagePurpose::ServerAuth,
        &dir,
        "server",
    );
    let client = issue(
        &ca,
        "svc-gateway",
        &[],
        ExtendedKeyUsagePurpose::ClientAuth,
        &dir,
        "client",
    );
    Pki {
        ca: ca_path,
        server,
        client,
    }
}

/// Starts `tokend serve` with the server certificate of `pki` and `extra_args`.
fn start_tls_server(database: &TestDatabase, pki: &Pki, extra_args: &[&str]) -> Server {
    let mut args = vec![
        "--tls-cert",
        pki.server.cert(),
        "--tls-key",
        pki.server.key(),
    ];
    args.extend_from_slice(extra_args);
    Server::start(database, &args, &[])
}

fn https_url(server: &Server) -> String {
    format!("https://{}", server.address)
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Runs `tokend serve` that must fail at start, with the storage flags and a free port.
fn serve_failing(database: &TestDatabase, tls_args: &[&str]) -> Output {
    let address = format!("127.0.0.1:{}", process::free_port());
    let flags = process::storage_flags(database);
    let mut args = vec!["serve", "--listen", &address];
    args.extend(flags.iter().map(String::as_str));
    args.extend_from_slice(tls_args);
    tokend(&args, None, None)
}

#[tokio::test(flavor = "multi_thread")]
async fn cli_over_https_with_private_ca() {
    let database = TestDatabase::create().await;
    let pki = create_pki(&database, "main");
    let (_, admin) = admin_create(&database, "admin", &["tokens:admin"]);
    let (_, service) = admin_create(&database, "svc:gateway", &["tokens:validate"]);
    let server = start_tls_server(&database, &pki, &[]);
    let url = https_url(&server);
    assert!(server.log().contains("TLS enabled"), "{}", server.log());
    assert!(!server.log().contains("client certificates required"));

    let generated = json(&tokend(
        &[
            "token",
            "generate",
            "--server",
            &url,
            "--ca-cert",
            pki.ca(),
            "--output",
            "json",
            "--name",
            "over tls",
            "--owner",
            "alice",
            "--scope",
            "tokens:self",
        ],
        Some(&admin),
        None,
    ));
    let id = generated["token"]["id"].as_str().unwrap().to_owned();
    let secret = generated["secret"].as_str().unwrap().to_owned();

    let listed = json(&tokend(
        &[
            "token",
            "list",
            "--server",
            &url,
            "--ca-cert",
            pki.ca(),
            "--output",
            "json",
        ],
        Some(&secret),
        None,
    ));
    assert_eq!(listed["tokens"][0]["id"], id.as_str());

    let validated = json(&tokend(
        &[
            "token",
            "validate",
            "--server",
            &url,
            "--ca-cert",
            pki.ca(),
            "--output",
            "json",
            &secret,
        ],
        Some(&service),
        None,
    ));
    assert_eq!(validated["result"], "VALID");

    // The DNS name in the certificate works too, and the flag has an
    // environment variable.
    let localhost = format!(
        "https://localhost:{}",
        server.address.rsplit(':').next().unwrap()
    );
    let mut command = Command::new(process::TOKEND);
    command
        .args(["token", "validate", "--server", &localhost, &secret])
        .env("TOKEND_TOKEN", &service)
        .env("TOKEND_CA_CERT", pki.ca())
        .env_remove("RUST_LOG");
    let by_name = process::run(command, None);
    assert!(by_name.status.success(), "{}", stderr(&by_name));

    assert!(server.stop(), "SIGTERM exits 0");
}

#[tokio::test(flavor = "multi_thread")]
async fn tls_server_rejects_untrusted_clients() {
    let database = TestDatabase::create().await;
    let pki = create_pki(&database, "main");
    let (_, user) = admin_create(&database, "alice", &["tokens:self"]);
    let server = start_tls_server(&database, &pki, &[]);

    let plaintext = tokend(
        &["token", "list", "--server", &server.url],
        Some(&user),
        None,
    );
    assert_eq!(plaintext.status.code(), Some(1), "{}", stderr(&plaintext));
    assert!(
        stderr(&plaintext).contains("use an https:// address"),
        "{}",
        stderr(&plaintext)
    );

    // Without --ca-cert only public root CAs are trusted, and the test CA is not one.
    let unknown_ca = tokend(
        &["token", "list", "--server", &https_url(&server)],
        Some(&user),
        None,
    );
    assert_eq!(unknown_ca.status.code(), Some(1));
    assert!(
        stderr(&unknown_ca).contains("UnknownIssuer"),
        "{}",
        stderr(&unknown_ca)
    );
    assert!(
        !stderr(&unknown_ca).contains("client certificate"),
        "a server certificate problem is not blamed on client certificates: {}",
        stderr(&unknown_ca)
    );
    assert!(
        stderr(&unknown_ca).contains("--ca-cert"),
        "the error names the flag that fixes it: {}",
        stderr(&unknown_ca)
    );

    let ca_flag_on_http = tokend(
        &[
            "token",
            "list",
            "--server",
            &server.url,
            "--ca-cert",
            pki.ca(),
        ],
        Some(&user),
        None,
    );
    assert_eq!(ca_flag_on_http.status.code(), Some(1));
    assert!(
        stderr(&ca_flag_on_http).contains("https://"),
        "{}",
        stderr(&ca_flag_on_http)
    );

    // The failed handshakes leave the server serving.
    let listed = tokend(
        &[
            "token",
            "list",
            "--server",
            &https_url(&server),
            "--ca-cert",
            pki.ca(),
        ],
        Some(&user),
        None,
    );
    assert!(listed.status.success(), "{}", stderr(&listed));
}

#[tokio::test(flavor = "multi_thread")]
async fn mutual_tls_requires_client_certificate() {
    let database = TestDatabase::create().await;
    let pki = create_pki(&database, "main");
    let other = create_pki(&database, "other");
    let (_, service) = admin_create(&database, "svc:gateway", &["tokens:validate"]);
    let (_, user) = admin_create(&database, "alice", &["tokens:self"]);
    let server = start_tls_server(&database, &pki, &["--tls-client-ca", pki.ca()]);
    let url = https_url(&server);
    assert!(
        server.log().contains("client certificates required"),
        "{}",
        server.log()
    );

    // The client sees the server's rejection as the CertificateRequired
    // alert, "broken pipe" or "connection closed", depending on timing.
    // Several runs make it likely that more than one of them is checked.
    for _ in 0..5 {
        let without_cert = tokend(
            &[
                "token",
                "validate",
                "--server",
                &url,
                "--ca-cert",
                pki.ca(),
                &user,
            ],
            Some(&service),
            None,
        );
        assert_eq!(
            without_cert.status.code(),
            Some(1),
            "a client without a certificate is rejected: {}",
            stderr(&without_cert)
        );
        let message = stderr(&without_cert);
        assert!(
            message.contains("requires a client certificate"),
            "{message}"
        );
        assert!(message.contains("--client-cert"), "{message}");
    }

    let foreign_cert = tokend(
        &[
            "token",
            "validate",
            "--server",
            &url,
            "--ca-cert",
            pki.ca(),
            "--client-cert",
            other.client.cert(),
            "--client-key",
            other.client.key(),
            &user,
        ],
        Some(&service),
        None,
    );
    assert_eq!(
        foreign_cert.status.code(),
        Some(1),
        "a certificate from another CA is rejected: {}",
        stderr(&foreign_cert)
    );
    let message = stderr(&foreign_cert);
    assert!(
        message.contains("rejected the client certificate in --client-cert"),
        "{message}"
    );
    assert!(message.contains(other.client.cert()), "{message}");

    let with_cert = tokend(
        &[
            "token",
            "validate",
            "--server",
            &url,
            "--ca-cert",
            pki.ca(),
            "--client-cert",
            pki.client.cert(),
            "--client-key",
            pki.client.key(),
            "--output",
            "json",
            &user,
        ],
        Some(&service),
        None,
    );
    assert_eq!(json(&with_cert)["result"], "VALID");

    let mut from_env = Command::new(process::TOKEND);
    from_env
        .args(["token", "list", "--server", &url])
        .env("TOKEND_TOKEN", &user)
        .env("TOKEND_CA_CERT", pki.ca())
        .env("TOKEND_CLIENT_CERT", pki.client.cert())
        .env("TOKEND_CLIENT_KEY", pki.client.key())
        .env_remove("RUST_LOG");
    let listed = process::run(from_env, None);
    assert!(listed.status.success(), "{}", stderr(&listed));

    assert!(server.stop(), "SIGTERM exits 0");
}

#[tokio::test(flavor = "multi_thread")]
async fn server_tls_flags_from_environment() {
    let database = TestDatabase::create().await;
    let pki = create_pki(&database, "main");
    let (_, user) = admin_create(&database, "alice", &["tokens:self"]);
    let server = Server::start(
        &database,
        &[],
        &[
            ("TOKEND_TLS_CERT", pki.server.cert()),
            ("TOKEND_TLS_KEY", pki.server.key()),
            ("TOKEND_TLS_CLIENT_CA", pki.ca()),
        ],
    );

    let listed = tokend(
        &[
            "token",
            "list",
            "--server",
            &https_url(&server),
            "--ca-cert",
            pki.ca(),
            "--client-cert",
            pki.client.cert(),
            "--client-key",
            pki.client.key(),
        ],
        Some(&user),
        None,
    );
    assert!(listed.status.success(), "{}", stderr(&listed));
    let without_cert = tokend(
        &[
            "token",
            "list",
            "--server",
            &https_url(&server),
            "--ca-cert",
            pki.ca(),
        ],
        Some(&user),
        None,
    );
    assert_eq!(without_cert.status.code(), Some(1));
    let message = stderr(&without_cert);
    assert!(
        message.contains("requires a client certificate"),
        "`token list` explains the rejection too: {message}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_tls_files_stop_serve() {
    let database = TestDatabase::create().await;
    let pki = create_pki(&database, "main");
    let other = create_pki(&database, "other");
    let missing = database.dir.path().join("missing.pem");
    let missing = missing.to_str().unwrap();

    let output = serve_failing(
        &database,
        &["--tls-cert", missing, "--tls-key", pki.server.key()],
    );
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.contains("--tls-cert"), "{message}");
    assert!(message.contains(missing), "{message}");
    assert!(!message.contains("tokend listening"), "{message}");

    let output = serve_failing(
        &database,
        &["--tls-cert", pki.server.cert(), "--tls-key", missing],
    );
    let message = stderr(&output);
    assert!(message.contains("--tls-key"), "{message}");
    assert!(message.contains(missing), "{message}");

    let output = serve_failing(
        &database,
        &[
            "--tls-cert",
            pki.server.cert(),
            "--tls-key",
            pki.server.key(),
            "--tls-client-ca",
            missing,
        ],
    );
    let message = stderr(&output);
    assert!(message.contains("--tls-client-ca"), "{message}");
    assert!(message.contains(missing), "{message}");

    // Key and certificate swapped: the certificate file holds only a key.
    let output = serve_failing(
        &database,
        &[
            "--tls-cert",
            pki.server.key(),
            "--tls-key",
            pki.server.key(),
        ],
    );
    let message = stderr(&output);
    assert!(message.contains("--tls-cert"), "{message}");
    assert!(message.contains("contains no certificate"), "{message}");

    let output = serve_failing(
        &database,
        &[
            "--tls-cert",
            pki.server.cert(),
            "--tls-key",
            pki.server.cert(),
        ],
    );
    let message = stderr(&output);
    assert!(message.contains("--tls-key"), "{message}");
    assert!(message.contains("contains no private key"), "{message}");

    // A key from another certificate: the message names both files and
    // never shows the key.
    let output = serve_failing(
        &database,
        &[
            "--tls-cert",
            pki.server.cert(),
            "--tls-key",
            other.server.key(),
        ],
    );
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    assert!(message.contains("invalid TLS files"), "{message}");
    assert!(message.contains(other.server.key()), "{message}");
    let key_pem = std::fs::read_to_string(&other.server.key).unwrap();
    for line in key_pem.lines().filter(|line| !line.starts_with("-----")) {
        assert!(!message.contains(line), "the error shows the private key");
    }

    let output = serve_failing(&database, &["--tls-cert", pki.server.cert()]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "clap rejects a lone --tls-cert"
    );
    assert!(stderr(&output).contains("--tls-key"), "{}", stderr(&output));
}
