//! SASL/OAUTHBEARER (RFC 7628) with the broker validating signed JWTs against a JWKS, as
//! Kafka's broker-side JWT validator does.
//!
//! The client sends `n,,\x01auth=Bearer <jwt>\x01\x01`. A valid token authenticates its
//! principal claim (`sub` by default) for the token's remaining lifetime. An invalid one gets
//! RFC 7628's error challenge (`{"status":"invalid_token"}`); the client acknowledges it with a
//! single `\x01` and the exchange fails with the reason.

use std::sync::Arc;

use aws_lc_rs::signature::{self, RsaParameters, RsaPublicKeyComponents, UnparsedPublicKey};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Map, Value};

use super::sasl::{SaslError, SaslServer, SaslStep};
use super::scram::decode_saslname;

/// A JWS signature algorithm this validator accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum JwsAlgorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// RSASSA-PSS with SHA-256.
    PS256,
    /// RSASSA-PSS with SHA-384.
    PS384,
    /// RSASSA-PSS with SHA-512.
    PS512,
    /// ECDSA on P-256 with SHA-256.
    ES256,
    /// ECDSA on P-384 with SHA-384.
    ES384,
}

impl JwsAlgorithm {
    /// The algorithm with this JOSE name (`"RS256"`, ...); `None` for anything else, `"none"`
    /// included.
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "RS256" => JwsAlgorithm::RS256,
            "RS384" => JwsAlgorithm::RS384,
            "RS512" => JwsAlgorithm::RS512,
            "PS256" => JwsAlgorithm::PS256,
            "PS384" => JwsAlgorithm::PS384,
            "PS512" => JwsAlgorithm::PS512,
            "ES256" => JwsAlgorithm::ES256,
            "ES384" => JwsAlgorithm::ES384,
            _ => return None,
        })
    }

    /// The JOSE name.
    pub fn name(self) -> &'static str {
        match self {
            JwsAlgorithm::RS256 => "RS256",
            JwsAlgorithm::RS384 => "RS384",
            JwsAlgorithm::RS512 => "RS512",
            JwsAlgorithm::PS256 => "PS256",
            JwsAlgorithm::PS384 => "PS384",
            JwsAlgorithm::PS512 => "PS512",
            JwsAlgorithm::ES256 => "ES256",
            JwsAlgorithm::ES384 => "ES384",
        }
    }

    fn rsa_parameters(self) -> Option<&'static RsaParameters> {
        Some(match self {
            JwsAlgorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            JwsAlgorithm::RS384 => &signature::RSA_PKCS1_2048_8192_SHA384,
            JwsAlgorithm::RS512 => &signature::RSA_PKCS1_2048_8192_SHA512,
            JwsAlgorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
            JwsAlgorithm::PS384 => &signature::RSA_PSS_2048_8192_SHA384,
            JwsAlgorithm::PS512 => &signature::RSA_PSS_2048_8192_SHA512,
            JwsAlgorithm::ES256 | JwsAlgorithm::ES384 => return None,
        })
    }

    fn curve(self) -> Option<EcCurve> {
        match self {
            JwsAlgorithm::ES256 => Some(EcCurve::P256),
            JwsAlgorithm::ES384 => Some(EcCurve::P384),
            _ => None,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum EcCurve {
    P256,
    P384,
}

impl EcCurve {
    fn coordinate_len(self) -> usize {
        match self {
            EcCurve::P256 => 32,
            EcCurve::P384 => 48,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum KeyMaterial {
    /// Modulus and exponent, big-endian without leading zeros.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// The uncompressed point `04 || x || y`.
    Ec { curve: EcCurve, point: Vec<u8> },
}

/// One verification key of a JWKS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Jwk {
    /// The key id (`kid`), if the document gave one.
    pub kid: Option<String>,
    /// The only algorithm the key may be used with (`alg`), if the document restricted it.
    pub alg: Option<JwsAlgorithm>,
    material: KeyMaterial,
}

impl Jwk {
    /// Whether a token signed with `alg` may be checked with this key.
    pub fn usable_for(&self, alg: JwsAlgorithm) -> bool {
        if self.alg.is_some_and(|a| a != alg) {
            return false;
        }
        match &self.material {
            KeyMaterial::Rsa { .. } => alg.rsa_parameters().is_some(),
            KeyMaterial::Ec { curve, .. } => alg.curve() == Some(*curve),
        }
    }

    fn verify(&self, alg: JwsAlgorithm, message: &[u8], sig: &[u8]) -> bool {
        match &self.material {
            KeyMaterial::Rsa { n, e } => match alg.rsa_parameters() {
                Some(params) => RsaPublicKeyComponents { n, e }
                    .verify(params, message, sig)
                    .is_ok(),
                None => false,
            },
            KeyMaterial::Ec { curve, point } => {
                let algorithm = match (curve, alg) {
                    (EcCurve::P256, JwsAlgorithm::ES256) => &signature::ECDSA_P256_SHA256_FIXED,
                    (EcCurve::P384, JwsAlgorithm::ES384) => &signature::ECDSA_P384_SHA384_FIXED,
                    _ => return false,
                };
                UnparsedPublicKey::new(algorithm, point)
                    .verify(message, sig)
                    .is_ok()
            }
        }
    }
}

/// Why a JWKS document was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwksError {
    /// Not JSON, or not an object with a `keys` array.
    #[error("invalid JWKS document: {0}")]
    Document(String),
    /// A key of a supported type is malformed; `index` is its position in `keys`.
    #[error("invalid JWKS key #{index}: {reason}")]
    Key { index: usize, reason: String },
}

/// The verification keys of a JSON Web Key Set (RFC 7517).
///
/// Kept: RSA keys (`kty` `RSA`, `n`, `e`) and EC keys on P-256 or P-384 (`kty` `EC`, `crv`, `x`,
/// `y`). Skipped: keys of other types or curves, keys whose `use` is not `sig`, keys whose `alg`
/// is not one of [`JwsAlgorithm`]. A skipped key is not an error; a malformed key of a kept type
/// is.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Jwks {
    keys: Vec<Jwk>,
}

impl Jwks {
    /// Parses a JWKS document (`{"keys":[...]}`).
    pub fn from_json(json: &str) -> Result<Self, JwksError> {
        let doc: Value =
            serde_json::from_str(json).map_err(|e| JwksError::Document(e.to_string()))?;
        let keys = doc
            .get("keys")
            .and_then(Value::as_array)
            .ok_or_else(|| JwksError::Document("no \"keys\" array".into()))?;
        let mut out = Vec::new();
        for (index, key) in keys.iter().enumerate() {
            let key_err = |reason: &str| JwksError::Key {
                index,
                reason: reason.to_string(),
            };
            let obj = key.as_object().ok_or_else(|| key_err("not an object"))?;
            if let Some(usage) = obj.get("use")
                && usage.as_str() != Some("sig")
            {
                continue;
            }
            let alg = match obj.get("alg") {
                None => None,
                Some(v) => match v.as_str().and_then(JwsAlgorithm::from_name) {
                    Some(a) => Some(a),
                    None => continue,
                },
            };
            let kid = match obj.get("kid") {
                None => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(_) => return Err(key_err("kid is not a string")),
            };
            let material = match obj.get("kty").and_then(Value::as_str) {
                Some("RSA") => {
                    let n = big_endian_field(obj, "n").map_err(|r| key_err(&r))?;
                    let e = big_endian_field(obj, "e").map_err(|r| key_err(&r))?;
                    KeyMaterial::Rsa { n, e }
                }
                Some("EC") => {
                    let curve = match obj.get("crv").and_then(Value::as_str) {
                        Some("P-256") => EcCurve::P256,
                        Some("P-384") => EcCurve::P384,
                        _ => continue,
                    };
                    let x = b64_field(obj, "x").map_err(|r| key_err(&r))?;
                    let y = b64_field(obj, "y").map_err(|r| key_err(&r))?;
                    let len = curve.coordinate_len();
                    if x.len() != len || y.len() != len {
                        return Err(key_err("x or y has the wrong length for the curve"));
                    }
                    let mut point = Vec::with_capacity(1 + 2 * len);
                    point.push(0x04);
                    point.extend_from_slice(&x);
                    point.extend_from_slice(&y);
                    KeyMaterial::Ec { curve, point }
                }
                _ => continue,
            };
            let jwk = Jwk { kid, alg, material };
            if let Some(alg) = jwk.alg
                && !jwk.usable_for(alg)
            {
                return Err(key_err("alg does not fit the key type"));
            }
            out.push(jwk);
        }
        Ok(Jwks { keys: out })
    }

    /// The usable keys, in document order.
    pub fn keys(&self) -> &[Jwk] {
        &self.keys
    }

    /// The number of usable keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is usable.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The key for a token: by `kid` when the token names one, else the only key usable for
    /// `alg`.
    fn select(&self, kid: Option<&str>, alg: JwsAlgorithm) -> Result<&Jwk, SaslError> {
        let mut usable = self.keys.iter().filter(|k| k.usable_for(alg));
        match kid {
            Some(kid) => usable
                .find(|k| k.kid.as_deref() == Some(kid))
                .ok_or_else(|| invalid(format!("no {} key with kid \"{kid}\"", alg.name()))),
            None => match (usable.next(), usable.next()) {
                (Some(key), None) => Ok(key),
                (None, _) => Err(invalid(format!("no key for algorithm {}", alg.name()))),
                (Some(_), Some(_)) => Err(invalid(
                    "the token has no kid and several keys fit its algorithm".into(),
                )),
            },
        }
    }
}

fn b64_field(obj: &Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    let text = obj
        .get(name)
        .and_then(Value::as_str)
        .ok_or_else(|| format!("missing \"{name}\""))?;
    decode_b64url(text).ok_or_else(|| format!("\"{name}\" is not base64url"))
}

/// A base64url big-endian integer with its leading zero bytes removed.
fn big_endian_field(obj: &Map<String, Value>, name: &str) -> Result<Vec<u8>, String> {
    let bytes = b64_field(obj, name)?;
    let start = bytes.iter().position(|&b| b != 0).unwrap_or(bytes.len());
    if start == bytes.len() {
        return Err(format!("\"{name}\" is zero"));
    }
    Ok(bytes[start..].to_vec())
}

/// Base64url, padded or not.
fn decode_b64url(text: &str) -> Option<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(text.trim_end_matches('=')).ok()
}

fn invalid(reason: String) -> SaslError {
    SaslError::InvalidToken(format!("Invalid JWT: {reason}"))
}

/// What a valid token says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ValidatedToken {
    /// The principal claim's value (the principal is `User:<user>`).
    pub user: String,
    /// `exp`, in milliseconds since the epoch.
    pub expires_ms: i64,
    /// The `scope` claim (space-separated string or array), empty if absent.
    pub scope: Vec<String>,
}

/// Checks signed JWTs: signature against the JWKS, then `exp`, `nbf`, `iat`, `iss`, `aud` and the
/// principal claim.
#[derive(Clone, Debug)]
pub struct JwtValidator {
    /// The verification keys.
    pub jwks: Jwks,
    /// The required `iss`, if any.
    pub issuer: Option<String>,
    /// Accepted audiences: `aud` must contain one of them. Empty: `aud` is not checked.
    pub audience: Vec<String>,
    /// The claim holding the user name (default `sub`).
    pub principal_claim: String,
    /// Tolerated clock difference for `exp`, `nbf` and `iat`, in seconds (default 30).
    pub clock_skew_s: u64,
}

impl JwtValidator {
    /// A validator over `jwks` with the defaults: no issuer or audience check, principal claim
    /// `sub`, 30 s of clock skew.
    pub fn new(jwks: Jwks) -> Self {
        JwtValidator {
            jwks,
            issuer: None,
            audience: Vec::new(),
            principal_claim: "sub".to_string(),
            clock_skew_s: 30,
        }
    }

    /// Validates a compact-serialized JWS token at time `now_ms` (milliseconds since the epoch).
    pub fn validate(&self, token: &str, now_ms: i64) -> Result<ValidatedToken, SaslError> {
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(sig_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid("expected three dot-separated parts".into()));
        };
        let header = decode_json_object(header_b64, "header")?;
        let alg_name = header
            .get("alg")
            .and_then(Value::as_str)
            .ok_or_else(|| invalid("the header has no alg".into()))?;
        if alg_name.eq_ignore_ascii_case("none") {
            return Err(invalid(
                "unsigned tokens (alg none) are not accepted".into(),
            ));
        }
        let alg = JwsAlgorithm::from_name(alg_name)
            .ok_or_else(|| invalid(format!("unsupported algorithm {alg_name}")))?;
        if header.contains_key("crit") {
            return Err(invalid(
                "critical header parameters are not supported".into(),
            ));
        }
        let kid = match header.get("kid") {
            None => None,
            Some(Value::String(s)) => Some(s.as_str()),
            Some(_) => return Err(invalid("kid is not a string".into())),
        };
        let key = self.jwks.select(kid, alg)?;
        let sig = decode_b64url(sig_b64)
            .ok_or_else(|| invalid("the signature is not base64url".into()))?;
        let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
        if !key.verify(alg, signing_input.as_bytes(), &sig) {
            return Err(invalid("signature verification failed".into()));
        }

        let claims = decode_json_object(payload_b64, "payload")?;
        let skew_ms = i64::try_from(self.clock_skew_s.saturating_mul(1000)).unwrap_or(i64::MAX);
        let expires_ms =
            numeric_date(&claims, "exp")?.ok_or_else(|| invalid("no exp claim".into()))?;
        if expires_ms.saturating_add(skew_ms) <= now_ms {
            return Err(invalid("the token has expired".into()));
        }
        for claim in ["nbf", "iat"] {
            if let Some(at) = numeric_date(&claims, claim)?
                && at.saturating_sub(skew_ms) > now_ms
            {
                return Err(invalid(format!("the {claim} claim is in the future")));
            }
        }
        if let Some(issuer) = &self.issuer
            && claims.get("iss").and_then(Value::as_str) != Some(issuer.as_str())
        {
            return Err(invalid("unexpected issuer".into()));
        }
        if !self.audience.is_empty() {
            let accepted = |v: &Value| {
                v.as_str()
                    .is_some_and(|a| self.audience.iter().any(|x| x == a))
            };
            let ok = match claims.get("aud") {
                Some(Value::Array(list)) => list.iter().any(accepted),
                Some(v) => accepted(v),
                None => false,
            };
            if !ok {
                return Err(invalid("the token is not meant for this audience".into()));
            }
        }
        let user = match claims.get(&self.principal_claim) {
            Some(Value::String(s)) if !s.is_empty() => s.clone(),
            _ => {
                return Err(invalid(format!(
                    "no non-empty \"{}\" claim",
                    self.principal_claim
                )));
            }
        };
        let scope = match claims.get("scope") {
            None => Vec::new(),
            Some(Value::String(s)) => s.split_whitespace().map(str::to_string).collect(),
            Some(Value::Array(list)) => list
                .iter()
                .map(|v| v.as_str().map(str::to_string))
                .collect::<Option<Vec<_>>>()
                .ok_or_else(|| invalid("scope has a non-string element".into()))?,
            Some(_) => return Err(invalid("scope is neither a string nor an array".into())),
        };
        Ok(ValidatedToken {
            user,
            expires_ms,
            scope,
        })
    }
}

fn decode_json_object(part: &str, what: &str) -> Result<Map<String, Value>, SaslError> {
    let bytes =
        decode_b64url(part).ok_or_else(|| invalid(format!("the {what} is not base64url")))?;
    match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(invalid(format!("the {what} is not a JSON object"))),
    }
}

/// A NumericDate claim (seconds, possibly fractional) in milliseconds; `None` when absent.
fn numeric_date(claims: &Map<String, Value>, name: &str) -> Result<Option<i64>, SaslError> {
    match claims.get(name) {
        None => Ok(None),
        Some(v) => match v.as_f64() {
            // `as` saturates for out-of-range floats.
            Some(secs) if secs.is_finite() => Ok(Some((secs * 1000.0) as i64)),
            _ => Err(invalid(format!("the {name} claim is not a number"))),
        },
    }
}

/// The current time in milliseconds since the epoch.
pub fn system_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// RFC 7628's error challenge for a rejected token.
pub const INVALID_TOKEN_CHALLENGE: &[u8] = br#"{"status":"invalid_token"}"#;

enum State {
    Start,
    /// The error challenge was sent; the client must acknowledge it with `\x01`.
    Rejected(SaslError),
    Ended,
}

/// Server side of SASL/OAUTHBEARER for one exchange.
pub struct OAuthBearerServer {
    validator: Arc<JwtValidator>,
    now_ms: fn() -> i64,
    state: State,
}

impl OAuthBearerServer {
    /// Mechanism name.
    pub const MECHANISM: &'static str = "OAUTHBEARER";

    /// A server checking tokens with `validator` at the time `now_ms()` (milliseconds since the
    /// epoch; [`system_now_ms`] in production).
    pub fn new(validator: Arc<JwtValidator>, now_ms: fn() -> i64) -> Self {
        OAuthBearerServer {
            validator,
            now_ms,
            state: State::Start,
        }
    }
}

/// The client's initial response: the optional authzid and the bearer token.
fn parse_initial_response(token: &[u8]) -> Result<(Option<String>, &str), SaslError> {
    let bad = |what: &str| SaslError::Malformed(format!("Invalid OAUTHBEARER message: {what}"));
    let text = std::str::from_utf8(token).map_err(|_| bad("not valid UTF-8"))?;
    let (gs2, rest) = text
        .split_once('\x01')
        .ok_or_else(|| bad("no key/value pairs"))?;
    let (flag, authz) = gs2
        .split_once(',')
        .ok_or_else(|| bad("invalid gs2 header"))?;
    match flag {
        "n" | "y" => {}
        f if f.starts_with("p=") => {
            return Err(SaslError::Unsupported(
                "OAUTHBEARER channel binding is not supported".into(),
            ));
        }
        _ => return Err(bad("invalid gs2 header")),
    }
    let authz = authz
        .strip_suffix(',')
        .ok_or_else(|| bad("invalid gs2 header"))?;
    let authzid = if authz.is_empty() {
        None
    } else {
        let name = authz
            .strip_prefix("a=")
            .and_then(decode_saslname)
            .ok_or_else(|| bad("invalid authorization id"))?;
        Some(name)
    };
    // Every pair ends with \x01 and one more \x01 closes the list.
    let pairs = rest
        .strip_suffix("\x01\x01")
        .ok_or_else(|| bad("the message must end with two \\x01"))?;
    let mut bearer = None;
    for pair in pairs.split('\x01') {
        let (key, value) = pair
            .split_once('=')
            .filter(|(k, _)| !k.is_empty() && k.bytes().all(|b| b.is_ascii_alphabetic()))
            .ok_or_else(|| bad("malformed key/value pair"))?;
        if key != "auth" {
            continue; // SASL extensions: accepted and ignored.
        }
        if bearer.is_some() {
            return Err(bad("auth given twice"));
        }
        let (scheme, credentials) = value
            .split_once(' ')
            .ok_or_else(|| bad("auth must be \"Bearer <token>\""))?;
        let jwt = credentials.trim_matches(' ');
        if !scheme.eq_ignore_ascii_case("Bearer")
            || jwt.is_empty()
            || jwt.contains(char::is_whitespace)
        {
            return Err(bad("auth must be \"Bearer <token>\""));
        }
        bearer = Some(jwt);
    }
    let jwt = bearer.ok_or_else(|| bad("no auth=Bearer token"))?;
    Ok((authzid, jwt))
}

impl SaslServer for OAuthBearerServer {
    fn mechanism(&self) -> &'static str {
        Self::MECHANISM
    }

    fn step(&mut self, token: &[u8]) -> Result<SaslStep, SaslError> {
        match std::mem::replace(&mut self.state, State::Ended) {
            State::Start => {
                let (authzid, jwt) = parse_initial_response(token)?;
                let now = (self.now_ms)();
                match self.validator.validate(jwt, now) {
                    Ok(valid) => {
                        if authzid.is_some_and(|a| a != valid.user) {
                            return Err(SaslError::AuthorizationIdMismatch);
                        }
                        Ok(SaslStep::Done {
                            user: valid.user,
                            response: Vec::new(),
                            // Zero would mean "no expiry" to the client: keep it positive.
                            lifetime_ms: Some(valid.expires_ms.saturating_sub(now).max(1)),
                        })
                    }
                    Err(err) => {
                        self.state = State::Rejected(err);
                        Ok(SaslStep::Continue(INVALID_TOKEN_CHALLENGE.to_vec()))
                    }
                }
            }
            State::Rejected(err) => {
                if token == b"\x01" {
                    Err(err)
                } else {
                    Err(SaslError::Malformed(
                        "Invalid OAUTHBEARER message: expected \\x01 after the error challenge"
                            .into(),
                    ))
                }
            }
            State::Ended => Err(SaslError::IllegalState(
                "the OAUTHBEARER exchange has ended",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lc_rs::rand::SystemRandom;
    use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
    use aws_lc_rs::signature::{EcdsaKeyPair, KeyPair as _};
    use serde_json::json;
    use std::sync::OnceLock;

    const NOW: i64 = 1_700_000_000_000;
    const NOW_S: i64 = NOW / 1000;

    fn fixed_now() -> i64 {
        NOW
    }

    struct Keys {
        ec256: EcdsaKeyPair,
        ec384: EcdsaKeyPair,
        rsa: RsaKeyPair,
        other_ec256: EcdsaKeyPair,
    }

    fn keys() -> &'static Keys {
        static KEYS: OnceLock<Keys> = OnceLock::new();
        KEYS.get_or_init(|| Keys {
            ec256: EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
                .expect("p256"),
            ec384: EcdsaKeyPair::generate(&signature::ECDSA_P384_SHA384_FIXED_SIGNING)
                .expect("p384"),
            rsa: RsaKeyPair::generate(KeySize::Rsa2048).expect("rsa"),
            other_ec256: EcdsaKeyPair::generate(&signature::ECDSA_P256_SHA256_FIXED_SIGNING)
                .expect("p256"),
        })
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn ec_jwk(kp: &EcdsaKeyPair, kid: &str, crv: &str) -> Value {
        let point = kp.public_key().as_ref();
        let len = (point.len() - 1) / 2;
        json!({"kty": "EC", "crv": crv, "kid": kid, "use": "sig",
               "x": b64(&point[1..1 + len]), "y": b64(&point[1 + len..])})
    }

    fn jwks_json() -> String {
        let k = keys();
        let rsa_pub = k.rsa.public_key();
        // A leading zero byte on n, as some providers publish it.
        let mut n = vec![0u8];
        n.extend_from_slice(rsa_pub.modulus().big_endian_without_leading_zero());
        json!({"keys": [
            ec_jwk(&k.ec256, "ec1", "P-256"),
            ec_jwk(&k.ec384, "ec384", "P-384"),
            {"kty": "RSA", "kid": "rsa1", "n": b64(&n),
             "e": b64(rsa_pub.exponent().big_endian_without_leading_zero())},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": "AAAA"},
            {"kty": "EC", "crv": "P-521", "kid": "p521", "x": "AAAA", "y": "AAAA"},
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
        ]})
        .to_string()
    }

    fn validator() -> JwtValidator {
        JwtValidator::new(Jwks::from_json(&jwks_json()).expect("jwks"))
    }

    fn sign(header: &Value, claims: &Value) -> String {
        let k = keys();
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let rng = SystemRandom::new();
        let sig = match (header["alg"].as_str(), header["kid"].as_str()) {
            (Some("ES256"), Some("wrong-key")) => k
                .other_ec256
                .sign(&rng, input.as_bytes())
                .expect("sign")
                .as_ref()
                .to_vec(),
            (Some("ES256"), _) => k
                .ec256
                .sign(&rng, input.as_bytes())
                .expect("sign")
                .as_ref()
                .to_vec(),
            (Some("ES384"), _) => k
                .ec384
                .sign(&rng, input.as_bytes())
                .expect("sign")
                .as_ref()
                .to_vec(),
            (Some(alg), _) if alg.starts_with("RS") || alg.starts_with("PS") => {
                let encoding: &'static dyn signature::RsaEncoding = match alg {
                    "RS256" => &signature::RSA_PKCS1_SHA256,
                    "RS384" => &signature::RSA_PKCS1_SHA384,
                    "RS512" => &signature::RSA_PKCS1_SHA512,
                    "PS256" => &signature::RSA_PSS_SHA256,
                    "PS384" => &signature::RSA_PSS_SHA384,
                    _ => &signature::RSA_PSS_SHA512,
                };
                let mut sig = vec![0u8; k.rsa.public_modulus_len()];
                k.rsa
                    .sign(encoding, &rng, input.as_bytes(), &mut sig)
                    .expect("sign");
                sig
            }
            _ => Vec::new(),
        };
        format!("{input}.{}", b64(&sig))
    }

    fn claims() -> Value {
        json!({"sub": "alice", "iss": "https://idp", "aud": "kafka",
               "exp": NOW_S + 3600, "iat": NOW_S - 10, "nbf": NOW_S - 10, "scope": "read write"})
    }

    fn es256() -> Value {
        json!({"alg": "ES256", "kid": "ec1", "typ": "JWT"})
    }

    fn with(mut v: Value, key: &str, value: Value) -> Value {
        v[key] = value;
        v
    }

    fn without(mut v: Value, key: &str) -> Value {
        if let Some(obj) = v.as_object_mut() {
            obj.remove(key);
        }
        v
    }

    fn reason(r: Result<ValidatedToken, SaslError>) -> String {
        match r {
            Err(SaslError::InvalidToken(msg)) => msg,
            other => panic!("expected InvalidToken, got {other:?}"),
        }
    }

    #[test]
    fn jwks_keeps_only_signature_keys_it_understands() {
        let jwks = Jwks::from_json(&jwks_json()).expect("jwks");
        let kids: Vec<_> = jwks
            .keys()
            .iter()
            .map(|k| k.kid.clone().unwrap_or_default())
            .collect();
        assert_eq!(kids, ["ec1", "ec384", "rsa1"]);
        assert!(Jwks::from_json("[]").is_err());
        assert!(Jwks::from_json("{").is_err());
        assert_eq!(Jwks::from_json(r#"{"keys":[]}"#).expect("empty").len(), 0);
        assert!(matches!(
            Jwks::from_json(r#"{"keys":[{"kty":"RSA","n":"!!","e":"AQAB"}]}"#),
            Err(JwksError::Key { index: 0, .. })
        ));
        assert!(matches!(
            Jwks::from_json(r#"{"keys":[{"kty":"EC","crv":"P-256","x":"AAAA","y":"AAAA"}]}"#),
            Err(JwksError::Key { .. })
        ));
        assert!(matches!(
            Jwks::from_json(r#"{"keys":[{"kty":"RSA","alg":"ES256","n":"AQAB","e":"AQAB"}]}"#),
            Err(JwksError::Key { .. })
        ));
        // An algorithm we do not implement: the key is skipped.
        let skipped =
            Jwks::from_json(r#"{"keys":[{"kty":"RSA","alg":"RSA-OAEP","n":"AQAB","e":"AQAB"}]}"#);
        assert_eq!(skipped.expect("skip").len(), 0);
    }

    #[test]
    fn valid_tokens_of_every_algorithm() {
        let v = validator();
        for (alg, kid) in [
            ("ES256", "ec1"),
            ("ES384", "ec384"),
            ("RS256", "rsa1"),
            ("RS384", "rsa1"),
            ("RS512", "rsa1"),
            ("PS256", "rsa1"),
            ("PS384", "rsa1"),
            ("PS512", "rsa1"),
        ] {
            let token = sign(&json!({"alg": alg, "kid": kid}), &claims());
            let valid = v
                .validate(&token, NOW)
                .unwrap_or_else(|e| panic!("{alg}: {e}"));
            assert_eq!(valid.user, "alice");
            assert_eq!(valid.expires_ms, (NOW_S + 3600) * 1000);
            assert_eq!(valid.scope, ["read", "write"]);
        }
    }

    #[test]
    fn time_claims() {
        let v = validator();
        let expired = sign(&es256(), &with(claims(), "exp", json!(NOW_S - 31)));
        assert!(reason(v.validate(&expired, NOW)).contains("expired"));
        // Within the skew it still passes.
        let just_expired = sign(&es256(), &with(claims(), "exp", json!(NOW_S - 29)));
        assert!(v.validate(&just_expired, NOW).is_ok());
        let future_nbf = sign(&es256(), &with(claims(), "nbf", json!(NOW_S + 60)));
        assert!(reason(v.validate(&future_nbf, NOW)).contains("nbf"));
        let future_iat = sign(&es256(), &with(claims(), "iat", json!(NOW_S + 60)));
        assert!(reason(v.validate(&future_iat, NOW)).contains("iat"));
        let no_exp = sign(&es256(), &without(claims(), "exp"));
        assert!(reason(v.validate(&no_exp, NOW)).contains("exp"));
        let text_exp = sign(&es256(), &with(claims(), "exp", json!("soon")));
        assert!(reason(v.validate(&text_exp, NOW)).contains("exp"));
        let fractional = sign(&es256(), &with(claims(), "exp", json!(NOW_S as f64 + 10.5)));
        assert_eq!(
            v.validate(&fractional, NOW).expect("ok").expires_ms,
            NOW + 10_500
        );
    }

    #[test]
    fn issuer_audience_and_principal() {
        let mut v = validator();
        v.issuer = Some("https://idp".into());
        v.audience = vec!["other".into(), "kafka".into()];
        assert!(v.validate(&sign(&es256(), &claims()), NOW).is_ok());
        let wrong_iss = sign(&es256(), &with(claims(), "iss", json!("https://evil")));
        assert!(reason(v.validate(&wrong_iss, NOW)).contains("issuer"));
        let no_iss = sign(&es256(), &without(claims(), "iss"));
        assert!(reason(v.validate(&no_iss, NOW)).contains("issuer"));
        let wrong_aud = sign(&es256(), &with(claims(), "aud", json!("web")));
        assert!(reason(v.validate(&wrong_aud, NOW)).contains("audience"));
        let aud_list = sign(&es256(), &with(claims(), "aud", json!(["web", "kafka"])));
        assert!(v.validate(&aud_list, NOW).is_ok());
        let wrong_list = sign(&es256(), &with(claims(), "aud", json!(["web", 3])));
        assert!(reason(v.validate(&wrong_list, NOW)).contains("audience"));
        let no_sub = sign(&es256(), &without(claims(), "sub"));
        assert!(reason(v.validate(&no_sub, NOW)).contains("sub"));
        let empty_sub = sign(&es256(), &with(claims(), "sub", json!("")));
        assert!(reason(v.validate(&empty_sub, NOW)).contains("sub"));
        v.principal_claim = "client_id".into();
        let custom = sign(&es256(), &with(claims(), "client_id", json!("svc-1")));
        assert_eq!(v.validate(&custom, NOW).expect("ok").user, "svc-1");
        let array_scope = sign(&es256(), &with(custom_claims(), "scope", json!(["a", "b"])));
        assert_eq!(v.validate(&array_scope, NOW).expect("ok").scope, ["a", "b"]);
    }

    fn custom_claims() -> Value {
        with(claims(), "client_id", json!("svc-1"))
    }

    #[test]
    fn key_selection() {
        let v = validator();
        let wrong_kid = sign(&json!({"alg": "ES256", "kid": "nope"}), &claims());
        assert!(reason(v.validate(&wrong_kid, NOW)).contains("kid"));
        // kid of a key of another type.
        let mismatched = sign(&json!({"alg": "ES256", "kid": "rsa1"}), &claims());
        assert!(reason(v.validate(&mismatched, NOW)).contains("kid"));
        // Right kid, but signed by another key.
        let other_key = sign(&json!({"alg": "ES256", "kid": "wrong-key"}), &claims()).replacen(
            &b64(br#"{"alg":"ES256","kid":"wrong-key"}"#),
            &b64(br#"{"alg":"ES256","kid":"ec1"}"#),
            1,
        );
        assert!(reason(v.validate(&other_key, NOW)).contains("signature"));
        // No kid: the single P-256 key is used.
        let no_kid = sign(&json!({"alg": "ES256"}), &claims());
        assert!(v.validate(&no_kid, NOW).is_ok());
        // No kid and two usable keys: refused.
        let k = keys();
        let two =
            json!({"keys": [ec_jwk(&k.ec256, "a", "P-256"), ec_jwk(&k.other_ec256, "b", "P-256")]});
        let v2 = JwtValidator::new(Jwks::from_json(&two.to_string()).expect("jwks"));
        assert!(reason(v2.validate(&no_kid, NOW)).contains("several"));
        let with_kid = sign(&json!({"alg": "ES256", "kid": "a"}), &claims());
        assert!(v2.validate(&with_kid, NOW).is_ok());
        // A key restricted to RS256 is not used for RS384.
        let rsa_pub = k.rsa.public_key();
        let restricted = json!({"keys": [{"kty": "RSA", "alg": "RS256",
            "n": b64(rsa_pub.modulus().big_endian_without_leading_zero()),
            "e": b64(rsa_pub.exponent().big_endian_without_leading_zero())}]});
        let v3 = JwtValidator::new(Jwks::from_json(&restricted.to_string()).expect("jwks"));
        assert!(
            v3.validate(&sign(&json!({"alg": "RS256"}), &claims()), NOW)
                .is_ok()
        );
        assert!(
            reason(v3.validate(&sign(&json!({"alg": "RS384"}), &claims()), NOW)).contains("no key")
        );
    }

    #[test]
    fn tampering_and_malformed_tokens() {
        let v = validator();
        let token = sign(&es256(), &claims());
        let parts: Vec<&str> = token.split('.').collect();
        let evil = b64(with(claims(), "sub", json!("admin")).to_string().as_bytes());
        let tampered = format!("{}.{}.{}", parts[0], evil, parts[2]);
        assert!(reason(v.validate(&tampered, NOW)).contains("signature"));

        let none_header = b64(br#"{"alg":"none"}"#);
        let unsigned = format!("{none_header}.{}.", parts[1]);
        assert!(reason(v.validate(&unsigned, NOW)).contains("none"));
        let none_upper = format!("{}.{}.", b64(br#"{"alg":"NONE"}"#), parts[1]);
        assert!(reason(v.validate(&none_upper, NOW)).contains("none"));
        let hs256 = format!("{}.{}.{}", b64(br#"{"alg":"HS256"}"#), parts[1], parts[2]);
        assert!(reason(v.validate(&hs256, NOW)).contains("unsupported"));
        let crit = sign(
            &json!({"alg": "ES256", "kid": "ec1", "crit": ["exp"]}),
            &claims(),
        );
        assert!(reason(v.validate(&crit, NOW)).contains("critical"));

        for bad in [
            String::new(),
            "abc".into(),
            format!("{}.{}", parts[0], parts[1]),
            format!("{token}.x"),
            format!("!!.{}.{}", parts[1], parts[2]),
            format!("{}.!!.{}", parts[0], parts[2]),
            format!("{}.{}.!!", parts[0], parts[1]),
            format!("{}.{}.{}", b64(b"[1]"), parts[1], parts[2]),
            format!("{}.{}.{}", b64(b"{\"kid\":\"ec1\"}"), parts[1], parts[2]),
            format!("{}.{}.{}", b64(b"\xff\xfe"), parts[1], parts[2]),
            format!("{}.{}.{}", parts[0], parts[1], b64(b"short")),
        ] {
            let _ = reason(v.validate(&bad, NOW));
        }
        // A correctly signed payload that is not a JSON object.
        let header = b64(es256().to_string().as_bytes());
        let payload = b64(b"\"just a string\"");
        let input = format!("{header}.{payload}");
        let sig = keys()
            .ec256
            .sign(&SystemRandom::new(), input.as_bytes())
            .expect("sign");
        let odd = format!("{input}.{}", b64(sig.as_ref()));
        assert!(reason(v.validate(&odd, NOW)).contains("payload"));
    }

    fn server() -> OAuthBearerServer {
        let mut v = validator();
        v.audience = vec!["kafka".into()];
        OAuthBearerServer::new(Arc::new(v), fixed_now)
    }

    fn client_message(gs2: &str, auth: &str) -> Vec<u8> {
        format!("{gs2}\x01host=broker\x01auth={auth}\x01port=9092\x01\x01").into_bytes()
    }

    #[test]
    fn sasl_success() {
        let token = sign(&es256(), &claims());
        let mut s = server();
        assert_eq!(s.mechanism(), "OAUTHBEARER");
        let step = s
            .step(&client_message("n,,", &format!("Bearer {token}")))
            .expect("ok");
        assert_eq!(
            step,
            SaslStep::Done {
                user: "alice".into(),
                response: vec![],
                lifetime_ms: Some(3_600_000)
            }
        );
        assert!(matches!(s.step(b"\x01"), Err(SaslError::IllegalState(_))));
        // Scheme case-insensitive, authzid equal to the user, minimal message.
        let minimal = format!("n,a=alice,\x01auth=bearer {token}\x01\x01");
        assert!(matches!(
            server().step(minimal.as_bytes()),
            Ok(SaslStep::Done { .. })
        ));
        let other = format!("y,a=bob,\x01auth=Bearer {token}\x01\x01");
        assert_eq!(
            server().step(other.as_bytes()),
            Err(SaslError::AuthorizationIdMismatch)
        );
    }

    #[test]
    fn sasl_invalid_token_sequence() {
        let expired = sign(&es256(), &with(claims(), "exp", json!(NOW_S - 3600)));
        let mut s = server();
        let step = s
            .step(&client_message("n,,", &format!("Bearer {expired}")))
            .expect("challenge");
        assert_eq!(
            step,
            SaslStep::Continue(br#"{"status":"invalid_token"}"#.to_vec())
        );
        let err = s.step(b"\x01").unwrap_err();
        assert!(
            matches!(&err, SaslError::InvalidToken(m) if m.contains("expired")),
            "{err:?}"
        );
        assert!(matches!(s.step(b"\x01"), Err(SaslError::IllegalState(_))));

        // Anything but \x01 after the challenge fails too.
        let mut s = server();
        let _ = s
            .step(&client_message("n,,", "Bearer abc.def.ghi"))
            .expect("challenge");
        assert!(matches!(s.step(b"again"), Err(SaslError::Malformed(_))));
    }

    #[test]
    fn sasl_framing_errors() {
        let token = sign(&es256(), &claims());
        for bad in [
            Vec::new(),
            b"\x01".to_vec(),
            b"n,,".to_vec(),
            b"n,,\x01\x01".to_vec(),
            b"n,,\x01host=x\x01\x01".to_vec(),
            format!("n,,\x01auth=Bearer {token}\x01").into_bytes(),
            format!("n,,\x01auth=Bearer {token}").into_bytes(),
            format!("n,\x01auth=Bearer {token}\x01\x01").into_bytes(),
            format!("x,,\x01auth=Bearer {token}\x01\x01").into_bytes(),
            format!("n,b=alice,\x01auth=Bearer {token}\x01\x01").into_bytes(),
            client_message("n,,", &format!("Basic {token}")),
            client_message("n,,", &format!("Bearer{token}")),
            client_message("n,,", "Bearer "),
            client_message("n,,", &format!("Bearer {token} extra")),
            format!("n,,\x01auth=Bearer {token}\x01auth=Bearer {token}\x01\x01").into_bytes(),
            format!("n,,\x01auth=Bearer {token}\x01\x01\x01").into_bytes(),
            format!("n,,\x01noequals\x01auth=Bearer {token}\x01\x01").into_bytes(),
            b"n,,\x01auth=Bearer \xff\x01\x01".to_vec(),
        ] {
            let err = server().step(&bad).unwrap_err();
            assert!(
                matches!(err, SaslError::Malformed(_)),
                "{:?}: {err:?}",
                String::from_utf8_lossy(&bad)
            );
        }
        assert!(matches!(
            server().step(&client_message(
                "p=tls-unique,,",
                &format!("Bearer {token}")
            )),
            Err(SaslError::Unsupported(_))
        ));
        // Truncations of a good message never panic.
        let good = client_message("n,a=alice,", &format!("Bearer {token}"));
        for cut in 0..good.len() {
            let _ = server().step(&good[..cut]);
        }
    }
}
