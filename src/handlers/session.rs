//! A connection's session: who it is and where its SASL exchange stands, kept by the dispatcher
//! across the connection's requests.

use std::sync::Arc;
use std::time::Instant;

use crate::network::{ConnectionInfo, ListenerContext};
use crate::security::sasl::SaslServer;

/// A SASL exchange in progress on a connection.
pub struct Exchange {
    pub server: Box<dyn SaslServer>,
    /// A re-authentication (KIP-368): it must end with the principal the connection has.
    pub reauthenticating: bool,
    /// Begun by a v0 SaslHandshake: the tokens come as bare frames, without request headers
    /// (KIP-43), and a failure closes the connection without an answer.
    pub raw: bool,
}

/// What the broker knows of one connection across its requests: its peer, its listener, who
/// it is, and where its SASL exchange stands.
pub struct Session {
    /// `/ip` of the client, as Kafka reports it in group descriptions.
    pub client_host: String,
    /// The peer's address as ACL hosts name it (computed once per connection).
    pub acl_host: Arc<str>,
    pub listener: Arc<ListenerContext>,
    /// `User:name`; `User:ANONYMOUS` until a SASL listener's connection authenticates.
    pub principal: Arc<str>,
    /// Whether requests beyond ApiVersions and the SASL exchange are served (always, on
    /// listeners without SASL).
    pub authenticated: bool,
    /// The mechanism the connection chose (kept for re-authentication).
    pub mechanism: Option<String>,
    pub exchange: Option<Exchange>,
    /// When the authenticated session ends unless the client re-authenticates.
    pub expires: Option<Instant>,
    /// The connection is closed after the response just written.
    pub closing: bool,
    /// A quota throttled the client: nothing more is read from the connection for this long
    /// (ms) after the response just written (KIP-219).
    pub throttle_ms: u64,
}

impl Session {
    pub fn new(conn: &ConnectionInfo, principal: Arc<str>) -> Self {
        Self {
            client_host: format!("/{}", conn.peer.ip()),
            acl_host: crate::security::acl::java_host_address(conn.peer.ip()).into(),
            authenticated: !conn.listener.protocol.uses_sasl(),
            listener: conn.listener.clone(),
            principal,
            mechanism: None,
            exchange: None,
            expires: None,
            closing: false,
            throttle_ms: 0,
        }
    }
}
