//! Who calls the admin HTTP port, and what they may do.
//!
//! With `[http] auth = "required"`, every request outside `open_paths` carries HTTP basic
//! credentials (a PLAIN user, or a SCRAM user's name and password) or `Bearer <JWT>` checked
//! with OAUTHBEARER's keys; anything else gets `401`. The caller's principal is `User:<name>`
//! (`User:ANONYMOUS` without credentials), and with `[authorization] enabled` a search needs
//! READ on the topic, as consuming it would: `403` otherwise.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;

use super::{Reply, error_reply};
use crate::broker::Broker;
use crate::security::acl::{AclOperation, ResourceType, java_host_address};

/// The address of an HTTP client, over TLS or not.
#[derive(Clone, Copy, Debug)]
pub struct PeerAddr(pub SocketAddr);

impl
    axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, tokio::net::TcpListener>>
    for PeerAddr
{
    fn connect_info(stream: axum::serve::IncomingStream<'_, tokio::net::TcpListener>) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}

impl
    axum::extract::connect_info::Connected<
        axum::serve::IncomingStream<'_, crate::network::tls::TlsListener>,
    > for PeerAddr
{
    fn connect_info(
        stream: axum::serve::IncomingStream<'_, crate::network::tls::TlsListener>,
    ) -> Self {
        PeerAddr(*stream.remote_addr())
    }
}

/// The caller of one HTTP request.
#[derive(Clone)]
pub struct Caller {
    pub principal: Arc<str>,
    /// The client address as ACLs compare it.
    pub host: String,
    /// The `Authorization` header as sent, passed on to peers a search asks.
    pub authorization: Option<String>,
}

impl Caller {
    /// May the caller do `op` on topic `topic`? `Err` is the `403` to answer.
    pub fn may(&self, broker: &Broker, op: AclOperation, topic: &str) -> Result<(), Reply> {
        let Some(acls) = broker.acls.as_ref() else {
            return Ok(());
        };
        if acls
            .current()
            .authorize(&self.principal, &self.host, op, ResourceType::Topic, topic)
        {
            Ok(())
        } else {
            Err(error_reply(
                StatusCode::FORBIDDEN,
                "authorization_failed",
                format!("{} may not {op} topic {topic}", self.principal),
            ))
        }
    }

    pub fn may_read(&self, broker: &Broker, topic: &str) -> Result<(), Reply> {
        self.may(broker, AclOperation::Read, topic)
    }
}

fn unauthorized(reason: &str) -> Response {
    let mut resp =
        error_reply(StatusCode::UNAUTHORIZED, "authentication_failed", reason).into_response();
    resp.headers_mut().insert(
        header::WWW_AUTHENTICATE,
        HeaderValue::from_static("Basic realm=\"chronik\", Bearer realm=\"chronik\""),
    );
    resp
}

/// The principal `value` (an `Authorization` header) proves, or why it proves none.
async fn principal_of(broker: &Arc<Broker>, value: &str) -> Result<String, String> {
    let (scheme, rest) = value.trim().split_once(' ').unwrap_or((value, ""));
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(rest)
            .map_err(|_| "basic credentials are not base64".to_string())?;
        let text = String::from_utf8(decoded).map_err(|_| "basic credentials are not UTF-8")?;
        let (user, password) = text
            .split_once(':')
            .ok_or("basic credentials are not user:password")?;
        let (user, password) = (user.to_string(), password.to_string());
        let credentials = broker.credentials.clone();
        // A SCRAM password is checked by salting it again: thousands of hashes, off the
        // runtime's threads.
        let name = user.clone();
        let ok = tokio::task::spawn_blocking(move || credentials.check_password(&name, &password))
            .await
            .unwrap_or(false);
        if ok {
            Ok(user)
        } else {
            Err("Invalid username or password".into())
        }
    } else if scheme.eq_ignore_ascii_case("bearer") {
        let Some(jwks) = broker.credentials.jwks.as_ref() else {
            return Err("bearer tokens are not accepted: sasl.oauthbearer_jwks is not set".into());
        };
        jwks.validator()
            .validate(rest, crate::security::oauth::system_now_ms())
            .map(|t| t.user)
            .map_err(|e| e.to_string())
    } else {
        Err(format!(
            "unknown authorization scheme {scheme:?}; use Basic or Bearer"
        ))
    }
}

/// Authenticates a request (when the port requires it) and hands its [`Caller`] to the
/// handlers.
pub async fn authenticate(
    State(broker): State<Arc<Broker>>,
    ConnectInfo(PeerAddr(peer)): ConnectInfo<PeerAddr>,
    mut req: Request,
    next: Next,
) -> Response {
    let http = &broker.config.http;
    let open = http.open_paths.iter().any(|p| p == req.uri().path());
    let required = http.auth == "required" && !open;
    let authorization = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let principal: Arc<str> = match &authorization {
        Some(value) if required || http.auth == "required" => {
            match principal_of(&broker, value).await {
                Ok(user) => format!("User:{user}").into(),
                Err(reason) => {
                    crate::metrics::get()
                        .security
                        .with_label_values(&["http_auth_failures"])
                        .inc();
                    if required {
                        return unauthorized(&reason);
                    }
                    crate::security::ANONYMOUS.into()
                }
            }
        }
        None if required => return unauthorized("credentials required (Basic or Bearer)"),
        _ => crate::security::ANONYMOUS.into(),
    };
    req.extensions_mut().insert(Caller {
        principal,
        host: java_host_address(peer.ip()),
        authorization,
    });
    next.run(req).await
}
