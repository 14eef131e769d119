//! The controllers' own RPCs on the internal listener: Raft's vote, append-entries and snapshot
//! messages, and proposals forwarded to the leader.
//!
//! A message is `u32 length | postcard body`, big-endian, one request then one response on a
//! connection at a time; a connection is kept per peer and opened again after any error. Nothing
//! here is reachable from the Kafka or HTTP ports.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Raft};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use super::{Applied, ControllerTypes, Proposal};

type C = ControllerTypes;
type NodeId = u64;

/// Messages larger than this end the connection (snapshots travel in chunks far smaller).
const MAX_MESSAGE: usize = 64 << 20;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    AppendEntries(AppendEntriesRequest<C>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<C>),
    /// Records for the leader to propose, from a controller that is not the leader.
    Propose(Proposal),
    /// A broker's heartbeat, for the leader.
    Heartbeat {
        broker: i32,
        epoch: i64,
    },
    /// A broker's controlled shutdown: the leader moves its leaderships away first.
    ShutdownBroker {
        broker: i32,
        epoch: i64,
    },
    /// The quorum as the leader sees it.
    DescribeQuorum,
    /// A broker-only node asks to follow the metadata log as a learner at `addr`.
    AddLearner {
        node: u64,
        addr: String,
    },
}

#[derive(Debug, Serialize, Deserialize)]
pub enum Response {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
    /// The applied index, or why the proposal was not taken (not the leader any more, …).
    Propose(Result<Applied, String>),
    Heartbeat(Result<super::brokers::HeartbeatReply, String>),
    ShutdownBroker(Result<(), String>),
    DescribeQuorum(Result<super::brokers::QuorumDescription, String>),
    AddLearner(Result<(), String>),
}

/// Answers the requests that are not Raft's own (proposals, heartbeats, …), on the leader.
pub type LeaderHandler =
    Arc<dyn Fn(Request) -> futures::future::BoxFuture<'static, Response> + Send + Sync>;

async fn write_message<T: Serialize>(stream: &mut TcpStream, msg: &T) -> std::io::Result<()> {
    let body = postcard::to_stdvec(msg).map_err(std::io::Error::other)?;
    let mut frame = Vec::with_capacity(4 + body.len());
    frame.extend_from_slice(&(body.len() as u32).to_be_bytes());
    frame.extend_from_slice(&body);
    stream.write_all(&frame).await
}

async fn read_message<T: for<'a> Deserialize<'a>>(stream: &mut TcpStream) -> std::io::Result<T> {
    let mut len = [0u8; 4];
    stream.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_MESSAGE {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("controller message of {len} bytes"),
        ));
    }
    let mut body = vec![0u8; len];
    stream.read_exact(&mut body).await?;
    postcard::from_bytes(&body).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, e))
}

/// Serves the internal listener until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    raft: Raft<C>,
    leader: LeaderHandler,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.changed() => return,
        };
        let (mut stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(error = %e, "controller listener: accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let raft = raft.clone();
        let leader = leader.clone();
        let mut shutdown = shutdown.clone();
        tokio::spawn(async move {
            loop {
                let request = tokio::select! {
                    r = read_message::<Request>(&mut stream) => r,
                    _ = shutdown.changed() => return,
                };
                let request = match request {
                    Ok(r) => r,
                    Err(e) => {
                        if e.kind() != std::io::ErrorKind::UnexpectedEof {
                            tracing::debug!(%peer, error = %e, "controller connection ended");
                        }
                        return;
                    }
                };
                let response = match request {
                    Request::AppendEntries(r) => {
                        Response::AppendEntries(raft.append_entries(r).await)
                    }
                    Request::Vote(r) => Response::Vote(raft.vote(r).await),
                    Request::InstallSnapshot(r) => {
                        Response::InstallSnapshot(raft.install_snapshot(r).await)
                    }
                    other => leader(other).await,
                };
                if let Err(e) = write_message(&mut stream, &response).await {
                    tracing::debug!(%peer, error = %e, "controller connection ended");
                    return;
                }
            }
        });
    }
}

/// One request to `addr` on a connection of its own (for proposals forwarded to the leader).
pub async fn call(addr: &str, request: &Request, timeout: Duration) -> std::io::Result<Response> {
    tokio::time::timeout(timeout, async {
        let mut stream = TcpStream::connect(addr).await?;
        stream.set_nodelay(true)?;
        write_message(&mut stream, request).await?;
        read_message(&mut stream).await
    })
    .await
    .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "controller rpc timed out"))?
}

/// Makes a [`Peer`] per target node.
#[derive(Clone, Default)]
pub struct Network;

impl RaftNetworkFactory<C> for Network {
    type Network = Peer;

    async fn new_client(&mut self, target: NodeId, node: &BasicNode) -> Peer {
        Peer {
            target,
            addr: node.addr.clone(),
            conn: None,
        }
    }
}

/// The connection to one other controller.
pub struct Peer {
    target: NodeId,
    addr: String,
    conn: Option<TcpStream>,
}

impl Peer {
    async fn roundtrip(
        &mut self,
        request: &Request,
        ttl: Duration,
    ) -> Result<Response, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        let attempt = async {
            if self.conn.is_none() {
                let addr: SocketAddr = self.addr.parse().map_err(std::io::Error::other)?;
                let stream = TcpStream::connect(addr).await?;
                stream.set_nodelay(true)?;
                self.conn = Some(stream);
            }
            let stream = self.conn.as_mut().expect("connected above");
            write_message(stream, request).await?;
            read_message::<Response>(stream).await
        };
        match tokio::time::timeout(ttl, attempt).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e)) => {
                self.conn = None;
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::NotFound
                ) {
                    Err(RPCError::Unreachable(Unreachable::new(&e)))
                } else {
                    Err(RPCError::Network(NetworkError::new(&e)))
                }
            }
            Err(_) => {
                self.conn = None;
                let e =
                    std::io::Error::new(std::io::ErrorKind::TimedOut, "controller rpc timed out");
                Err(RPCError::Unreachable(Unreachable::new(&e)))
            }
        }
    }

    fn unexpected<E: std::error::Error>(&self) -> RPCError<NodeId, BasicNode, E> {
        let e = std::io::Error::new(std::io::ErrorKind::InvalidData, "unexpected response");
        RPCError::Network(NetworkError::new(&e))
    }
}

/// The same transport error for an RPC with a different remote error type.
fn retype<E: std::error::Error>(
    e: RPCError<NodeId, BasicNode, RaftError<NodeId>>,
) -> RPCError<NodeId, BasicNode, E> {
    match e {
        RPCError::Unreachable(u) => RPCError::Unreachable(u),
        RPCError::Timeout(t) => RPCError::Timeout(t),
        RPCError::PayloadTooLarge(p) => RPCError::PayloadTooLarge(p),
        RPCError::Network(n) => RPCError::Network(n),
        RPCError::RemoteError(r) => {
            let e = std::io::Error::other(r.to_string());
            RPCError::Network(NetworkError::new(&e))
        }
    }
}

impl RaftNetwork<C> for Peer {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<C>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        match self
            .roundtrip(&Request::AppendEntries(rpc), option.hard_ttl())
            .await?
        {
            Response::AppendEntries(r) => r.map_err(|e| RemoteError::new(self.target, e).into()),
            _ => Err(self.unexpected()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<C>,
        option: RPCOption,
    ) -> Result<
        InstallSnapshotResponse<NodeId>,
        RPCError<NodeId, BasicNode, RaftError<NodeId, InstallSnapshotError>>,
    > {
        match self
            .roundtrip(&Request::InstallSnapshot(rpc), option.hard_ttl())
            .await
            .map_err(retype)?
        {
            Response::InstallSnapshot(r) => r.map_err(|e| RemoteError::new(self.target, e).into()),
            _ => Err(self.unexpected()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RPCError<NodeId, BasicNode, RaftError<NodeId>>> {
        match self
            .roundtrip(&Request::Vote(rpc), option.hard_ttl())
            .await?
        {
            Response::Vote(r) => r.map_err(|e| RemoteError::new(self.target, e).into()),
            _ => Err(self.unexpected()),
        }
    }
}
