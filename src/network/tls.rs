//! TLS for the Kafka listeners and the admin HTTP port, with rustls (aws-lc-rs provider).
//!
//! A [`TlsSource`] holds the server configuration built from `[tls]`'s PEM files and builds it
//! again when one of the files changes on disk (checked at most every `reload_check_ms`, when a
//! connection arrives): new connections get the new certificate, open ones keep the session they
//! negotiated. A file that cannot be read or parsed keeps the previous configuration in service
//! and is logged; only at start is it an error.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::RootCertStore;
use rustls::server::WebPkiClientVerifier;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{ClientAuth, TlsConfig};

/// Why a TLS configuration cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{path}: {message}")]
    File { path: PathBuf, message: String },
    #[error("tls: {0}")]
    Config(String),
}

/// The server side of TLS for one listener (its `client_auth`), reloaded when files change.
pub struct TlsSource {
    files: TlsConfig,
    client_auth: ClientAuth,
    alpn: Vec<Vec<u8>>,
    state: Mutex<Loaded>,
}

struct Loaded {
    config: Arc<rustls::ServerConfig>,
    stamps: Vec<Option<SystemTime>>,
    checked: Instant,
}

impl TlsSource {
    /// Builds the configuration once; an unreadable or invalid file is an error here.
    pub fn new(files: &TlsConfig, client_auth: ClientAuth) -> Result<Self, TlsError> {
        Self::with_alpn(files, client_auth, Vec::new())
    }

    /// As [`TlsSource::new`], offering these ALPN protocols (the HTTP port offers `http/1.1`).
    pub fn with_alpn(
        files: &TlsConfig,
        client_auth: ClientAuth,
        alpn: Vec<Vec<u8>>,
    ) -> Result<Self, TlsError> {
        let stamps = stamps(files, client_auth);
        let config = build(files, client_auth, &alpn)?;
        Ok(Self {
            files: files.clone(),
            client_auth,
            alpn,
            state: Mutex::new(Loaded {
                config,
                stamps,
                checked: Instant::now(),
            }),
        })
    }

    /// The configuration for a new connection: the files' current one.
    pub fn current(&self) -> Arc<rustls::ServerConfig> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let every = Duration::from_millis(self.files.reload_check_ms.max(1));
        if state.checked.elapsed() >= every {
            state.checked = Instant::now();
            let now = stamps(&self.files, self.client_auth);
            if now != state.stamps {
                match build(&self.files, self.client_auth, &self.alpn) {
                    Ok(config) => {
                        tracing::info!(
                            cert = %self.files.cert_file,
                            "tls: certificate files changed; new connections use them"
                        );
                        state.config = config;
                        state.stamps = now;
                    }
                    Err(e) => {
                        // Half-written files (a copy in progress) are read again next time.
                        tracing::warn!(error = %e, "tls: files changed but cannot be used; keeping the previous ones");
                    }
                }
            }
        }
        state.config.clone()
    }

    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.current())
    }
}

fn watched(files: &TlsConfig, client_auth: ClientAuth) -> Vec<&str> {
    let mut paths = vec![files.cert_file.as_str(), files.key_file.as_str()];
    if client_auth != ClientAuth::None {
        paths.push(files.client_ca_file.as_str());
    }
    paths
}

fn stamps(files: &TlsConfig, client_auth: ClientAuth) -> Vec<Option<SystemTime>> {
    watched(files, client_auth)
        .into_iter()
        .map(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        .collect()
}

fn file_error(path: &str, message: impl ToString) -> TlsError {
    TlsError::File {
        path: PathBuf::from(path),
        message: message.to_string(),
    }
}

/// Every certificate of a PEM file (at least one).
pub fn read_certificates(path: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(Path::new(path))
        .map_err(|e| file_error(path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "no CERTIFICATE in this PEM file"));
    }
    Ok(certs)
}

fn build(
    files: &TlsConfig,
    client_auth: ClientAuth,
    alpn: &[Vec<u8>],
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let chain = read_certificates(&files.cert_file)?;
    let key = PrivateKeyDer::from_pem_file(Path::new(&files.key_file))
        .map_err(|e| file_error(&files.key_file, e))?;
    let versions: &[&'static rustls::SupportedProtocolVersion] = if files.min_version == "1.3" {
        &[&rustls::version::TLS13]
    } else {
        &[&rustls::version::TLS13, &rustls::version::TLS12]
    };
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(versions)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match client_auth {
        ClientAuth::None => builder.with_no_client_auth(),
        ClientAuth::Requested | ClientAuth::Required => {
            let mut roots = RootCertStore::empty();
            for ca in read_certificates(&files.client_ca_file)? {
                roots
                    .add(ca)
                    .map_err(|e| file_error(&files.client_ca_file, e))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
            let verifier = if client_auth == ClientAuth::Requested {
                verifier.allow_unauthenticated()
            } else {
                verifier
            };
            let verifier = verifier
                .build()
                .map_err(|e| file_error(&files.client_ca_file, e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| file_error(&files.cert_file, format!("certificate and key: {e}")))?;
    config.alpn_protocols = alpn.to_vec();
    Ok(Arc::new(config))
}

/// An HTTP(S) client for the broker's own outgoing requests (peers' search ports, JWKS URLs):
/// TLS through the same rustls provider, trusting `[tls] ca_file` when it is set, else the
/// public Web PKI roots.
pub fn http_agent(files: &TlsConfig, timeout: Duration) -> ureq::Agent {
    let roots = if files.ca_file.trim().is_empty() {
        ureq::tls::RootCerts::WebPki
    } else {
        match read_certificates(&files.ca_file) {
            Ok(certs) => {
                let certs: Vec<ureq::tls::Certificate<'static>> = certs
                    .iter()
                    .map(|c| ureq::tls::Certificate::from_der(c.as_ref()).to_owned())
                    .collect();
                ureq::tls::RootCerts::new_with_certs(&certs)
            }
            Err(e) => {
                tracing::warn!(error = %e, "tls.ca_file cannot be read; HTTPS requests trust no certificate");
                ureq::tls::RootCerts::new_with_certs(&[])
            }
        }
    };
    let tls = ureq::tls::TlsConfig::builder()
        .provider(ureq::tls::TlsProvider::Rustls)
        .unversioned_rustls_crypto_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .root_certs(roots)
        .build();
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(timeout))
        .tls_config(tls)
        .build()
        .into()
}

/// A TLS listener for the admin HTTP port: accepts TCP connections and completes their
/// handshakes concurrently, so a slow or silent client never holds up the others.
pub struct TlsListener {
    handshakes: tokio::sync::mpsc::Receiver<(
        tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
        std::net::SocketAddr,
    )>,
    local: std::net::SocketAddr,
    _acceptor: tokio::task::JoinHandle<()>,
}

impl TlsListener {
    pub fn new(listener: tokio::net::TcpListener, source: Arc<TlsSource>) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let acceptor = tokio::spawn(async move {
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "admin http: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    return;
                }
                let tx = tx.clone();
                let acceptor = source.acceptor();
                tokio::spawn(async move {
                    match tokio::time::timeout(Duration::from_secs(10), acceptor.accept(stream))
                        .await
                    {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "admin http: tls handshake failed")
                        }
                        Err(_) => tracing::debug!(%peer, "admin http: tls handshake timed out"),
                    }
                });
            }
        });
        Ok(Self {
            handshakes: rx,
            local,
            _acceptor: acceptor,
        })
    }
}

impl Drop for TlsListener {
    fn drop(&mut self) {
        self._acceptor.abort();
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.handshakes.recv().await {
            Some(accepted) => accepted,
            // The acceptor task ended (only when the runtime stops): wait forever.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}
