//! The Kafka listener: accepts connections up to a limit, reads length-prefixed request frames,
//! answers them in order, and closes idle or misbehaving connections.
//!
//! Requests on one connection are handled one at a time, as Kafka does, so responses leave in
//! the order requests arrived. A connection that sends garbage is closed with a log line; it
//! never affects any other connection. This layer knows no API: a [`Service`] (the broker's
//! dispatcher) turns each frame into a response and keeps a session per connection.

pub mod frame;
pub mod sendfile;
pub mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use rustls_pki_types::CertificateDer;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use crate::config::SecurityProtocol;
use crate::protocol::{Chunk, ProtocolError, Response};

/// A Kafka listener as its connections see it.
pub struct ListenerContext {
    /// The listener's name (as in `advertised.listeners`).
    pub name: Arc<str>,
    pub protocol: SecurityProtocol,
    /// TLS listeners: their certificates.
    pub tls: Option<Arc<tls::TlsSource>>,
    /// SASL listeners: the mechanisms offered.
    pub sasl_mechanisms: Vec<String>,
}

impl ListenerContext {
    pub fn plaintext(name: &str) -> Self {
        Self {
            name: name.into(),
            protocol: SecurityProtocol::Plaintext,
            tls: None,
            sasl_mechanisms: Vec::new(),
        }
    }
}

/// What the network layer knows of a new connection.
pub struct ConnectionInfo {
    pub peer: SocketAddr,
    pub listener: Arc<ListenerContext>,
    /// The client's certificate (leaf) when it presented one over TLS.
    pub peer_certificate: Option<CertificateDer<'static>>,
}

/// What answers the requests of a listener's connections.
pub trait Service: Send + Sync + 'static {
    /// Per-connection state, made when the connection is accepted.
    type Session: Send;

    fn open(&self, conn: &ConnectionInfo) -> Self::Session;

    /// True once the session must end after the response just written (a failed SASL
    /// authentication is answered, then the connection closed).
    fn closing(&self, _session: &Self::Session) -> bool {
        false
    }

    /// How long (ms) to read nothing more from the connection after the response just written
    /// (a client over its quota, KIP-219); resets it. 0: read on.
    fn take_throttle(&self, _session: &mut Self::Session) -> u64 {
        0
    }

    /// Answers one request frame (size prefix removed). `Ok(None)`: no response is sent.
    /// `Err`: the connection is closed.
    fn call<'a>(
        &'a self,
        session: &'a mut Self::Session,
        frame: Bytes,
    ) -> BoxFuture<'a, Result<Option<Response>, ProtocolError>>;
}

/// A listener's limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    /// Largest request frame accepted.
    pub request_max_bytes: u32,
    /// A connection silent this long, or not reading its response this long, is closed.
    pub idle_timeout: Duration,
}

/// How long a TLS handshake may take.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts connections until `shutdown` turns true.
pub async fn accept_loop<S: Service>(
    listener: TcpListener,
    context: Arc<ListenerContext>,
    service: Arc<S>,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) {
    let limit = Arc::new(Semaphore::new(limits.max_connections));
    let mut backoff = Duration::from_millis(5);
    loop {
        let permit = tokio::select! {
            p = limit.clone().acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = shutdown.changed() => return,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                backoff = Duration::from_millis(5);
                let service = service.clone();
                let shutdown = shutdown.clone();
                let context = context.clone();
                tokio::spawn(async move {
                    let connections = &crate::metrics::get().connections;
                    connections.inc();
                    let result = match open_transport(stream, peer, context).await {
                        Some((transport, conn)) => {
                            serve_connection(transport, conn, service, limits, shutdown).await
                        }
                        None => Ok(()),
                    };
                    connections.dec();
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "connection ended with an error");
                    }
                    drop(permit);
                });
            }
            Err(e) => {
                // Out of file descriptors and similar: back off instead of spinning.
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(1));
            }
        }
    }
}

/// Bytes reserved for a read when the buffer has less room than that. The buffer is empty and
/// released between requests, so an idle connection holds no read buffer at all; a frame's
/// room grows with what arrives (doubling, at most [`MAX_RESERVE`] at a time), not with what
/// its header claims.
const READ_CHUNK: usize = 8 * 1024;
const MAX_RESERVE: usize = 1 << 20;

/// A connection's byte stream: the socket itself, or TLS over it.
enum Transport {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// Sets the socket up and, on a TLS listener, runs the handshake. `None`: the connection is
/// over (a failed handshake — a plaintext client on a TLS port, an unknown client certificate —
/// is logged and touches nothing else).
async fn open_transport(
    stream: TcpStream,
    peer: SocketAddr,
    listener: Arc<ListenerContext>,
) -> Option<(Transport, ConnectionInfo)> {
    if let Err(e) = stream.set_nodelay(true) {
        tracing::debug!(%peer, error = %e, "cannot set TCP_NODELAY");
    }
    let Some(source) = listener.tls.clone() else {
        let conn = ConnectionInfo {
            peer,
            listener,
            peer_certificate: None,
        };
        return Some((Transport::Plain(stream), conn));
    };
    let accepted = tokio::time::timeout(HANDSHAKE_TIMEOUT, source.acceptor().accept(stream)).await;
    let tls = match accepted {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            crate::metrics::get()
                .security
                .with_label_values(&["tls_handshake_failures"])
                .inc();
            tracing::info!(%peer, listener = %listener.name, error = %e, "tls handshake failed");
            return None;
        }
        Err(_) => {
            crate::metrics::get()
                .security
                .with_label_values(&["tls_handshake_failures"])
                .inc();
            tracing::info!(%peer, listener = %listener.name, "tls handshake timed out");
            return None;
        }
    };
    let peer_certificate = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| c.clone().into_owned());
    let conn = ConnectionInfo {
        peer,
        listener,
        peer_certificate,
    };
    Some((Transport::Tls(Box::new(tls)), conn))
}

/// Room for the next read into `buf`, which holds the start of a frame.
fn reserve_for_read(buf: &mut BytesMut) {
    if buf.capacity() - buf.len() < READ_CHUNK {
        // At most what already arrived (so the buffer at most doubles): a client that announces
        // a large frame and trickles bytes costs what it sent.
        let wanted = match frame::missing_bytes(buf) {
            0 => READ_CHUNK,
            missing => missing.min(buf.len().max(READ_CHUNK)).min(MAX_RESERVE),
        };
        buf.reserve(wanted);
    }
}

impl Transport {
    /// Waits for bytes and appends them to `buf`; `Ok(0)`: the peer closed.
    async fn read_some(&mut self, buf: &mut BytesMut) -> std::io::Result<usize> {
        match self {
            Transport::Plain(stream) => loop {
                // Wait for data without holding memory for it.
                stream.readable().await?;
                let read = if buf.is_empty() {
                    // A request's first bytes go through the stack: a wake-up with nothing to
                    // read (a fresh socket is often reported readable) takes no memory.
                    let mut head = [0u8; 512];
                    stream.try_read(&mut head).inspect(|&n| {
                        if n > 0 {
                            buf.reserve(READ_CHUNK);
                            buf.extend_from_slice(&head[..n]);
                        }
                    })
                } else {
                    reserve_for_read(buf);
                    stream.try_read_buf(buf)
                };
                match read {
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    other => return other,
                }
            },
            Transport::Tls(tls) => {
                if buf.is_empty() {
                    buf.reserve(READ_CHUNK);
                } else {
                    reserve_for_read(buf);
                }
                tls.read_buf(buf).await
            }
        }
    }

    async fn write_response(&mut self, resp: Response) -> std::io::Result<()> {
        match self {
            Transport::Plain(stream) => write_response(stream, resp).await,
            Transport::Tls(tls) => write_response_tls(tls, resp).await,
        }
    }
}

async fn serve_connection<S: Service>(
    mut transport: Transport,
    conn: ConnectionInfo,
    service: Arc<S>,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    let peer = conn.peer;
    let max = limits.request_max_bytes;
    let idle = limits.idle_timeout;
    let mut buf = BytesMut::new();
    let mut session = service.open(&conn);
    drop(conn);
    loop {
        let frame = loop {
            match frame::parse_frame(&mut buf, max) {
                Ok(Some(f)) => break f,
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!(%peer, error = %e, "closing connection: bad frame");
                    return Ok(());
                }
            }
            let read = tokio::select! {
                r = tokio::time::timeout(idle, transport.read_some(&mut buf)) => r,
                _ = shutdown.changed() => return Ok(()),
            };
            match read {
                Err(_) => {
                    tracing::debug!(%peer, "closing idle connection");
                    return Ok(());
                }
                Ok(Err(e)) => return Err(e),
                Ok(Ok(0)) => {
                    if !buf.is_empty() {
                        tracing::debug!(%peer, pending = buf.len(), "peer closed mid-frame");
                    }
                    return Ok(());
                }
                Ok(Ok(_)) => {}
            }
        };
        if buf.is_empty() {
            // Nothing pipelined behind this request: give the buffer back while it is handled.
            buf = BytesMut::new();
        }
        // Boxed (by the service), so an idle connection's task does not carry the state of the
        // largest handler.
        let handled = service.call(&mut session, frame).await;
        match handled {
            Ok(Some(resp)) => {
                // A client that stops reading its socket holds the connection no longer than an
                // idle one would.
                match tokio::time::timeout(idle, transport.write_response(resp)).await {
                    Ok(r) => r?,
                    Err(_) => {
                        tracing::debug!(%peer, "closing connection: response not read in time");
                        return Ok(());
                    }
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection");
                return Ok(());
            }
        }
        if service.closing(&session) {
            return Ok(());
        }
        let mute = service.take_throttle(&mut session);
        if mute > 0 {
            // Muted: the client's next request waits in the socket until its throttle is over.
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(mute)) => {}
                _ = shutdown.changed() => return Ok(()),
            }
        }
    }
}

async fn write_response(stream: &mut TcpStream, resp: Response) -> std::io::Result<()> {
    // Runs of in-memory chunks (headers, and records read from the remote tier) go out with one
    // `writev` each instead of a `write` per chunk; file ranges by `sendfile`.
    let mut run: Vec<Bytes> = Vec::new();
    for chunk in resp.chunks {
        match chunk {
            Chunk::Bytes(b) => run.push(b),
            Chunk::File(region) => {
                write_all_vectored(stream, &mut run).await?;
                sendfile::send_region(stream, &region).await?;
            }
        }
    }
    write_all_vectored(stream, &mut run).await
}

/// Most bytes gathered before they are handed to TLS: a few records of 16 KiB each.
const TLS_WRITE_CHUNK: usize = 256 * 1024;

/// A response over TLS: the bytes must pass through user space to be encrypted, so file ranges
/// are read (`pread`) into a buffer instead of sent with `sendfile`. Small chunks are gathered
/// so that TLS records are full.
async fn write_response_tls(
    tls: &mut tokio_rustls::server::TlsStream<TcpStream>,
    resp: Response,
) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let mut out: Vec<u8> = Vec::with_capacity(resp.len().min(TLS_WRITE_CHUNK));
    for chunk in resp.chunks {
        match chunk {
            Chunk::Bytes(b) if b.len() >= TLS_WRITE_CHUNK => {
                tls.write_all(&out).await?;
                out.clear();
                tls.write_all(&b).await?;
            }
            Chunk::Bytes(b) => {
                if out.len() + b.len() > TLS_WRITE_CHUNK {
                    tls.write_all(&out).await?;
                    out.clear();
                }
                out.extend_from_slice(&b);
            }
            Chunk::File(region) => {
                let mut position = region.position;
                let mut left = region.len as usize;
                while left > 0 {
                    if out.len() >= TLS_WRITE_CHUNK {
                        tls.write_all(&out).await?;
                        out.clear();
                    }
                    let start = out.len();
                    let n = left.min(TLS_WRITE_CHUNK - start);
                    out.resize(start + n, 0);
                    let read = region.file.read_at(&mut out[start..], position)?;
                    if read == 0 {
                        return Err(std::io::Error::new(
                            std::io::ErrorKind::UnexpectedEof,
                            "segment file ended before the promised fetch bytes",
                        ));
                    }
                    out.truncate(start + read);
                    position += read as u64;
                    left -= read;
                }
            }
        }
    }
    tls.write_all(&out).await?;
    tls.flush().await
}

/// Writes every byte of `bufs` (and empties it), as few `writev` calls as the socket allows.
async fn write_all_vectored(stream: &mut TcpStream, bufs: &mut Vec<Bytes>) -> std::io::Result<()> {
    use bytes::Buf;
    let mut first = 0;
    while first < bufs.len() {
        if bufs[first].is_empty() {
            first += 1;
            continue;
        }
        let slices: Vec<std::io::IoSlice<'_>> = bufs[first..]
            .iter()
            .take(64)
            .map(|b| std::io::IoSlice::new(b))
            .collect();
        let mut n = stream.write_vectored(&slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while n > 0 {
            let b = &mut bufs[first];
            let k = n.min(b.len());
            b.advance(k);
            n -= k;
            if b.is_empty() {
                first += 1;
            }
        }
    }
    bufs.clear();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What an idle connection costs in the broker is mostly its task: the state of
    /// `serve_connection` while it waits for bytes. It must stay small (the handler is boxed
    /// per request for that reason).
    #[tokio::test]
    async fn an_idle_connection_task_is_small() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = crate::Config {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        };
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let broker = crate::Broker::open(config, addr, None, None).expect("broker");
        let limits = broker.listener_limits();
        let service = Arc::new(crate::handlers::dispatch::Dispatcher::new(broker));
        let client = TcpStream::connect(addr).await.expect("connect");
        let (server, peer) = listener.accept().await.expect("accept");
        let (_tx, rx) = watch::channel(false);
        let conn = ConnectionInfo {
            peer,
            listener: Arc::new(ListenerContext::plaintext("PLAINTEXT")),
            peer_certificate: None,
        };
        let task = serve_connection(Transport::Plain(server), conn, service, limits, rx);
        let size = std::mem::size_of_val(&task);
        assert!(size <= 2048, "an idle connection's task holds {size} bytes");
        drop(client);
    }
}
