//! `tokend token …`: client commands that call a running server with the
//! credential in `TOKEND_TOKEN`.

use std::{io::Read, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Context, bail};
use clap::Subcommand;
use serde::Serialize;
use tonic::{Request, metadata::MetadataValue, transport::Channel};

use super::{OutputFormat, output};
use crate::{
    grpc::pb::{self, token_service_client::TokenServiceClient},
    tls,
};

/// Exit code of `token validate` when the token is not valid.
pub(super) const EXIT_NOT_VALID: u8 = 3;

/// Flags every client command shares.
#[derive(Debug, clap::Args)]
pub struct ClientArgs {
    /// Server address, such as http://127.0.0.1:50051, or https://tokend.example.com:50051 for TLS.
    #[arg(long, env = "TOKEND_SERVER", default_value = "http://127.0.0.1:50051")]
    server: String,

    /// PEM file with the CA certificates that sign the server's certificate, for an https:// server with a private CA. When set, only these CAs are trusted. Default: the Mozilla root CAs built into tokend.
    #[arg(long, env = "TOKEND_CA_CERT", value_name = "FILE")]
    ca_cert: Option<PathBuf>,

    /// PEM file with the client certificate chain for servers that require client certificates (mutual TLS). Needs --client-key.
    #[arg(
        long,
        env = "TOKEND_CLIENT_CERT",
        value_name = "FILE",
        requires = "client_key"
    )]
    client_cert: Option<PathBuf>,

    /// PEM file with the private key of --client-cert.
    #[arg(
        long,
        env = "TOKEND_CLIENT_KEY",
        value_name = "FILE",
        requires = "client_cert"
    )]
    client_key: Option<PathBuf>,

    /// The caller's token. Prefer the environment variable: command lines are visible to other users.
    #[arg(long, env = "TOKEND_TOKEN", hide_env_values = true)]
    token: String,

    /// Output format.
    #[arg(long, env = "TOKEND_OUTPUT", value_enum, default_value = "table")]
    output: OutputFormat,
}

/// Client commands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a token and print its secret once.
    Generate {
        /// Name or purpose of the token.
        #[arg(long)]
        name: String,
        /// Scope to grant; repeat for several.
        #[arg(long = "scope")]
        scopes: Vec<String>,
        /// Lifetime, such as 7d, 30d or 12h. Default: the server's default.
        #[arg(long, value_parser = humantime::parse_duration, group = "expiration")]
        ttl: Option<Duration>,
        /// Expiry time in RFC 3339, such as 2027-01-31T00:00:00Z.
        #[arg(long, group = "expiration")]
        expires_at: Option<String>,
        /// Never expire, where the server's policy allows it.
        #[arg(long, group = "expiration")]
        no_expiration: bool,
        /// Owner of the new token; only an admin may name another owner.
        #[arg(long, default_value = "")]
        owner: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// List tokens, newest first.
    List {
        /// Owner whose tokens to list; empty means your own, or everyone's for an admin.
        #[arg(long, default_value = "")]
        owner: String,
        /// Tokens per page, 1 to 1000; 0 means the server default of 50.
        #[arg(long, default_value_t = 0)]
        page_size: i32,
        /// Page token from a previous list.
        #[arg(long, default_value = "")]
        page_token: String,
        /// Include revoked tokens.
        #[arg(long)]
        include_revoked: bool,
        /// Follow page tokens until the last page.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Revoke a token by id.
    Revoke {
        /// Id of the token.
        id: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Check a token; exits 0 when valid and 3 when not. Reads the token from standard input when not given.
    Validate {
        /// The token to check. Omit it to read from standard input and keep it out of the process list.
        #[arg(value_name = "SECRET")]
        checked: Option<String>,
        /// Scope the token must hold; repeat for several.
        #[arg(long = "require-scope")]
        required_scopes: Vec<String>,
        #[command(flatten)]
        client: ClientArgs,
    },
}

/// Runs a client command.
///
/// # Errors
///
/// Returns the connection or RPC error with the server's message.
pub(super) async fn run(command: TokenCommand) -> anyhow::Result<ExitCode> {
    match command {
        TokenCommand::Generate {
            name,
            scopes,
            ttl,
            expires_at,
            no_expiration,
            owner,
            client,
        } => {
            let expiration = if let Some(ttl) = ttl {
                Some(pb::generate_request::Expiration::Ttl(
                    prost_types::Duration {
                        seconds: i64::try_from(ttl.as_secs()).context("--ttl is too long")?,
                        nanos: ttl.subsec_nanos() as i32,
                    },
                ))
            } else if let Some(text) = expires_at {
                let time = chrono::DateTime::parse_from_rfc3339(&text)
                    .with_context(|| format!("--expires-at {text:?} is not an RFC 3339 time"))?;
                Some(pb::generate_request::Expiration::ExpiresAt(
                    prost_types::Timestamp {
                        seconds: time.timestamp(),
                        nanos: time.timestamp_subsec_nanos() as i32,
                    },
                ))
            } else if no_expiration {
                Some(pb::generate_request::Expiration::NoExpiration(true))
            } else {
                None
            };
            let request = pb::GenerateRequest {
                name,
                scopes,
                expiration,
                owner,
            };
            let mut service = connect(&client).await?;
            let response = service
                .generate(authorized(&client, request)?)
                .await
                .map_err(|status| rpc_error(&client, status, true))?
                .into_inner();
            print_generated(&client, &response)?;
        }
        TokenCommand::List {
            owner,
            page_size,
            mut page_token,
            include_revoked,
            all,
            client,
        } => {
            let mut service = connect(&client).await?;
            let mut tokens = Vec::new();
            let mut first_call = true;
            let next = loop {
                let request = pb::ListRequest {
                    owner: owner.clone(),
                    page_size,
                    page_token: page_token.clone(),
                    include_revoked,
                };
                let page = service
                    .list(authorized(&client, request)?)
                    .await
                    .map_err(|status| rpc_error(&client, status, first_call))?
                    .into_inner();
                first_call = false;
                tokens.extend(page.tokens.iter().map(output::TokenView::from));
                if !all || page.next_page_token.is_empty() {
                    break page.next_page_token;
                }
                page_token = page.next_page_token;
            };
            print_list(&client, tokens, next)?;
        }
        TokenCommand::Revoke { id, client } => {
            let mut service = connect(&client).await?;
            let response = service
                .revoke(authorized(&client, pb::RevokeRequest { id })?)
                .await
                .map_err(|status| rpc_error(&client, status, true))?
                .into_inner();
            let token = response.token.context("the server returned no token")?;
            let view = output::TokenView::from(&token);
            match client.output {
                OutputFormat::Json => output::print_json(&view)?,
                OutputFormat::Table => output::print_table(&[view]),
            }
        }
        TokenCommand::Validate {
            checked,
            required_scopes,
            client,
        } => {
            let token = match checked {
                Some(token) => token,
                None => {
                    let mut text = String::new();
                    std::io::stdin()
                        .read_to_string(&mut text)
                        .context("failed to read the token from standard input")?;
                    text.trim().to_owned()
                }
            };
            let mut service = connect(&client).await?;
            let response = service
                .validate(authorized(
                    &client,
                    pb::ValidateRequest {
                        token,
                        required_scopes,
                    },
                )?)
                .await
                .map_err(|status| rpc_error(&client, status, true))?
                .into_inner();
            let valid = response.valid;
            print_validated(&client, &response)?;
            if !valid {
                return Ok(ExitCode::from(EXIT_NOT_VALID));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

impl ClientArgs {
    fn has_tls_flags(&self) -> bool {
        self.ca_cert.is_some() || self.client_cert.is_some() || self.client_key.is_some()
    }

    /// Returns `--server` with a scheme. A bare host:port is the common
    /// mistake. It means plaintext, which is right on loopback, unless a TLS
    /// flag shows that TLS is meant.
    fn server_url(&self) -> String {
        if self.server.contains("://") {
            self.server.clone()
        } else if self.has_tls_flags() {
            format!("https://{}", self.server)
        } else {
            format!("http://{}", self.server)
        }
    }
}

async fn connect(client: &ClientArgs) -> anyhow::Result<TokenServiceClient<Channel>> {
    let tls_flags = client.has_tls_flags();
    let mut endpoint = Channel::from_shared(client.server_url())
        .with_context(|| format!("--server {:?} is not a valid URL", client.server))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30));

    if endpoint.uri().scheme_str() == Some("https") {
        let identity = match (&client.client_cert, &client.client_key) {
            (Some(cert), Some(key)) => Some((cert.as_path(), key.as_path())),
            (None, None) => None,
            _ => bail!("--client-cert and --client-key must be set together"),
        };
        let config = tls::client_config(client.ca_cert.as_deref(), identity)?;
        endpoint = endpoint
            .tls_config(config)
            .context("invalid TLS settings for the client")?;
    } else if tls_flags {
        bail!(
            "--ca-cert, --client-cert and --client-key apply only to TLS: use an https:// URL in --server, not {:?}",
            client.server
        );
    }

    let channel = endpoint.connect().await.map_err(|error| {
        let failure = format!(
            "failed to connect to {}: {:#}",
            client.server,
            anyhow::Error::new(error)
        );
        match untrusted_server_hint(client, &failure) {
            Some(hint) => anyhow::anyhow!("{failure}\n{hint}"),
            None => anyhow::anyhow!(failure),
        }
    })?;
    Ok(TokenServiceClient::new(channel))
}

/// Explains a server certificate that no trusted CA signed, which rustls
/// reports as `UnknownIssuer`.
fn untrusted_server_hint(client: &ClientArgs, failure: &str) -> Option<String> {
    if !failure.contains("UnknownIssuer") {
        return None;
    }
    Some(match &client.ca_cert {
        None => "The server's certificate is not signed by a public CA. Pass the CA that signed it with --ca-cert or TOKEND_CA_CERT.".to_owned(),
        Some(ca) => format!(
            "The server's certificate is not signed by the CA in --ca-cert {}.",
            ca.display()
        ),
    })
}

/// Wraps a message with the caller's `authorization` metadata.
fn authorized<T>(client: &ClientArgs, message: T) -> anyhow::Result<Request<T>> {
    let mut request = Request::new(message);
    let value: MetadataValue<_> =
        format!("Bearer {}", client.token.trim())
            .parse()
            .map_err(|_| {
                anyhow::anyhow!("TOKEND_TOKEN contains characters that cannot be sent in a header")
            })?;
    request.metadata_mut().insert("authorization", value);
    Ok(request)
}

/// Formats a failed call with the causes that tonic nests in the status,
/// and explains a connection that a server requiring client certificates
/// closed. `first_call` is false after an earlier call on the same
/// connection succeeded, which rules out a rejected handshake.
fn rpc_error(client: &ClientArgs, status: tonic::Status, first_call: bool) -> anyhow::Error {
    let mut message = format!(
        "{}: {}",
        crate::grpc::code_name(status.code()),
        status.message()
    );
    // A failure below gRPC, such as a connection that a server requiring
    // client certificates closed, arrives as "transport error" with the
    // cause in the source chain. tonic nests errors whose messages repeat,
    // so a repeat is skipped.
    let mut last = status.message().to_owned();
    let mut failed_in_transport = false;
    let mut source = std::error::Error::source(&status);
    while let Some(cause) = source {
        failed_in_transport |= cause.is::<tonic::transport::Error>();
        let text = cause.to_string();
        if text != last {
            message.push_str(": ");
            message.push_str(&text);
        }
        last = text;
        source = cause.source();
    }

    let over_tls = client.server_url().starts_with("https://");
    if failed_in_transport && first_call {
        message.push('\n');
        if over_tls {
            message.push_str(&explain_closed_tls_connection(client, &message));
        } else {
            // A TLS server closes a connection that starts in plaintext.
            message.push_str("If the server uses TLS, use an https:// address in --server.");
        }
    }
    anyhow::anyhow!(message)
}

/// Prefix of rustls 0.23's message for a fatal alert from the server,
/// which the alert's name follows.
const FATAL_ALERT: &str = "received fatal alert: ";

/// The alert that a TLS 1.3 server sends when it requires a client
/// certificate and the client sent none.
const CERTIFICATE_REQUIRED_ALERT: &str = "received fatal alert: CertificateRequired";

/// Explains why a TLS server closed the connection on the first call.
///
/// In TLS 1.3 the server checks the client certificate after the client has
/// finished its side of the handshake, so the rejection arrives while the
/// first request is sent. Whether the client reads the server's alert or
/// only gets "broken pipe" or "connection closed" depends on timing, so both
/// lead to the same advice.
fn explain_closed_tls_connection(client: &ClientArgs, failure: &str) -> String {
    match &client.client_cert {
        None if failure.contains(CERTIFICATE_REQUIRED_ALERT) => {
            "The server requires a client certificate. Pass --client-cert and --client-key, or set TOKEND_CLIENT_CERT and TOKEND_CLIENT_KEY.".to_owned()
        }
        None => "The server closed the connection after the TLS handshake, so it most likely requires a client certificate. Pass --client-cert and --client-key, or set TOKEND_CLIENT_CERT and TOKEND_CLIENT_KEY.".to_owned(),
        Some(cert) if failure.contains(FATAL_ALERT) => format!(
            "The server rejected the client certificate in --client-cert {}. Check that a CA in the server's --tls-client-ca signed it and that it has not expired.",
            cert.display()
        ),
        Some(cert) => format!(
            "The server closed the connection after the TLS handshake, so it most likely rejected the client certificate in --client-cert {}. Check that a CA in the server's --tls-client-ca signed it and that it has not expired.",
            cert.display()
        ),
    }
}

#[derive(Serialize)]
struct GeneratedView {
    token: output::TokenView,
    secret: String,
}

fn print_generated(client: &ClientArgs, response: &pb::GenerateResponse) -> anyhow::Result<()> {
    let token = response
        .token
        .as_ref()
        .context("the server returned no token")?;
    let view = GeneratedView {
        token: output::TokenView::from(token),
        secret: response.secret.clone(),
    };
    match client.output {
        OutputFormat::Json => output::print_json(&view)?,
        OutputFormat::Table => {
            output::print_table(std::slice::from_ref(&view.token));
            println!();
            println!("secret: {}", view.secret);
            println!("Store the secret now: it is shown only once.");
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct ListView {
    tokens: Vec<output::TokenView>,
    next_page_token: String,
}

fn print_list(
    client: &ClientArgs,
    tokens: Vec<output::TokenView>,
    next_page_token: String,
) -> anyhow::Result<()> {
    match client.output {
        OutputFormat::Json => output::print_json(&ListView {
            tokens,
            next_page_token,
        }),
        OutputFormat::Table => {
            output::print_table(&tokens);
            if !next_page_token.is_empty() {
                println!();
                println!("More tokens: --page-token {next_page_token} (or --all)");
            }
            Ok(())
        }
    }
}

#[derive(Serialize)]
struct ValidatedView {
    valid: bool,
    result: &'static str,
    token: Option<output::TokenView>,
}

fn print_validated(client: &ClientArgs, response: &pb::ValidateResponse) -> anyhow::Result<()> {
    let result = match response.result() {
        pb::ValidateResult::Valid => "VALID",
        pb::ValidateResult::Malformed => "MALFORMED",
        pb::ValidateResult::NotFound => "NOT_FOUND",
        pb::ValidateResult::Expired => "EXPIRED",
        pb::ValidateResult::Revoked => "REVOKED",
        pb::ValidateResult::InsufficientScope => "INSUFFICIENT_SCOPE",
        pb::ValidateResult::Unspecified => bail!("the server returned no validation result"),
    };
    let view = ValidatedView {
        valid: response.valid,
        result,
        token: response.token.as_ref().map(output::TokenView::from),
    };
    match client.output {
        OutputFormat::Json => output::print_json(&view),
        OutputFormat::Table => {
            println!("result: {result}");
            if let Some(token) = view.token {
                output::print_table(&[token]);
            }
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn https_client(client_cert: Option<&str>) -> ClientArgs {
        ClientArgs {
            server: "https://127.0.0.1:50051".to_owned(),
            ca_cert: None,
            client_cert: client_cert.map(PathBuf::from),
            client_key: client_cert.map(|_| PathBuf::from("client.key")),
            token: String::new(),
            output: OutputFormat::Table,
        }
    }

    #[test]
    fn certificate_required_alert_is_explained() {
        let explanation = explain_closed_tls_connection(
            &https_client(None),
            "UNKNOWN: transport error: connection error: received fatal alert: CertificateRequired",
        );
        assert!(
            explanation.starts_with("The server requires a client certificate."),
            "{explanation}"
        );
        assert!(explanation.contains("--client-cert"), "{explanation}");
    }

    #[test]
    fn closed_connection_without_certificate_is_explained() {
        for failure in [
            "UNKNOWN: transport error: connection error: stream closed because of a broken pipe",
            "CANCELLED: operation was canceled: transport error: operation was canceled: connection closed",
        ] {
            let explanation = explain_closed_tls_connection(&https_client(None), failure);
            assert!(
                explanation.contains("most likely requires a client certificate"),
                "{explanation}"
            );
            assert!(explanation.contains("--client-cert"), "{explanation}");
        }
    }

    #[test]
    fn status_from_server_gets_no_explanation() {
        let error = rpc_error(
            &https_client(None),
            tonic::Status::unavailable("the token database is unavailable, try again later"),
            true,
        );
        assert_eq!(
            error.to_string(),
            "UNAVAILABLE: the token database is unavailable, try again later"
        );
    }

    #[test]
    fn rejected_certificate_names_the_file() {
        let client = https_client(Some("other/client.pem"));
        let alert = explain_closed_tls_connection(
            &client,
            "UNKNOWN: transport error: connection error: received fatal alert: UnknownCA",
        );
        assert!(
            alert.starts_with(
                "The server rejected the client certificate in --client-cert other/client.pem."
            ),
            "{alert}"
        );
        let closed = explain_closed_tls_connection(
            &client,
            "UNKNOWN: transport error: connection error: stream closed because of a broken pipe",
        );
        assert!(
            closed.contains(
                "most likely rejected the client certificate in --client-cert other/client.pem."
            ),
            "{closed}"
        );
    }
}
