//! The Kafka listener: accepts connections up to a limit, reads length-prefixed request frames,
//! answers them in order, and closes idle or misbehaving connections.
//!
//! Requests on one connection are handled one at a time, as Kafka does, so responses leave in
//! the order requests arrived. A connection that sends garbage is closed with a log line; it
//! never affects any other connection.

pub mod frame;
pub mod sendfile;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::BytesMut;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};

use crate::broker::Broker;
use crate::protocol::{self, Chunk, Response};

/// Accepts connections until `shutdown` turns true.
pub async fn accept_loop(
    listener: TcpListener,
    broker: Arc<Broker>,
    mut shutdown: watch::Receiver<bool>,
) {
    let limit = Arc::new(Semaphore::new(broker.config.kafka.max_connections));
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
                let broker = broker.clone();
                let shutdown = shutdown.clone();
                tokio::spawn(async move {
                    let connections = &crate::metrics::get().connections;
                    connections.inc();
                    let result = serve_connection(stream, peer, broker, shutdown).await;
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

async fn serve_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    broker: Arc<Broker>,
    mut shutdown: watch::Receiver<bool>,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let max = broker.config.kafka.request_max_bytes;
    let idle = Duration::from_millis(broker.config.kafka.idle_timeout_ms);
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let client_host = format!("/{}", peer.ip());
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
                r = tokio::time::timeout(idle, stream.read_buf(&mut buf)) => r,
                _ = shutdown.changed() => return Ok(()),
            };
            match read {
                Err(_) => {
                    tracing::debug!(%peer, "closing idle connection");
                    return Ok(());
                }
                Ok(Ok(0)) => {
                    if !buf.is_empty() {
                        tracing::debug!(%peer, pending = buf.len(), "peer closed mid-frame");
                    }
                    return Ok(());
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(e),
            }
        };
        match protocol::handle_frame(&broker, frame, &client_host).await {
            Ok(Some(resp)) => write_response(&mut stream, resp).await?,
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(%peer, error = %e, "closing connection");
                return Ok(());
            }
        }
    }
}

async fn write_response(stream: &mut TcpStream, resp: Response) -> std::io::Result<()> {
    for chunk in resp.chunks {
        match chunk {
            Chunk::Bytes(b) => stream.write_all(&b).await?,
            Chunk::File(region) => sendfile::send_region(stream, &region).await?,
        }
    }
    Ok(())
}
