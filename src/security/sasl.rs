//! Server side of a SASL exchange: the types every mechanism shares.
//!
//! A connection that chose a mechanism in SaslHandshake gets one [`SaslServer`]; each
//! SaslAuthenticate request's bytes go to [`SaslServer::step`], whose [`SaslStep`] says what to
//! answer. Mechanisms: PLAIN ([`super::plain`]), SCRAM-SHA-256/512 ([`super::scram`]) and
//! OAUTHBEARER ([`super::oauth`]).

use std::sync::OnceLock;

use aws_lc_rs::{constant_time, hmac, rand};

/// One step's outcome of a server-side SASL exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslStep {
    /// Send these bytes to the client and wait for its next token.
    Continue(Vec<u8>),
    /// Authenticated: `user` is the principal name (the principal is `User:<user>`), `response` the
    /// final bytes to send (may be empty). `lifetime_ms` is `Some(ms)` when the credential expires
    /// (OAUTHBEARER: token expiry - now), to be answered as SaslAuthenticate's
    /// `session_lifetime_ms`.
    Done {
        user: String,
        response: Vec<u8>,
        lifetime_ms: Option<i64>,
    },
}

/// Why an exchange failed. The `Display` text is meant for the client (SaslAuthenticate's
/// error message); it never tells whether a user exists.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SaslError {
    /// Wrong password or unknown user (the two are deliberately indistinguishable).
    #[error("Authentication failed: Invalid username or password")]
    InvalidCredentials,
    /// The client's message does not follow the mechanism's grammar.
    #[error("Authentication failed: {0}")]
    Malformed(String),
    /// The client asked for something this server does not implement (channel binding,
    /// mandatory extensions, delegation tokens, ...).
    #[error("Unsupported SASL feature: {0}")]
    Unsupported(String),
    /// The client asked to act as an authorization id other than its own user.
    #[error(
        "Authentication failed: the authorization id requested by the client differs from the authenticated user"
    )]
    AuthorizationIdMismatch,
    /// OAUTHBEARER: the token was rejected; the text says why.
    #[error("Authentication failed: {0}")]
    InvalidToken(String),
    /// A token arrived when the exchange was not expecting one (already finished or failed).
    #[error("Unexpected SASL token: {0}")]
    IllegalState(&'static str),
    /// The server could not complete the step (e.g. no randomness available).
    #[error("Authentication failed: internal server error ({0})")]
    Internal(&'static str),
}

impl SaslError {
    /// Kafka's error code for a SaslAuthenticate response carrying this error:
    /// ILLEGAL_SASL_STATE (34) for out-of-order tokens, SASL_AUTHENTICATION_FAILED (58) otherwise.
    pub fn kafka_error_code(&self) -> i16 {
        match self {
            SaslError::IllegalState(_) => 34,
            _ => 58,
        }
    }
}

/// A server-side SASL mechanism instance, one per connection and exchange.
pub trait SaslServer: Send {
    /// The mechanism's name as negotiated in SaslHandshake (e.g. `"SCRAM-SHA-256"`).
    fn mechanism(&self) -> &'static str;
    /// Consumes the client's next token. After `Done` or an error, any further call returns
    /// [`SaslError::IllegalState`].
    fn step(&mut self, token: &[u8]) -> Result<SaslStep, SaslError>;
}

/// The names of the mechanisms this module implements, as offered in SaslHandshake.
pub const MECHANISMS: [&str; 4] = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"];

/// A per-process random HMAC key: secret-equality checks and SCRAM's fake salts hang off it.
fn process_key() -> &'static hmac::Key {
    static KEY: OnceLock<hmac::Key> = OnceLock::new();
    KEY.get_or_init(|| {
        let rng = rand::SystemRandom::new();
        match hmac::Key::generate(hmac::HMAC_SHA256, &rng) {
            Ok(key) => key,
            // No system randomness: fall back to a key from the clock and address space; it only
            // protects the timing of comparisons and the unpredictability of fake salts.
            Err(_) => {
                let nanos = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos())
                    .unwrap_or(0);
                let addr = &KEY as *const _ as usize;
                let mut seed = nanos.to_le_bytes().to_vec();
                seed.extend_from_slice(&addr.to_le_bytes());
                hmac::Key::new(hmac::HMAC_SHA256, &seed)
            }
        }
    })
}

/// HMAC-SHA256 of `parts` (each length-prefixed) under the per-process key.
pub(crate) fn process_mac(parts: &[&[u8]]) -> hmac::Tag {
    let mut ctx = hmac::Context::with_key(process_key());
    for part in parts {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part);
    }
    ctx.sign()
}

/// Compares two secrets without revealing, through timing, where they differ or how long they
/// are: both are MACed under the per-process key and the fixed-size tags compared in constant
/// time.
pub(crate) fn secrets_equal(a: &[u8], b: &[u8]) -> bool {
    let ta = process_mac(&[a]);
    let tb = process_mac(&[b]);
    constant_time::verify_slices_are_equal(ta.as_ref(), tb.as_ref()).is_ok()
}

/// Fills a buffer of `len` random bytes.
pub(crate) fn random_bytes(len: usize) -> Result<Vec<u8>, SaslError> {
    let mut out = vec![0u8; len];
    rand::fill(&mut out).map_err(|_| SaslError::Internal("no randomness available"))?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_equal_compares_content() {
        assert!(secrets_equal(b"pencil", b"pencil"));
        assert!(!secrets_equal(b"pencil", b"pencil2"));
        assert!(!secrets_equal(b"pencil", b"Pencil"));
        assert!(secrets_equal(b"", b""));
    }

    #[test]
    fn error_messages_and_codes() {
        assert_eq!(
            SaslError::InvalidCredentials.to_string(),
            "Authentication failed: Invalid username or password"
        );
        assert_eq!(SaslError::InvalidCredentials.kafka_error_code(), 58);
        assert_eq!(SaslError::IllegalState("done").kafka_error_code(), 34);
    }

    #[test]
    fn random_bytes_differ() {
        let a = random_bytes(32).expect("rng");
        let b = random_bytes(32).expect("rng");
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }
}
