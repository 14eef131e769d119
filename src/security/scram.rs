//! SCRAM-SHA-256 and SCRAM-SHA-512 (RFC 5802, RFC 7677), server side, as Kafka speaks them.
//!
//! The exchange: client-first (`n,,n=user,r=cnonce`), server-first (`r=nonce,s=salt,i=iters`),
//! client-final (`c=biws,r=nonce,p=proof`), server-final (`v=signature`). No channel binding,
//! no delegation tokens. Credentials are stored as [`ScramCredential`]s (salt, iterations,
//! StoredKey, ServerKey), never as passwords.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;

use aws_lc_rs::{constant_time, digest, hmac, pbkdf2};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use super::sasl::{SaslError, SaslServer, SaslStep, process_mac, random_bytes};

/// A SCRAM hash function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum ScramMechanism {
    /// SCRAM-SHA-256.
    Sha256,
    /// SCRAM-SHA-512.
    Sha512,
}

impl ScramMechanism {
    /// Both mechanisms.
    pub const ALL: [ScramMechanism; 2] = [ScramMechanism::Sha256, ScramMechanism::Sha512];

    /// The SASL mechanism name.
    pub fn name(self) -> &'static str {
        match self {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        }
    }

    /// The mechanism with this SASL name (exact, upper case as Kafka sends it).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "SCRAM-SHA-256" => Some(ScramMechanism::Sha256),
            "SCRAM-SHA-512" => Some(ScramMechanism::Sha512),
            _ => None,
        }
    }

    /// The mechanism's id in Describe/AlterUserScramCredentials (1 = SHA-256, 2 = SHA-512).
    pub fn kafka_type(self) -> i8 {
        match self {
            ScramMechanism::Sha256 => 1,
            ScramMechanism::Sha512 => 2,
        }
    }

    /// The mechanism with this Describe/AlterUserScramCredentials id.
    pub fn from_kafka_type(id: i8) -> Option<Self> {
        match id {
            1 => Some(ScramMechanism::Sha256),
            2 => Some(ScramMechanism::Sha512),
            _ => None,
        }
    }

    /// The fewest PBKDF2 iterations accepted for a credential (Kafka: 4096).
    pub fn min_iterations(self) -> u32 {
        4096
    }

    /// The most PBKDF2 iterations accepted for a credential (Kafka: 16384).
    pub fn max_iterations(self) -> u32 {
        16384
    }

    /// The hash's output length in bytes (32 or 64).
    pub fn output_len(self) -> usize {
        self.digest().output_len()
    }

    fn digest(self) -> &'static digest::Algorithm {
        match self {
            ScramMechanism::Sha256 => &digest::SHA256,
            ScramMechanism::Sha512 => &digest::SHA512,
        }
    }

    fn hmac(self) -> hmac::Algorithm {
        match self {
            ScramMechanism::Sha256 => hmac::HMAC_SHA256,
            ScramMechanism::Sha512 => hmac::HMAC_SHA512,
        }
    }

    fn pbkdf2(self) -> pbkdf2::Algorithm {
        match self {
            ScramMechanism::Sha256 => pbkdf2::PBKDF2_HMAC_SHA256,
            ScramMechanism::Sha512 => pbkdf2::PBKDF2_HMAC_SHA512,
        }
    }

    fn mac(self, key: &[u8], data: &[u8]) -> Vec<u8> {
        hmac::sign(&hmac::Key::new(self.hmac(), key), data)
            .as_ref()
            .to_vec()
    }

    fn hash(self, data: &[u8]) -> Vec<u8> {
        digest::digest(self.digest(), data).as_ref().to_vec()
    }

    /// PBKDF2(password, salt, iterations); `None` for zero iterations.
    fn salt_password(self, password: &str, salt: &[u8], iterations: u32) -> Option<Vec<u8>> {
        let iterations = NonZeroU32::new(iterations)?;
        let mut out = vec![0u8; self.output_len()];
        pbkdf2::derive(
            self.pbkdf2(),
            iterations,
            salt,
            password.as_bytes(),
            &mut out,
        );
        Some(out)
    }
}

/// Why a credential could not be built (AlterUserScramCredentials: UNACCEPTABLE_CREDENTIAL).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScramCredentialError {
    /// Iterations outside `min_iterations()..=max_iterations()`.
    #[error("{mechanism} iterations must be between {min} and {max}, got {iterations}")]
    Iterations {
        mechanism: &'static str,
        iterations: u32,
        min: u32,
        max: u32,
    },
    /// An empty salt.
    #[error("the SCRAM salt must not be empty")]
    EmptySalt,
    /// An empty salted password.
    #[error("the SCRAM salted password must not be empty")]
    EmptySaltedPassword,
    /// The random salt could not be drawn.
    #[error("no randomness available for a SCRAM salt")]
    Random,
}

/// What the server keeps for one user and mechanism (RFC 5802 section 3).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ScramCredential {
    /// The hash function.
    pub mechanism: ScramMechanism,
    /// The PBKDF2 salt.
    pub salt: Vec<u8>,
    /// The PBKDF2 iteration count.
    pub iterations: u32,
    /// H(HMAC(SaltedPassword, "Client Key")).
    pub stored_key: Vec<u8>,
    /// HMAC(SaltedPassword, "Server Key").
    pub server_key: Vec<u8>,
}

impl ScramCredential {
    /// The credential for `password` with the given salt and iteration count.
    pub fn from_password(
        mechanism: ScramMechanism,
        password: &str,
        salt: &[u8],
        iterations: u32,
    ) -> Result<Self, ScramCredentialError> {
        check_parameters(mechanism, salt, iterations)?;
        let salted = mechanism.salt_password(password, salt, iterations).ok_or(
            ScramCredentialError::Iterations {
                mechanism: mechanism.name(),
                iterations,
                min: mechanism.min_iterations(),
                max: mechanism.max_iterations(),
            },
        )?;
        Self::from_salted_password(mechanism, &salted, salt, iterations)
    }

    /// The credential from an already salted password (what AlterUserScramCredentials upserts
    /// carry).
    pub fn from_salted_password(
        mechanism: ScramMechanism,
        salted_password: &[u8],
        salt: &[u8],
        iterations: u32,
    ) -> Result<Self, ScramCredentialError> {
        check_parameters(mechanism, salt, iterations)?;
        if salted_password.is_empty() {
            return Err(ScramCredentialError::EmptySaltedPassword);
        }
        let client_key = mechanism.mac(salted_password, b"Client Key");
        Ok(ScramCredential {
            mechanism,
            salt: salt.to_vec(),
            iterations,
            stored_key: mechanism.hash(&client_key),
            server_key: mechanism.mac(salted_password, b"Server Key"),
        })
    }

    /// A credential for `password` with a random 32-byte salt and the minimum iterations (4096).
    pub fn generate(
        mechanism: ScramMechanism,
        password: &str,
    ) -> Result<Self, ScramCredentialError> {
        let salt = random_bytes(32).map_err(|_| ScramCredentialError::Random)?;
        Self::from_password(mechanism, password, &salt, mechanism.min_iterations())
    }

    /// Whether `password` matches this credential (for PLAIN or HTTP basic against SCRAM users).
    /// The final comparison is constant time.
    pub fn verify_password(&self, password: &str) -> bool {
        let mech = self.mechanism;
        let Some(salted) = mech.salt_password(password, &self.salt, self.iterations) else {
            return false;
        };
        let stored = mech.hash(&mech.mac(&salted, b"Client Key"));
        constant_time::verify_slices_are_equal(&stored, &self.stored_key).is_ok()
    }
}

fn check_parameters(
    mechanism: ScramMechanism,
    salt: &[u8],
    iterations: u32,
) -> Result<(), ScramCredentialError> {
    if !(mechanism.min_iterations()..=mechanism.max_iterations()).contains(&iterations) {
        return Err(ScramCredentialError::Iterations {
            mechanism: mechanism.name(),
            iterations,
            min: mechanism.min_iterations(),
            max: mechanism.max_iterations(),
        });
    }
    if salt.is_empty() {
        return Err(ScramCredentialError::EmptySalt);
    }
    Ok(())
}

/// Where a [`ScramServer`] looks up credentials.
pub trait ScramCredentials: Send + Sync {
    /// `user`'s credential for `mech`, if any.
    fn get(&self, user: &str, mech: ScramMechanism) -> Option<ScramCredential>;
}

impl ScramCredentials for HashMap<(String, ScramMechanism), ScramCredential> {
    fn get(&self, user: &str, mech: ScramMechanism) -> Option<ScramCredential> {
        HashMap::get(self, &(user.to_string(), mech)).cloned()
    }
}

/// Where the exchange stands.
enum State {
    /// Waiting for client-first.
    Start,
    /// Server-first sent, waiting for client-final.
    SentFirst(Box<Pending>),
    /// Succeeded or failed; no more tokens.
    Ended,
}

/// What client-final is checked against.
struct Pending {
    user: String,
    gs2_header: String,
    client_first_bare: String,
    server_first: String,
    /// Client nonce followed by the server's.
    nonce: String,
    /// The length of the server's part of `nonce`.
    server_nonce_len: usize,
    credential: ScramCredential,
    /// False when the user has no credential: the exchange goes on with a fake one and fails at
    /// the end like a wrong password would.
    known: bool,
}

/// Server side of SCRAM-SHA-256 or SCRAM-SHA-512 for one exchange.
pub struct ScramServer {
    mechanism: ScramMechanism,
    credentials: Arc<dyn ScramCredentials>,
    state: State,
    fixed_nonce: Option<String>,
}

impl ScramServer {
    /// A server for `mechanism` looking users up in `credentials`.
    pub fn new(mechanism: ScramMechanism, credentials: Arc<dyn ScramCredentials>) -> Self {
        ScramServer {
            mechanism,
            credentials,
            state: State::Start,
            fixed_nonce: None,
        }
    }

    /// A server whose nonce part is `server_nonce` instead of a random one (test vectors only).
    #[cfg(test)]
    pub(crate) fn with_nonce(
        mechanism: ScramMechanism,
        credentials: Arc<dyn ScramCredentials>,
        server_nonce: &str,
    ) -> Self {
        let mut server = Self::new(mechanism, credentials);
        server.fixed_nonce = Some(server_nonce.to_string());
        server
    }

    /// A credential for a user that does not exist: deterministic per user so that repeated
    /// probes see the same salt, and unpredictable without the per-process key.
    fn fake_credential(&self, user: &str) -> ScramCredential {
        let mech = self.mechanism;
        let salt = process_mac(&[b"scram fake salt", mech.name().as_bytes(), user.as_bytes()]);
        let key = process_mac(&[b"scram fake key", mech.name().as_bytes(), user.as_bytes()]);
        let mut stored_key = key.as_ref().to_vec();
        stored_key.resize(mech.output_len(), 0);
        ScramCredential {
            mechanism: mech,
            salt: salt.as_ref().to_vec(),
            iterations: mech.min_iterations(),
            server_key: stored_key.clone(),
            stored_key,
        }
    }

    fn client_first(&mut self, token: &[u8]) -> Result<SaslStep, SaslError> {
        let first = parse_client_first(token)?;
        let (credential, known) = match self.credentials.get(&first.user, self.mechanism) {
            Some(c) if c.mechanism == self.mechanism && c.iterations > 0 => (c, true),
            _ => (self.fake_credential(&first.user), false),
        };
        let server_nonce = match &self.fixed_nonce {
            Some(n) => n.clone(),
            None => URL_SAFE_NO_PAD.encode(random_bytes(24)?),
        };
        let nonce = format!("{}{}", first.client_nonce, server_nonce);
        let server_first = format!(
            "r={},s={},i={}",
            nonce,
            STANDARD.encode(&credential.salt),
            credential.iterations
        );
        let reply = server_first.clone().into_bytes();
        self.state = State::SentFirst(Box::new(Pending {
            user: first.user,
            gs2_header: first.gs2_header,
            client_first_bare: first.bare,
            server_first,
            server_nonce_len: server_nonce.len(),
            nonce,
            credential,
            known,
        }));
        Ok(SaslStep::Continue(reply))
    }

    fn client_final(&self, p: &Pending, token: &[u8]) -> Result<SaslStep, SaslError> {
        let bad = |what: &str| {
            SaslError::Malformed(format!("Invalid SCRAM client final message: {what}"))
        };
        let text = std::str::from_utf8(token).map_err(|_| bad("not valid UTF-8"))?;
        let (without_proof, proof_b64) = text.rsplit_once(",p=").ok_or_else(|| bad("no proof"))?;
        let mut attrs = without_proof.split(',');
        let binding = attrs
            .next()
            .and_then(|a| a.strip_prefix("c="))
            .ok_or_else(|| bad("no channel binding attribute"))?;
        let nonce = attrs
            .next()
            .and_then(|a| a.strip_prefix("r="))
            .ok_or_else(|| bad("no nonce"))?;
        for ext in attrs {
            if !is_attribute(ext) {
                return Err(bad("malformed extension"));
            }
        }
        let binding = STANDARD
            .decode(binding)
            .map_err(|_| bad("channel binding is not base64"))?;
        if binding != p.gs2_header.as_bytes() {
            return Err(SaslError::Malformed(
                "Invalid SCRAM client final message: channel binding does not match the gs2 header"
                    .into(),
            ));
        }
        // librdkafka puts its own nonce before the combined one it was sent; Kafka accepts that
        // (it checks only that the nonce ends with the server's part), and so does this server.
        let client_part = p.nonce.len() - p.server_nonce_len;
        let nonce_ok = nonce == p.nonce
            || (nonce.len() == p.nonce.len() + client_part
                && nonce.ends_with(p.nonce.as_str())
                && nonce[..client_part] == p.nonce[..client_part]);
        if !nonce_ok {
            return Err(SaslError::Malformed(
                "Invalid SCRAM client final message: nonce mismatch".into(),
            ));
        }
        let proof = STANDARD
            .decode(proof_b64)
            .map_err(|_| bad("proof is not base64"))?;

        let mech = self.mechanism;
        let auth_message = format!(
            "{},{},{}",
            p.client_first_bare, p.server_first, without_proof
        );
        let signature = mech.mac(&p.credential.stored_key, auth_message.as_bytes());
        if proof.len() != signature.len() {
            return Err(SaslError::InvalidCredentials);
        }
        let client_key: Vec<u8> = proof.iter().zip(&signature).map(|(a, b)| a ^ b).collect();
        let computed = mech.hash(&client_key);
        let matches =
            constant_time::verify_slices_are_equal(&computed, &p.credential.stored_key).is_ok();
        if !(matches && p.known) {
            return Err(SaslError::InvalidCredentials);
        }
        let server_signature = mech.mac(&p.credential.server_key, auth_message.as_bytes());
        Ok(SaslStep::Done {
            user: p.user.clone(),
            response: format!("v={}", STANDARD.encode(server_signature)).into_bytes(),
            lifetime_ms: None,
        })
    }
}

impl SaslServer for ScramServer {
    fn mechanism(&self) -> &'static str {
        self.mechanism.name()
    }

    fn step(&mut self, token: &[u8]) -> Result<SaslStep, SaslError> {
        match std::mem::replace(&mut self.state, State::Ended) {
            State::Start => self.client_first(token),
            State::SentFirst(pending) => self.client_final(&pending, token),
            State::Ended => Err(SaslError::IllegalState("the SCRAM exchange has ended")),
        }
    }
}

/// The parts of client-first the server needs.
struct ClientFirst {
    gs2_header: String,
    bare: String,
    user: String,
    client_nonce: String,
}

/// `key=value` with a non-empty alphabetic key.
fn is_attribute(s: &str) -> bool {
    match s.split_once('=') {
        Some((key, _)) => !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphabetic()),
        None => false,
    }
}

/// Decodes an RFC 5802 saslname: `=2C` is `,`, `=3D` is `=`, any other `=` is an error.
pub(crate) fn decode_saslname(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(pos) = rest.find('=') {
        out.push_str(&rest[..pos]);
        let esc = rest.get(pos + 1..pos + 3)?;
        out.push(match esc {
            "2C" => ',',
            "3D" => '=',
            _ => return None,
        });
        rest = &rest[pos + 3..];
    }
    out.push_str(rest);
    Some(out)
}

fn parse_client_first(token: &[u8]) -> Result<ClientFirst, SaslError> {
    let bad =
        |what: &str| SaslError::Malformed(format!("Invalid SCRAM client first message: {what}"));
    let text = std::str::from_utf8(token).map_err(|_| bad("not valid UTF-8"))?;
    let (flag, rest) = text.split_once(',').ok_or_else(|| bad("no gs2 header"))?;
    match flag {
        "n" | "y" => {}
        f if f.starts_with("p=") => {
            return Err(SaslError::Unsupported(
                "SCRAM channel binding is not supported".into(),
            ));
        }
        _ => return Err(bad("invalid channel binding flag")),
    }
    let (authzid, bare) = rest.split_once(',').ok_or_else(|| bad("no gs2 header"))?;
    let authzid = if authzid.is_empty() {
        None
    } else {
        let raw = authzid
            .strip_prefix("a=")
            .ok_or_else(|| bad("invalid authorization id"))?;
        Some(decode_saslname(raw).ok_or_else(|| bad("invalid authorization id"))?)
    };
    let gs2_header = &text[..text.len() - bare.len()];

    let mut attrs = bare.split(',');
    let first = attrs.next().unwrap_or_default();
    if first.starts_with("m=") {
        return Err(SaslError::Unsupported(
            "SCRAM mandatory extensions are not supported".into(),
        ));
    }
    let user = first
        .strip_prefix("n=")
        .and_then(decode_saslname)
        .ok_or_else(|| bad("invalid user name"))?;
    if user.is_empty() {
        return Err(bad("empty user name"));
    }
    let client_nonce = attrs
        .next()
        .and_then(|a| a.strip_prefix("r="))
        .ok_or_else(|| bad("no nonce"))?;
    if client_nonce.is_empty() || !client_nonce.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(bad("invalid nonce"));
    }
    for ext in attrs {
        if !is_attribute(ext) {
            return Err(bad("malformed extension"));
        }
        if let Some(value) = ext.strip_prefix("tokenauth=")
            && value.eq_ignore_ascii_case("true")
        {
            return Err(SaslError::Unsupported(
                "delegation token authentication (tokenauth) is not supported".into(),
            ));
        }
    }
    if let Some(authzid) = authzid
        && authzid != user
    {
        return Err(SaslError::AuthorizationIdMismatch);
    }
    Ok(ClientFirst {
        gs2_header: gs2_header.to_string(),
        bare: bare.to_string(),
        user,
        client_nonce: client_nonce.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal SCRAM client for the tests.
    struct Client {
        mech: ScramMechanism,
        password: String,
        gs2: String,
        first_bare: String,
        auth_message: String,
        salted: Vec<u8>,
        /// Put this before the nonce of the final message, as librdkafka puts its own nonce.
        nonce_prefix: String,
    }

    impl Client {
        fn new(mech: ScramMechanism, user: &str, password: &str, nonce: &str) -> Self {
            let escaped = user.replace('=', "=3D").replace(',', "=2C");
            Client {
                mech,
                password: password.into(),
                gs2: "n,,".into(),
                first_bare: format!("n={escaped},r={nonce}"),
                auth_message: String::new(),
                salted: Vec::new(),
                nonce_prefix: String::new(),
            }
        }

        fn first(&self) -> Vec<u8> {
            format!("{}{}", self.gs2, self.first_bare).into_bytes()
        }

        fn fin(&mut self, server_first: &[u8]) -> Vec<u8> {
            let sf = std::str::from_utf8(server_first).expect("utf8");
            let mut nonce = "";
            let mut salt = Vec::new();
            let mut iters = 0;
            for a in sf.split(',') {
                if let Some(v) = a.strip_prefix("r=") {
                    nonce = v;
                } else if let Some(v) = a.strip_prefix("s=") {
                    salt = STANDARD.decode(v).expect("salt");
                } else if let Some(v) = a.strip_prefix("i=") {
                    iters = v.parse().expect("iters");
                }
            }
            self.salted = self
                .mech
                .salt_password(&self.password, &salt, iters)
                .expect("salt");
            let without_proof = format!(
                "c={},r={}{}",
                STANDARD.encode(&self.gs2),
                self.nonce_prefix,
                nonce
            );
            self.auth_message = format!("{},{},{}", self.first_bare, sf, without_proof);
            let client_key = self.mech.mac(&self.salted, b"Client Key");
            let stored = self.mech.hash(&client_key);
            let sig = self.mech.mac(&stored, self.auth_message.as_bytes());
            let proof: Vec<u8> = client_key.iter().zip(&sig).map(|(a, b)| a ^ b).collect();
            format!("{},p={}", without_proof, STANDARD.encode(proof)).into_bytes()
        }

        fn check_server_final(&self, server_final: &[u8]) -> bool {
            let server_key = self.mech.mac(&self.salted, b"Server Key");
            let sig = self.mech.mac(&server_key, self.auth_message.as_bytes());
            server_final == format!("v={}", STANDARD.encode(sig)).as_bytes()
        }
    }

    fn store(users: &[(&str, &str)]) -> Arc<dyn ScramCredentials> {
        let mut map = HashMap::new();
        for (user, password) in users {
            for mech in ScramMechanism::ALL {
                let cred = ScramCredential::generate(mech, password).expect("generate");
                map.insert((user.to_string(), mech), cred);
            }
        }
        Arc::new(map)
    }

    fn cont(step: Result<SaslStep, SaslError>) -> Vec<u8> {
        match step {
            Ok(SaslStep::Continue(bytes)) => bytes,
            other => panic!("expected Continue, got {other:?}"),
        }
    }

    #[test]
    fn mechanism_ids() {
        for mech in ScramMechanism::ALL {
            assert_eq!(ScramMechanism::from_name(mech.name()), Some(mech));
            assert_eq!(
                ScramMechanism::from_kafka_type(mech.kafka_type()),
                Some(mech)
            );
            assert_eq!(mech.min_iterations(), 4096);
            assert_eq!(mech.max_iterations(), 16384);
        }
        assert_eq!(ScramMechanism::Sha256.kafka_type(), 1);
        assert_eq!(ScramMechanism::Sha512.kafka_type(), 2);
        assert_eq!(ScramMechanism::from_kafka_type(0), None);
        assert_eq!(ScramMechanism::from_name("SCRAM-SHA-1"), None);
        assert_eq!(ScramMechanism::Sha512.output_len(), 64);
    }

    #[test]
    fn rfc7677_test_vector() {
        let salt = STANDARD.decode("W22ZaJ0SNY7soEsUEjb6gQ==").expect("salt");
        let cred = ScramCredential::from_password(ScramMechanism::Sha256, "pencil", &salt, 4096)
            .expect("cred");
        assert!(cred.verify_password("pencil"));
        assert!(!cred.verify_password("pencil "));
        let mut map = HashMap::new();
        map.insert(("user".to_string(), ScramMechanism::Sha256), cred);
        let mut server = ScramServer::with_nonce(
            ScramMechanism::Sha256,
            Arc::new(map),
            "%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0",
        );
        assert_eq!(server.mechanism(), "SCRAM-SHA-256");
        let sf = cont(server.step(b"n,,n=user,r=rOprNGfwEbeRWgbNEkqO"));
        assert_eq!(
            sf,
            b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096"
        );
        let done = server
            .step(b"c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=")
            .expect("final");
        assert_eq!(
            done,
            SaslStep::Done {
                user: "user".into(),
                response: b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=".to_vec(),
                lifetime_ms: None,
            }
        );
        assert!(matches!(server.step(b"x"), Err(SaslError::IllegalState(_))));
    }

    fn round_trip(mech: ScramMechanism, user: &str, password: &str) -> Result<SaslStep, SaslError> {
        let creds = store(&[("alice", "alice-secret"), ("we,ird=name", "pw")]);
        let mut server = ScramServer::new(mech, creds);
        let mut client = Client::new(mech, user, password, "fyko+d2lbbFgONRv9qkxdawL");
        let sf = cont(server.step(&client.first()));
        let fin = client.fin(&sf);
        let result = server.step(&fin);
        if let Ok(SaslStep::Done { response, .. }) = &result {
            assert!(client.check_server_final(response));
        }
        result
    }

    #[test]
    fn round_trip_both_mechanisms() {
        for mech in ScramMechanism::ALL {
            match round_trip(mech, "alice", "alice-secret") {
                Ok(SaslStep::Done {
                    user, lifetime_ms, ..
                }) => {
                    assert_eq!(user, "alice");
                    assert_eq!(lifetime_ms, None);
                }
                other => panic!("{other:?}"),
            }
            match round_trip(mech, "we,ird=name", "pw") {
                Ok(SaslStep::Done { user, .. }) => assert_eq!(user, "we,ird=name"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn wrong_password_and_unknown_user_fail_alike_at_the_end() {
        for mech in ScramMechanism::ALL {
            let wrong = round_trip(mech, "alice", "nope").unwrap_err();
            // round_trip panics if the first step fails, so an unknown user got a server-first.
            let unknown = round_trip(mech, "mallory", "alice-secret").unwrap_err();
            assert_eq!(wrong, SaslError::InvalidCredentials);
            assert_eq!(unknown, SaslError::InvalidCredentials);
        }
    }

    #[test]
    fn unknown_user_salt_is_stable_and_looks_real() {
        let creds = store(&[]);
        let salt_of = |creds: &Arc<dyn ScramCredentials>| {
            let mut server = ScramServer::new(ScramMechanism::Sha256, creds.clone());
            let sf = String::from_utf8(cont(server.step(b"n,,n=ghost,r=abc"))).expect("utf8");
            let salt = sf.split(',').nth(1).expect("salt").to_string();
            assert!(sf.ends_with(",i=4096"));
            salt
        };
        assert_eq!(salt_of(&creds), salt_of(&creds));
    }

    #[test]
    fn bad_nonce_and_channel_binding() {
        let creds = store(&[("alice", "alice-secret")]);
        let mech = ScramMechanism::Sha256;
        let start = || {
            let mut server = ScramServer::new(mech, creds.clone());
            let mut client = Client::new(mech, "alice", "alice-secret", "cnonce");
            let sf = cont(server.step(&client.first()));
            let fin = String::from_utf8(client.fin(&sf)).expect("utf8");
            (server, fin)
        };

        let (mut server, fin) = start();
        let tampered = fin.replacen(",r=cnonce", ",r=cnonceX", 1);
        let err = server.step(tampered.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("nonce"), "{err}");

        // librdkafka's form: its nonce again before the combined one. Accepted (as Kafka does),
        // with its own nonce only; the proof covers the message as sent.
        for (prefix, ok) in [("cnonce", true), ("other!", false), ("cnoncecnonce", false)] {
            let mut server = ScramServer::new(mech, creds.clone());
            let mut client = Client::new(mech, "alice", "alice-secret", "cnonce");
            client.nonce_prefix = prefix.into();
            let sf = cont(server.step(&client.first()));
            let result = server.step(&client.fin(&sf));
            assert_eq!(result.is_ok(), ok, "prefix {prefix}: {result:?}");
        }

        let (mut server, fin) = start();
        let tampered = fin.replacen("c=biws", "c=eSws", 1); // "y,,"
        let err = server.step(tampered.as_bytes()).unwrap_err();
        assert!(err.to_string().contains("channel binding"), "{err}");

        // y,, is accepted when the client's c= echoes it.
        let mut server = ScramServer::new(mech, creds.clone());
        let mut client = Client::new(mech, "alice", "alice-secret", "cnonce");
        client.gs2 = "y,,".into();
        let sf = cont(server.step(&client.first()));
        assert!(matches!(
            server.step(&client.fin(&sf)),
            Ok(SaslStep::Done { .. })
        ));

        // a=authzid equal to the user is accepted.
        let mut server = ScramServer::new(mech, creds.clone());
        let mut client = Client::new(mech, "alice", "alice-secret", "cnonce");
        client.gs2 = "n,a=alice,".into();
        let sf = cont(server.step(&client.first()));
        assert!(matches!(
            server.step(&client.fin(&sf)),
            Ok(SaslStep::Done { .. })
        ));
    }

    #[test]
    fn client_first_rejections() {
        let creds = store(&[("alice", "alice-secret")]);
        let first = |msg: &[u8]| ScramServer::new(ScramMechanism::Sha256, creds.clone()).step(msg);
        assert!(matches!(
            first(b"p=tls-unique,,n=alice,r=x"),
            Err(SaslError::Unsupported(_))
        ));
        assert!(matches!(
            first(b"n,,m=ext,n=alice,r=x"),
            Err(SaslError::Unsupported(_))
        ));
        assert!(matches!(
            first(b"n,,n=alice,r=x,tokenauth=true"),
            Err(SaslError::Unsupported(_))
        ));
        assert!(matches!(
            first(b"n,,n=alice,r=x,foo=bar"),
            Ok(SaslStep::Continue(_))
        ));
        assert_eq!(
            first(b"n,a=bob,n=alice,r=x"),
            Err(SaslError::AuthorizationIdMismatch)
        );
        assert!(matches!(
            first(b"n,,n=al=2Cice,r=x"),
            Ok(SaslStep::Continue(_))
        ));
        for bad in [
            &b""[..],
            b"n",
            b"n,",
            b"n,,",
            b"x,,n=alice,r=x",
            b"n,b=alice,n=alice,r=x",
            b"n,,n=alice",
            b"n,,n=,r=x",
            b"n,,r=x,n=alice",
            b"n,,n=al=41ice,r=x",
            b"n,,n=alice=,r=x",
            b"n,,n=alice=2,r=x",
            b"n,,n=alice,r=",
            b"n,,n=alice,r=a b",
            b"n,,n=alice,r=x,noequals",
            b"n,,n=al\xffice,r=x",
        ] {
            let err = first(bad).unwrap_err();
            assert!(
                matches!(err, SaslError::Malformed(_)),
                "{:?}: {err:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn malformed_messages_never_panic() {
        let creds = store(&[("alice", "alice-secret")]);
        let mech = ScramMechanism::Sha512;
        let mut client = Client::new(mech, "alice", "alice-secret", "cnonce");
        let first = client.first();
        let mut probe = ScramServer::new(mech, creds.clone());
        let sf = cont(probe.step(&first));
        let fin = client.fin(&sf);
        // Every truncation and a byte flip at every position, as first and as final message.
        for msg in [&first, &fin] {
            for cut in 0..msg.len() {
                let _ = ScramServer::new(mech, creds.clone()).step(&msg[..cut]);
                let mut s = ScramServer::new(mech, creds.clone());
                if s.step(&first).is_ok() {
                    let _ = s.step(&msg[..cut]);
                }
                let mut flipped = msg.clone();
                flipped[cut] ^= 0x80;
                let _ = ScramServer::new(mech, creds.clone()).step(&flipped);
                let mut s = ScramServer::new(mech, creds.clone());
                if s.step(&first).is_ok() {
                    let _ = s.step(&flipped);
                }
            }
        }
        // Specific final-message defects (the server nonce is random, so rebuild around it).
        let fin = String::from_utf8(fin).expect("utf8");
        let nonce = fin.split(',').nth(1).expect("r").to_string();
        for bad in [
            "".to_string(),
            format!("c=biws,{nonce}"),
            format!("{nonce},c=biws,p=AAAA"),
            "c=biws,p=AAAA".to_string(),
            format!("c=biws,{nonce},p=not base64!"),
            format!("c=biws,{nonce},p=AAAA"),
            format!("c=!!,{nonce},p=AAAA"),
            format!("c=biws,{nonce},x,p=AAAA"),
        ] {
            let mut s = ScramServer::new(mech, creds.clone());
            let mut c = Client::new(mech, "alice", "alice-secret", "cnonce");
            let sf = cont(s.step(&c.first()));
            let real = String::from_utf8(c.fin(&sf)).expect("utf8");
            let real_nonce = real.split(',').nth(1).expect("r");
            let msg = bad.replace(&nonce, real_nonce);
            assert!(s.step(msg.as_bytes()).is_err(), "{msg}");
            assert!(matches!(s.step(b"again"), Err(SaslError::IllegalState(_))));
        }
    }

    #[test]
    fn credentials_from_salted_password_and_limits() {
        let mech = ScramMechanism::Sha256;
        let salt = b"0123456789abcdef";
        let salted = mech.salt_password("secret", salt, 8192).expect("salted");
        let a = ScramCredential::from_salted_password(mech, &salted, salt, 8192).expect("a");
        let b = ScramCredential::from_password(mech, "secret", salt, 8192).expect("b");
        assert_eq!(a, b);
        assert!(a.verify_password("secret"));
        assert!(matches!(
            ScramCredential::from_password(mech, "x", salt, 4095),
            Err(ScramCredentialError::Iterations { .. })
        ));
        assert!(matches!(
            ScramCredential::from_password(mech, "x", salt, 16385),
            Err(ScramCredentialError::Iterations { .. })
        ));
        assert_eq!(
            ScramCredential::from_password(mech, "x", b"", 4096),
            Err(ScramCredentialError::EmptySalt)
        );
        assert_eq!(
            ScramCredential::from_salted_password(mech, b"", salt, 4096),
            Err(ScramCredentialError::EmptySaltedPassword)
        );
        let g = ScramCredential::generate(ScramMechanism::Sha512, "pw").expect("gen");
        assert_eq!(g.salt.len(), 32);
        assert_eq!(g.iterations, 4096);
        assert_eq!(g.stored_key.len(), 64);
        assert!(g.verify_password("pw"));
        assert!(!g.verify_password("pw2"));
        let json = serde_json::to_string(&g).expect("ser");
        assert_eq!(
            serde_json::from_str::<ScramCredential>(&json).expect("de"),
            g
        );
    }
}
