//! SASL/PLAIN (RFC 4616): the client sends `authzid NUL authcid NUL passwd` in one token.
//!
//! [`PlainServer`] parses the token and asks a verify callback, so PLAIN can be checked against
//! static users ([`PlainUsers`]) or SCRAM credentials
//! ([`super::scram::ScramCredential::verify_password`]).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::sasl::{SaslError, SaslServer, SaslStep, secrets_equal};

/// Static PLAIN users: user name -> password.
///
/// File format ([`PlainUsers::from_file`]): UTF-8 text, one `user:password` per line. The user
/// name is everything before the first `:` and the password everything after it (it may contain
/// `:`; nothing is trimmed from it). Blank lines and lines whose first non-blank character is `#`
/// are ignored. A line without `:`, with an empty user or password, with blanks in the user name,
/// or naming a user a second time is rejected with its line number.
#[derive(Clone, Default)]
pub struct PlainUsers {
    users: HashMap<String, String>,
}

/// Why a users file could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PlainUsersError {
    /// The file could not be read.
    #[error("cannot read PLAIN users file {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// A line is malformed; `line` counts from 1.
    #[error("PLAIN users file {path}, line {line}: {reason}")]
    Line {
        path: PathBuf,
        line: usize,
        reason: &'static str,
    },
}

impl fmt::Debug for PlainUsers {
    // Passwords stay out of logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut names: Vec<&String> = self.users.keys().collect();
        names.sort();
        f.debug_struct("PlainUsers").field("users", &names).finish()
    }
}

impl PlainUsers {
    /// Users from `(user, password)` pairs; a later pair for the same user replaces an earlier one.
    pub fn new(users: impl IntoIterator<Item = (String, String)>) -> Self {
        PlainUsers {
            users: users.into_iter().collect(),
        }
    }

    /// Reads a users file (format in the type's documentation).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, PlainUsersError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| PlainUsersError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text).map_err(|(line, reason)| PlainUsersError::Line {
            path: path.to_path_buf(),
            line,
            reason,
        })
    }

    /// Parses the text of a users file; an error carries the 1-based line number and the reason.
    pub fn parse(text: &str) -> Result<Self, (usize, &'static str)> {
        let mut users = HashMap::new();
        for (index, raw) in text.lines().enumerate() {
            let line_no = index + 1;
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            let start = line.trim_start();
            if start.is_empty() || start.starts_with('#') {
                continue;
            }
            let Some((user, password)) = line.split_once(':') else {
                return Err((line_no, "expected user:password"));
            };
            if user.is_empty() {
                return Err((line_no, "empty user name"));
            }
            if user.chars().any(char::is_whitespace) {
                return Err((line_no, "blank in user name"));
            }
            if password.is_empty() {
                return Err((line_no, "empty password"));
            }
            if users
                .insert(user.to_string(), password.to_string())
                .is_some()
            {
                return Err((line_no, "user listed twice"));
            }
        }
        Ok(PlainUsers { users })
    }

    /// Whether `user` is known.
    pub fn contains(&self, user: &str) -> bool {
        self.users.contains_key(user)
    }

    /// The number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// Whether there are no users.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Whether `password` is `user`'s password. The comparison takes the same time whatever the
    /// passwords' contents and lengths, and an unknown user costs one comparison too.
    pub fn check(&self, user: &str, password: &str) -> bool {
        match self.users.get(user) {
            Some(expected) => secrets_equal(expected.as_bytes(), password.as_bytes()),
            None => {
                let _ = secrets_equal(b"\0unknown user\0", password.as_bytes());
                false
            }
        }
    }

    /// A verify callback for [`PlainServer::new`] over these users.
    pub fn verifier(self: Arc<Self>) -> PlainVerifier {
        Arc::new(move |user: &str, password: &str| self.check(user, password))
    }
}

/// Checks a user name and password for [`PlainServer`].
pub type PlainVerifier = Arc<dyn Fn(&str, &str) -> bool + Send + Sync>;

/// Server side of SASL/PLAIN: one token, then done.
pub struct PlainServer {
    verify: PlainVerifier,
    finished: bool,
}

impl PlainServer {
    /// Mechanism name.
    pub const MECHANISM: &'static str = "PLAIN";

    /// A server that accepts a user when `verify(user, password)` returns true.
    pub fn new(verify: PlainVerifier) -> Self {
        PlainServer {
            verify,
            finished: false,
        }
    }
}

/// Splits a PLAIN token into `(authzid, authcid, password)`.
fn parse_plain(token: &[u8]) -> Result<(&str, &str, &str), SaslError> {
    let text = std::str::from_utf8(token)
        .map_err(|_| SaslError::Malformed("SASL/PLAIN message is not valid UTF-8".into()))?;
    let mut parts = text.split('\0');
    let (Some(authzid), Some(authcid), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Malformed(
            "SASL/PLAIN message must be authzid NUL user NUL password".into(),
        ));
    };
    if authcid.is_empty() {
        return Err(SaslError::Malformed("SASL/PLAIN user name is empty".into()));
    }
    if password.is_empty() {
        return Err(SaslError::Malformed("SASL/PLAIN password is empty".into()));
    }
    if !authzid.is_empty() && authzid != authcid {
        return Err(SaslError::AuthorizationIdMismatch);
    }
    Ok((authzid, authcid, password))
}

impl SaslServer for PlainServer {
    fn mechanism(&self) -> &'static str {
        Self::MECHANISM
    }

    fn step(&mut self, token: &[u8]) -> Result<SaslStep, SaslError> {
        if self.finished {
            return Err(SaslError::IllegalState("the PLAIN exchange has ended"));
        }
        self.finished = true;
        let (_, user, password) = parse_plain(token)?;
        if (self.verify)(user, password) {
            Ok(SaslStep::Done {
                user: user.to_string(),
                response: Vec::new(),
                lifetime_ms: None,
            })
        } else {
            Err(SaslError::InvalidCredentials)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn users() -> Arc<PlainUsers> {
        Arc::new(PlainUsers::new([
            ("alice".to_string(), "alice-secret".to_string()),
            ("bob".to_string(), "b:o:b".to_string()),
        ]))
    }

    fn server() -> PlainServer {
        PlainServer::new(users().verifier())
    }

    #[test]
    fn check_users() {
        let u = users();
        assert!(u.contains("alice"));
        assert!(!u.contains("carol"));
        assert!(u.check("alice", "alice-secret"));
        assert!(!u.check("alice", "alice-secret "));
        assert!(!u.check("alice", ""));
        assert!(u.check("bob", "b:o:b"));
        assert!(!u.check("carol", "alice-secret"));
        assert_eq!(u.len(), 2);
        assert!(!format!("{u:?}").contains("secret"));
    }

    #[test]
    fn good_login() {
        let mut s = server();
        assert_eq!(s.mechanism(), "PLAIN");
        let step = s.step(b"\0alice\0alice-secret").expect("login");
        assert_eq!(
            step,
            SaslStep::Done {
                user: "alice".into(),
                response: vec![],
                lifetime_ms: None
            }
        );
        assert!(matches!(
            s.step(b"\0alice\0alice-secret"),
            Err(SaslError::IllegalState(_))
        ));
    }

    #[test]
    fn authzid_equal_to_user_is_accepted() {
        let mut s = server();
        assert!(
            matches!(s.step(b"bob\0bob\0b:o:b"), Ok(SaslStep::Done { user, .. }) if user == "bob")
        );
        let mut s = server();
        assert_eq!(
            s.step(b"alice\0bob\0b:o:b"),
            Err(SaslError::AuthorizationIdMismatch)
        );
    }

    #[test]
    fn wrong_password_and_unknown_user_look_the_same() {
        let wrong = server().step(b"\0alice\0nope").unwrap_err();
        let unknown = server().step(b"\0carol\0nope").unwrap_err();
        assert_eq!(wrong, SaslError::InvalidCredentials);
        assert_eq!(wrong.to_string(), unknown.to_string());
    }

    #[test]
    fn malformed_tokens() {
        for token in [
            &b""[..],
            b"alice",
            b"\0alice",
            b"\0alice\0",
            b"\0\0secret",
            b"\0alice\0secret\0",
            b"\0alice\0sec\0ret",
            b"\0al\xffice\0secret",
        ] {
            let err = server().step(token).unwrap_err();
            assert!(matches!(err, SaslError::Malformed(_)), "{token:?}: {err:?}");
        }
    }

    #[test]
    fn parse_file_format() {
        let text = "# users\n\nalice:pa:ss\r\n  # indented comment\nbob: spaced \n";
        let u = PlainUsers::parse(text).expect("parse");
        assert!(u.check("alice", "pa:ss"));
        assert!(u.check("bob", " spaced "));
        assert_eq!(PlainUsers::parse("a:b\nnocolon\n").unwrap_err().0, 2);
        assert_eq!(PlainUsers::parse(":pw").unwrap_err().0, 1);
        assert_eq!(PlainUsers::parse("a:").unwrap_err().0, 1);
        assert_eq!(PlainUsers::parse("a b:pw").unwrap_err().0, 1);
        assert_eq!(
            PlainUsers::parse("a:1\n#\na:2").unwrap_err(),
            (3, "user listed twice")
        );
    }

    #[test]
    fn from_file_reports_path_and_line() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("users");
        std::fs::write(&path, "alice:x\nbroken\n").expect("write");
        let err = PlainUsers::from_file(&path).unwrap_err();
        assert!(matches!(err, PlainUsersError::Line { line: 2, .. }));
        assert!(err.to_string().contains("line 2"));
        std::fs::write(&path, "alice:x\n").expect("write");
        assert!(
            PlainUsers::from_file(&path)
                .expect("load")
                .check("alice", "x")
        );
        assert!(matches!(
            PlainUsers::from_file(dir.path().join("missing")),
            Err(PlainUsersError::Io { .. })
        ));
    }
}
