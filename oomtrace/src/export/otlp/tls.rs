//! OTLP over TLS from the standard environment, with rustls (ring) on both
//! transports and no OpenSSL anywhere.
//!
//! opentelemetry-otlp 0.33 reads `OTEL_EXPORTER_OTLP_[<SIGNAL>_]INSECURE`
//! itself (gRPC only: a schemeless endpoint is `https://` unless it is
//! `true`) but not the certificate settings, so they are read here, each
//! signal-specific variable before the generic one, as the OTLP exporter
//! specification orders them:
//!
//! - `OTEL_EXPORTER_OTLP_[<SIGNAL>_]CERTIFICATE`: PEM file of the CA(s) that
//!   sign the collector's certificate; when set, the only roots trusted
//!   (without it, the system's roots).
//! - `OTEL_EXPORTER_OTLP_[<SIGNAL>_]CLIENT_CERTIFICATE` and `..._CLIENT_KEY`:
//!   PEM certificate (chain) and private key for mutual TLS; both or neither.
//!
//! Every file is read and parsed at startup: an unreadable file or one with no
//! PEM certificate/key is an error naming the variable and the file, so a
//! typo stops the daemon instead of failing every export later.

use std::{path::PathBuf, time::Duration};

use opentelemetry_otlp::tonic_types::transport::{Certificate, ClientTlsConfig, Identity};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject as _};

/// The signal whose `OTEL_EXPORTER_OTLP_<SIGNAL>_*` variables come first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Logs,
    Metrics,
}

impl Signal {
    fn infix(self) -> &'static str {
        match self {
            Signal::Logs => "LOGS",
            Signal::Metrics => "METRICS",
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Signal::Logs => "logs",
            Signal::Metrics => "metrics",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The message carries the operating system's reason; not chained again.
    #[error("cannot read {path} (from {variable}): {error}")]
    Read { variable: String, path: PathBuf, error: std::io::Error },
    #[error("{path} (from {variable}) holds no usable PEM {what}: {reason}; give the path of a PEM file")]
    Pem { variable: String, path: PathBuf, what: &'static str, reason: String },
    #[error("{set} is set but {missing} is not: mutual TLS needs both the client certificate and its key")]
    HalfIdentity { set: String, missing: String },
    #[error("cannot build the OTLP/HTTP client with the TLS settings: {0}")]
    Client(String),
}

/// One PEM file named by a variable, read and checked.
#[derive(Clone, Debug)]
struct PemFile {
    variable: String,
    path: PathBuf,
    bytes: Vec<u8>,
}

/// The TLS settings of one signal's exporter.
#[derive(Clone, Debug, Default)]
pub struct TlsSettings {
    ca: Option<PemFile>,
    client: Option<(PemFile, PemFile)>,
    /// The gRPC endpoint is `https://` (explicitly, or schemeless and not
    /// `INSECURE`): without a CA file the system's roots are loaded.
    grpc_uses_tls: bool,
}

/// The first non-empty of `OTEL_EXPORTER_OTLP_<SIGNAL>_<name>` and
/// `OTEL_EXPORTER_OTLP_<name>`, with the variable it came from.
fn setting(signal: Signal, name: &str) -> Option<(String, String)> {
    [format!("OTEL_EXPORTER_OTLP_{}_{name}", signal.infix()), format!("OTEL_EXPORTER_OTLP_{name}")]
        .into_iter()
        .find_map(|variable| std::env::var(&variable).ok().filter(|v| !v.trim().is_empty()).map(|v| (variable, v)))
}

fn read(variable: String, path: String) -> Result<PemFile, TlsError> {
    let path = PathBuf::from(path.trim());
    match std::fs::read(&path) {
        Ok(bytes) => Ok(PemFile { variable, path, bytes }),
        Err(error) => Err(TlsError::Read { variable, path, error }),
    }
}

fn certificates(file: &PemFile) -> Result<(), TlsError> {
    let pem_error = |reason: String| TlsError::Pem {
        variable: file.variable.clone(),
        path: file.path.clone(),
        what: "certificate",
        reason,
    };
    let certs = CertificateDer::pem_slice_iter(&file.bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem_error("no -----BEGIN CERTIFICATE----- section".to_owned()));
    }
    Ok(())
}

fn private_key(file: &PemFile) -> Result<(), TlsError> {
    PrivateKeyDer::from_pem_slice(&file.bytes).map(drop).map_err(|e| TlsError::Pem {
        variable: file.variable.clone(),
        path: file.path.clone(),
        what: "private key",
        reason: e.to_string(),
    })
}

/// Whether the gRPC endpoint of `signal` is TLS, by the crate's own rule:
/// `https://`, or no scheme and `INSECURE` not `true` (the default endpoint
/// `http://localhost:4317` is plain text).
fn grpc_uses_tls(signal: Signal) -> bool {
    let Some((_, endpoint)) = setting(signal, "ENDPOINT") else { return false };
    let endpoint = endpoint.trim().to_ascii_lowercase();
    if endpoint.starts_with("https://") {
        return true;
    }
    if endpoint.contains("://") {
        return false;
    }
    !setting(signal, "INSECURE").is_some_and(|(_, v)| v.trim().eq_ignore_ascii_case("true"))
}

impl TlsSettings {
    /// Reads and checks the files the environment names for `signal`.
    pub fn from_env(signal: Signal) -> Result<Self, TlsError> {
        let ca = setting(signal, "CERTIFICATE").map(|(var, path)| read(var, path)).transpose()?;
        if let Some(ca) = &ca {
            certificates(ca)?;
        }
        let cert = setting(signal, "CLIENT_CERTIFICATE");
        let key = setting(signal, "CLIENT_KEY");
        let client = match (cert, key) {
            (Some((cert_var, cert_path)), Some((key_var, key_path))) => {
                let cert = read(cert_var, cert_path)?;
                certificates(&cert)?;
                let key = read(key_var, key_path)?;
                private_key(&key)?;
                Some((cert, key))
            }
            (Some((set, _)), None) => {
                return Err(TlsError::HalfIdentity { missing: set.replace("CLIENT_CERTIFICATE", "CLIENT_KEY"), set });
            }
            (None, Some((set, _))) => {
                return Err(TlsError::HalfIdentity { missing: set.replace("CLIENT_KEY", "CLIENT_CERTIFICATE"), set });
            }
            (None, None) => None,
        };
        Ok(Self { ca, client, grpc_uses_tls: grpc_uses_tls(signal) })
    }

    /// Whether any certificate setting is given.
    pub fn is_set(&self) -> bool {
        self.ca.is_some() || self.client.is_some()
    }

    /// One line for the startup log: which files, not their contents.
    pub fn describe(&self) -> String {
        let ca = self.ca.as_ref().map_or("system roots".to_owned(), |f| format!("CA {}", f.path.display()));
        match &self.client {
            Some((cert, _)) => format!("{ca}, client certificate {}", cert.path.display()),
            None => ca,
        }
    }

    /// The tonic TLS configuration, or `None` for a plain-text endpoint
    /// without certificate settings (the crate's own behaviour).
    pub fn tonic(&self) -> Option<ClientTlsConfig> {
        if !self.grpc_uses_tls && !self.is_set() {
            return None;
        }
        let mut config = ClientTlsConfig::new();
        config = match &self.ca {
            Some(ca) => config.ca_certificate(Certificate::from_pem(&ca.bytes)),
            // Only when TLS is used: loading them fails on a host without any.
            None if self.grpc_uses_tls => config.with_native_roots(),
            None => config,
        };
        if let Some((cert, key)) = &self.client {
            config = config.identity(Identity::from_pem(&cert.bytes, &key.bytes));
        }
        Some(config)
    }

    /// The OTLP/HTTP client: reqwest on rustls, with the CA file as its only
    /// roots when given (the system's otherwise) and the client identity.
    /// An `http://` endpoint never uses any of it.
    pub fn reqwest(&self, timeout: Duration) -> Result<reqwest::Client, TlsError> {
        install_crypto_provider();
        let mut builder = reqwest::Client::builder().timeout(timeout).tls_backend_rustls();
        if let Some(ca) = &self.ca {
            let certs = reqwest::Certificate::from_pem_bundle(&ca.bytes).map_err(|e| TlsError::Pem {
                variable: ca.variable.clone(),
                path: ca.path.clone(),
                what: "certificate",
                reason: e.to_string(),
            })?;
            builder = builder.tls_certs_only(certs);
        }
        if let Some((cert, key)) = &self.client {
            // reqwest's rustls identity is one PEM buffer: the key and the chain.
            let mut pem = key.bytes.clone();
            pem.push(b'\n');
            pem.extend_from_slice(&cert.bytes);
            let identity = reqwest::Identity::from_pem(&pem).map_err(|e| TlsError::Pem {
                variable: cert.variable.clone(),
                path: cert.path.clone(),
                what: "client certificate and key",
                reason: e.to_string(),
            })?;
            builder = builder.identity(identity);
        }
        builder.build().map_err(|e| TlsError::Client(e.to_string()))
    }
}

/// rustls' process-wide provider: ring (reqwest is built without a provider
/// of its own; tonic's `tls-ring` picks it too). Installing twice is harmless.
/// rustls 0.23.48 deprecates ring's provider for lacking post-quantum key
/// exchange; the alternative, aws-lc-rs, is a large C/assembly build (cmake)
/// for an image that otherwise links only glibc, and tonic's ring path is the
/// same provider.
#[allow(deprecated)]
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// `OTEL_EXPORTER_OTLP_[<SIGNAL>_]TIMEOUT` in milliseconds (default 10 s),
/// for the HTTP client built here (the crate applies it only to its own).
pub fn timeout(signal: Signal) -> Duration {
    setting(signal, "TIMEOUT")
        .and_then(|(_, v)| v.trim().parse::<u64>().ok())
        .map_or(Duration::from_secs(10), Duration::from_millis)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(variable: &str, bytes: &[u8]) -> PemFile {
        PemFile { variable: variable.to_owned(), path: PathBuf::from("/x.pem"), bytes: bytes.to_vec() }
    }

    #[test]
    fn a_file_without_a_certificate_names_its_variable_and_path() {
        let error = certificates(&file("OTEL_EXPORTER_OTLP_CERTIFICATE", b"not pem\n")).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("OTEL_EXPORTER_OTLP_CERTIFICATE") && message.contains("/x.pem"), "{message}");
    }

    #[test]
    fn a_key_file_without_a_key_is_refused() {
        let error = private_key(&file(
            "OTEL_EXPORTER_OTLP_CLIENT_KEY",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
        ))
        .unwrap_err();
        assert!(error.to_string().contains("private key"), "{error}");
    }

    #[test]
    fn an_unreadable_file_names_its_variable() {
        let error =
            read("OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE".to_owned(), "/nonexistent/ca.pem".to_owned()).unwrap_err();
        let message = error.to_string();
        assert!(message.contains("OTEL_EXPORTER_OTLP_LOGS_CERTIFICATE") && message.contains("/nonexistent/ca.pem"));
    }
}
