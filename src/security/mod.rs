//! Security: who a connection is and what it may do.
//!
//! Listeners carry a security protocol (PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL). A connection
//! ends up with a principal (`User:name`): from its SASL exchange, from its client certificate
//! on an mTLS listener, or `User:ANONYMOUS`. The authorizer decides each request with Kafka's ACL
//! model; quotas throttle by user and client id. See docs/security.md.

/// The principal of connections that did not authenticate.
pub const ANONYMOUS: &str = "User:ANONYMOUS";

pub mod acl;
pub mod oauth;
pub mod plain;
pub mod principal;
pub mod quota;
pub mod sasl;
pub mod scram;
