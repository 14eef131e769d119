//! SaslHandshake and SaslAuthenticate: how a connection on a SASL listener authenticates
//! (KIP-43, KIP-152) and re-authenticates before its session runs out (KIP-368).
//!
//! Until it has authenticated, a connection may send only ApiVersions, SaslHandshake and
//! SaslAuthenticate (the dispatcher enforces it). A failed authentication is answered with
//! `SASL_AUTHENTICATION_FAILED` and its reason, then the connection is closed; nobody else
//! notices.

use std::time::{Duration, Instant};

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::session::{Exchange, Session};
use crate::broker::Broker;
use crate::protocol::{Chunk, Response};
use crate::security::oauth::{OAuthBearerServer, system_now_ms};
use crate::security::plain::PlainServer;
use crate::security::sasl::{SaslServer, SaslStep};
use crate::security::scram::{ScramMechanism, ScramServer};

fn server_for(broker: &Broker, mechanism: &str) -> Option<Box<dyn SaslServer>> {
    let credentials = broker.credentials.clone();
    match mechanism {
        "PLAIN" => Some(Box::new(PlainServer::new(std::sync::Arc::new(
            move |user: &str, password: &str| credentials.check_password(user, password),
        )))),
        "OAUTHBEARER" => broker.credentials.jwks.as_ref().map(|j| {
            Box::new(OAuthBearerServer::new(j.validator(), system_now_ms)) as Box<dyn SaslServer>
        }),
        _ => {
            let m = ScramMechanism::from_name(mechanism)?;
            Some(Box::new(ScramServer::new(m, credentials)))
        }
    }
}

pub fn handshake(
    broker: &Broker,
    session: &mut Session,
    req: SaslHandshakeRequest,
    version: i16,
) -> SaslHandshakeResponse {
    let offered = &session.listener.sasl_mechanisms;
    let mechanisms = offered
        .iter()
        .map(|m| StrBytes::from_string(m.clone()))
        .collect();
    let answer = |code: i16| {
        SaslHandshakeResponse::default()
            .with_error_code(code)
            .with_mechanisms(mechanisms)
    };
    if !session.listener.protocol.uses_sasl() || session.exchange.is_some() {
        session.closing = true;
        return answer(ResponseError::IllegalSaslState.code());
    }
    let wanted = req.mechanism.as_str();
    // A re-authentication keeps the mechanism the connection authenticated with.
    let same_as_before = session
        .mechanism
        .as_deref()
        .is_none_or(|before| before == wanted);
    let server = if offered.iter().any(|m| m.as_str() == wanted) && same_as_before {
        server_for(broker, wanted)
    } else {
        None
    };
    let Some(server) = server else {
        session.closing = true;
        return answer(ResponseError::UnsupportedSaslMechanism.code());
    };
    if version == 0 && session.authenticated {
        // Re-authentication needs SaslAuthenticate (KIP-368).
        session.closing = true;
        return answer(ResponseError::IllegalSaslState.code());
    }
    session.exchange = Some(Exchange {
        server,
        reauthenticating: session.authenticated,
        raw: version == 0,
    });
    session.mechanism = Some(wanted.to_string());
    answer(0)
}

/// Where one token leaves the exchange.
enum Outcome {
    Continue(Vec<u8>),
    Done {
        response: Vec<u8>,
        lifetime: Option<i64>,
    },
    Failed {
        code: i16,
        message: String,
    },
}

/// Feeds one client token to the connection's exchange and applies the result to the session.
fn step(broker: &Broker, session: &mut Session, token: &[u8]) -> Outcome {
    let failed = |session: &mut Session, code: i16, message: String| {
        session.closing = true;
        session.exchange = None;
        crate::metrics::get()
            .security
            .with_label_values(&["sasl_failures"])
            .inc();
        tracing::info!(
            client_host = %session.client_host,
            listener = %session.listener.name,
            mechanism = session.mechanism.as_deref().unwrap_or("-"),
            error = %message,
            "sasl authentication failed"
        );
        Outcome::Failed { code, message }
    };
    let Some(exchange) = session.exchange.as_mut() else {
        return failed(
            session,
            ResponseError::IllegalSaslState.code(),
            "SaslAuthenticate before a SaslHandshake".into(),
        );
    };
    match exchange.server.step(token) {
        Ok(SaslStep::Continue(bytes)) => Outcome::Continue(bytes),
        Ok(SaslStep::Done {
            user,
            response,
            lifetime_ms,
        }) => {
            let principal = format!("User:{user}");
            if exchange.reauthenticating && *session.principal != *principal {
                return failed(
                    session,
                    ResponseError::SaslAuthenticationFailed.code(),
                    format!(
                        "re-authentication as {principal} on a connection of {}",
                        session.principal
                    ),
                );
            }
            session.exchange = None;
            session.authenticated = true;
            session.principal = principal.into();
            let max = broker.config.sasl.max_reauth_ms as i64;
            let lifetime = match (lifetime_ms, max) {
                (Some(l), m) if m > 0 => Some(l.min(m)),
                (Some(l), _) => Some(l),
                (None, m) if m > 0 => Some(m),
                (None, _) => None,
            };
            session.expires =
                lifetime.map(|ms| Instant::now() + Duration::from_millis(ms.max(0) as u64));
            crate::metrics::get()
                .security
                .with_label_values(&["sasl_authentications"])
                .inc();
            tracing::debug!(
                client_host = %session.client_host,
                principal = %session.principal,
                mechanism = session.mechanism.as_deref().unwrap_or("-"),
                "sasl authenticated"
            );
            Outcome::Done { response, lifetime }
        }
        Err(e) => failed(session, e.kafka_error_code(), e.to_string()),
    }
}

pub fn authenticate(
    broker: &Broker,
    session: &mut Session,
    req: SaslAuthenticateRequest,
) -> SaslAuthenticateResponse {
    match step(broker, session, &req.auth_bytes) {
        Outcome::Continue(bytes) => {
            SaslAuthenticateResponse::default().with_auth_bytes(bytes.into())
        }
        Outcome::Done { response, lifetime } => SaslAuthenticateResponse::default()
            .with_auth_bytes(response.into())
            .with_session_lifetime_ms(lifetime.unwrap_or(0)),
        Outcome::Failed { code, message } => SaslAuthenticateResponse::default()
            .with_error_code(code)
            .with_error_message(Some(StrBytes::from_string(message))),
    }
}

/// A bare token of an exchange begun with a v0 SaslHandshake; the answer is the server's bare
/// token (an empty one when the exchange ends). A failure closes the connection, as v0 has no
/// way to say why.
pub fn raw_token(broker: &Broker, session: &mut Session, token: &[u8]) -> Option<Response> {
    let bytes = match step(broker, session, token) {
        Outcome::Continue(b) => b,
        Outcome::Done { response, .. } => response,
        Outcome::Failed { .. } => return None,
    };
    let mut frame = Vec::with_capacity(4 + bytes.len());
    frame.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    frame.extend_from_slice(&bytes);
    Some(Response {
        chunks: vec![Chunk::Bytes(frame.into())],
    })
}
