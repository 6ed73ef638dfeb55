//! TLS for `tokend serve` and for the `tokend token …` client commands:
//! reads the PEM files that the flags name into tonic's rustls
//! configurations.
//!
//! Errors name the flag and the path of the file, and never the file's
//! contents, because a key file that is passed in the wrong place must not
//! end up in a log.

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context, bail};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tonic::transport::{Certificate, ClientTlsConfig, Identity, Server, ServerTlsConfig};

/// Maximum time a client may take to complete the TLS handshake. Without a
/// limit, a connection that never sends its ClientHello keeps a handshake
/// task open for as long as the peer keeps the socket open.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// TLS flags of `tokend serve`. TLS is off unless `--tls-cert` and
/// `--tls-key` are set.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct ServerTlsArgs {
    /// PEM file with the server's certificate chain, leaf first. Turns on TLS and needs --tls-key.
    #[arg(
        long,
        env = "TOKEND_TLS_CERT",
        value_name = "FILE",
        requires = "tls_key"
    )]
    pub tls_cert: Option<PathBuf>,

    /// PEM file with the private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(
        long,
        env = "TOKEND_TLS_KEY",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_key: Option<PathBuf>,

    /// PEM file with the CA certificates for client certificates. When set, every client must present a certificate signed by one of them (mutual TLS). Needs --tls-cert and --tls-key.
    #[arg(
        long,
        env = "TOKEND_TLS_CLIENT_CA",
        value_name = "FILE",
        requires = "tls_cert"
    )]
    pub tls_client_ca: Option<PathBuf>,
}

impl ServerTlsArgs {
    /// Reads the files into a server configuration, or returns `None` when
    /// TLS is off. Logs whether TLS and client certificates are on.
    ///
    /// # Errors
    ///
    /// Returns an error naming the flag and the path when a file is missing,
    /// unreadable or contains no usable PEM block, when only one of
    /// `--tls-cert` and `--tls-key` is set, or when the key does not match
    /// the certificate.
    pub fn load(&self) -> anyhow::Result<Option<ServerTlsConfig>> {
        let (cert_path, key_path) = match (&self.tls_cert, &self.tls_key) {
            (Some(cert), Some(key)) => (cert, key),
            (None, None) => {
                if self.tls_client_ca.is_some() {
                    bail!("--tls-client-ca needs --tls-cert and --tls-key");
                }
                return Ok(None);
            }
            (Some(_), None) => bail!("--tls-cert needs --tls-key"),
            (None, Some(_)) => bail!("--tls-key needs --tls-cert"),
        };

        let identity = read_identity(("--tls-cert", cert_path), ("--tls-key", key_path))?;
        let mut config = ServerTlsConfig::new()
            .identity(identity)
            .timeout(HANDSHAKE_TIMEOUT);
        if let Some(ca_path) = &self.tls_client_ca {
            let ca = read_certificates("--tls-client-ca", ca_path)?;
            config = config.client_ca_root(Certificate::from_pem(ca));
        }

        // tonic parses the files again and pairs the key with the
        // certificate only when the server is built. Doing that here reports
        // a mismatched key or an unusable CA before the database is opened.
        if let Err(error) = Server::builder().tls_config(config.clone()) {
            let mut files = format!(
                "--tls-cert {}, --tls-key {}",
                cert_path.display(),
                key_path.display()
            );
            if let Some(ca_path) = &self.tls_client_ca {
                files.push_str(&format!(", --tls-client-ca {}", ca_path.display()));
            }
            bail!("invalid TLS files ({files}): {}", error_chain(&error));
        }

        // NOTE: tonic 0.14 logs a failed handshake, such as a client without
        // a certificate, only at debug level ("tls accept error").
        tracing::info!(cert = %cert_path.display(), "TLS enabled");
        if let Some(ca_path) = &self.tls_client_ca {
            tracing::info!(client_ca = %ca_path.display(), "client certificates required");
        }
        Ok(Some(config))
    }
}

/// Builds the client configuration of the `tokend token …` commands for an
/// `https://` server.
///
/// With `ca_cert`, only the CAs in that file are trusted, so a private CA
/// cannot be mixed up with a public one. Without it, the Mozilla root CAs
/// that the `webpki-roots` crate bundles are trusted. `client` is the
/// `(certificate, key)` pair presented for mutual TLS.
///
/// # Errors
///
/// Returns an error naming the flag and the path when a file is missing,
/// unreadable or contains no usable PEM block.
pub fn client_config(
    ca_cert: Option<&Path>,
    client: Option<(&Path, &Path)>,
) -> anyhow::Result<ClientTlsConfig> {
    let mut config = ClientTlsConfig::new();
    config = match ca_cert {
        Some(path) => {
            config.ca_certificate(Certificate::from_pem(read_certificates("--ca-cert", path)?))
        }
        None => config.with_webpki_roots(),
    };
    if let Some((cert_path, key_path)) = client {
        let identity = read_identity(("--client-cert", cert_path), ("--client-key", key_path))?;
        config = config.identity(identity);
    }
    Ok(config)
}

/// Reads a certificate chain and its private key.
fn read_identity(cert: (&str, &Path), key: (&str, &Path)) -> anyhow::Result<Identity> {
    let cert_pem = read_certificates(cert.0, cert.1)?;
    let key_pem = read_private_key(key.0, key.1)?;
    Ok(Identity::from_pem(cert_pem, key_pem))
}

/// Reads a PEM file and checks that it contains at least one certificate.
fn read_certificates(flag: &str, path: &Path) -> anyhow::Result<Vec<u8>> {
    let pem = read_file(flag, path)?;
    let mut count = 0;
    for item in CertificateDer::pem_slice_iter(&pem) {
        item.map_err(|error| {
            anyhow::anyhow!(
                "{flag} {} is not valid PEM: {}",
                path.display(),
                describe_pem_error(&error)
            )
        })?;
        count += 1;
    }
    if count == 0 {
        bail!(
            "{flag} {} contains no certificate: expected a PEM block starting with -----BEGIN CERTIFICATE-----",
            path.display()
        );
    }
    Ok(pem)
}

/// Reads a PEM file and checks that it contains a private key.
fn read_private_key(flag: &str, path: &Path) -> anyhow::Result<Vec<u8>> {
    let pem = read_file(flag, path)?;
    match PrivateKeyDer::from_pem_slice(&pem) {
        Ok(_) => Ok(pem),
        Err(rustls_pki_types::pem::Error::NoItemsFound) => bail!(
            "{flag} {} contains no private key: expected a PEM block such as -----BEGIN PRIVATE KEY-----",
            path.display()
        ),
        Err(error) => bail!(
            "{flag} {} is not valid PEM: {}",
            path.display(),
            describe_pem_error(&error)
        ),
    }
}

fn read_file(flag: &str, path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("failed to read {flag} {}", path.display()))
}

/// Describes a PEM parse error without the line it quotes, which could be
/// part of a key.
fn describe_pem_error(error: &rustls_pki_types::pem::Error) -> &'static str {
    use rustls_pki_types::pem::Error;
    match error {
        Error::MissingSectionEnd { .. } => "a block has no -----END line",
        Error::IllegalSectionStart { .. } => "a -----BEGIN line is malformed",
        Error::Base64Decode(_) => "a block is not valid base64",
        Error::NoItemsFound => "no PEM block found",
        Error::SectionTooLarge => "a block is larger than 256 MB",
        _ => "the file cannot be parsed",
    }
}

/// Formats an error with its sources, such as tonic's "transport error"
/// followed by the rustls error that caused it.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
