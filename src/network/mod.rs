//! The Kafka listener: accepts connections up to a limit, reads length-prefixed request frames,
//! answers them in order, and closes idle or misbehaving connections.
//!
//! Requests on one connection are handled one at a time, as Kafka does, so responses leave in
//! the order requests arrived. A connection that sends garbage is closed with a log line; it
//! never affects any other connection. This layer knows no API: a [`Service`] (the broker's
//! dispatcher) turns each frame into a response and keeps a session per connection.

pub mod frame;
pub mod sendfile;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use crate::protocol::{Chunk, ProtocolError, Response};

/// What answers the requests of a listener's connections.
pub trait Service: Send + Sync + 'static {
    /// Per-connection state, made when the connection is accepted.
    type Session: Send;

    fn open(&self, peer: SocketAddr) -> Self::Session;

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

/// Accepts connections until `shutdown` turns true.
pub async fn accept_loop<S: Service>(
    listener: TcpListener,
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
                tokio::spawn(async move {
                    let connections = &crate::metrics::get().connections;
                    connections.inc();
                    let result = serve_connection(stream, peer, service, limits, shutdown).await;
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

async fn serve_connection<S: Service>(
    mut stream: TcpStream,
    peer: SocketAddr,
    service: Arc<S>,
    limits: Limits,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let max = limits.request_max_bytes;
    let idle = limits.idle_timeout;
    let mut buf = BytesMut::new();
    let mut session = service.open(peer);
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
            // Wait for data without holding memory for it.
            let ready = tokio::select! {
                r = tokio::time::timeout(idle, stream.readable()) => r,
                _ = shutdown.changed() => return Ok(()),
            };
            match ready {
                Err(_) => {
                    tracing::debug!(%peer, "closing idle connection");
                    return Ok(());
                }
                Ok(Err(e)) => return Err(e),
                Ok(Ok(())) => {}
            }
            let read = if buf.is_empty() {
                // A request's first bytes go through the stack: a wake-up with nothing to read
                // (a fresh socket is often reported readable) takes no memory.
                let mut head = [0u8; 512];
                stream.try_read(&mut head).inspect(|&n| {
                    if n > 0 {
                        buf.reserve(READ_CHUNK);
                        buf.extend_from_slice(&head[..n]);
                    }
                })
            } else {
                if buf.capacity() - buf.len() < READ_CHUNK {
                    // At most what already arrived (so the buffer at most doubles): a client
                    // that announces a large frame and trickles bytes costs what it sent.
                    let wanted = match frame::missing_bytes(&buf) {
                        0 => READ_CHUNK,
                        missing => missing.min(buf.len().max(READ_CHUNK)).min(MAX_RESERVE),
                    };
                    buf.reserve(wanted);
                }
                stream.try_read_buf(&mut buf)
            };
            match read {
                Ok(0) => {
                    if !buf.is_empty() {
                        tracing::debug!(%peer, pending = buf.len(), "peer closed mid-frame");
                    }
                    return Ok(());
                }
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
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
                match tokio::time::timeout(idle, write_response(&mut stream, resp)).await {
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
        let task = serve_connection(server, peer, service, limits, rx);
        let size = std::mem::size_of_val(&task);
        assert!(size <= 2048, "an idle connection's task holds {size} bytes");
        drop(client);
    }
}
