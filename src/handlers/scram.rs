//! DescribeUserScramCredentials and AlterUserScramCredentials (KIP-554): the SCRAM users that
//! `kafka-configs --entity-type users --alter --add-config 'SCRAM-SHA-512=[password=...]'`
//! manages. Credentials are kept salted in the cluster's metadata, never the password: the
//! client salts it (the request carries salt, iterations and the salted password).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::metadata::MetadataRecord;
use crate::protocol::RequestContext;
use crate::security::scram::{ScramCredential, ScramMechanism};

fn text(s: impl Into<String>) -> Option<StrBytes> {
    Some(StrBytes::from_string(s.into()))
}

pub async fn describe(
    broker: &Arc<Broker>,
    _ctx: &RequestContext,
    req: DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    let stored = broker.metadata.read(|s| s.scram_credentials.clone());
    let infos = |of_user: &BTreeMap<String, crate::metadata::StoredScramCredential>| {
        of_user
            .iter()
            .filter_map(|(mechanism, c)| {
                let m = ScramMechanism::from_name(mechanism)?;
                Some(
                    CredentialInfo::default()
                        .with_mechanism(m.kafka_type())
                        .with_iterations(c.iterations as i32),
                )
            })
            .collect::<Vec<_>>()
    };
    let results = match req.users.filter(|u| !u.is_empty()) {
        // Every user with a credential.
        None => stored
            .iter()
            .map(|(user, of_user)| {
                DescribeUserScramCredentialsResult::default()
                    .with_user(StrBytes::from_string(user.clone()))
                    .with_credential_infos(infos(of_user))
            })
            .collect(),
        Some(users) => {
            let mut seen = HashMap::new();
            for u in &users {
                *seen.entry(u.name.to_string()).or_insert(0) += 1;
            }
            let mut done = BTreeSet::new();
            let mut results = Vec::new();
            for u in users {
                let name = u.name.to_string();
                if !done.insert(name.clone()) {
                    continue;
                }
                let result =
                    DescribeUserScramCredentialsResult::default().with_user(u.name.clone());
                results.push(if seen[&name] > 1 {
                    result
                        .with_error_code(ResponseError::DuplicateResource.code())
                        .with_error_message(text(format!("cannot describe user {name} twice")))
                } else {
                    match stored.get(&name) {
                        Some(of_user) => result.with_credential_infos(infos(of_user)),
                        None => result
                            .with_error_code(ResponseError::ResourceNotFound.code())
                            .with_error_message(text(format!(
                                "attempt to describe a user credential that does not exist: {name}"
                            ))),
                    }
                });
            }
            results
        }
    };
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

/// One change of the request, before it is checked.
struct Change {
    user: String,
    mechanism: i8,
    /// `None`: a deletion.
    upsert: Option<(i32, Vec<u8>, Vec<u8>)>,
}

pub async fn alter(
    broker: &Arc<Broker>,
    _ctx: &RequestContext,
    req: AlterUserScramCredentialsRequest,
) -> AlterUserScramCredentialsResponse {
    let mut changes: Vec<Change> = req
        .deletions
        .iter()
        .map(|d| Change {
            user: d.name.to_string(),
            mechanism: d.mechanism,
            upsert: None,
        })
        .collect();
    changes.extend(req.upsertions.iter().map(|u| Change {
        user: u.name.to_string(),
        mechanism: u.mechanism,
        upsert: Some((u.iterations, u.salt.to_vec(), u.salted_password.to_vec())),
    }));
    // Users in request order, each answered once; an error on one of a user's changes fails
    // all of that user's changes (as Kafka does).
    let mut order: Vec<String> = Vec::new();
    let mut errors: BTreeMap<String, (i16, String)> = BTreeMap::new();
    let mut pairs: HashMap<(String, i8), usize> = HashMap::new();
    for c in &changes {
        if !order.contains(&c.user) {
            order.push(c.user.clone());
        }
        *pairs.entry((c.user.clone(), c.mechanism)).or_insert(0) += 1;
    }
    let stored = broker.metadata.read(|s| s.scram_credentials.clone());
    let mut records = Vec::new();
    for c in &changes {
        if errors.contains_key(&c.user) {
            continue;
        }
        let fail = |code: ResponseError, message: String| (code.code(), message);
        let checked: Result<MetadataRecord, (i16, String)> = (|| {
            if c.user.is_empty() {
                return Err(fail(
                    ResponseError::UnacceptableCredential,
                    "username must not be empty".into(),
                ));
            }
            let Some(mechanism) = ScramMechanism::from_kafka_type(c.mechanism) else {
                return Err(fail(
                    ResponseError::UnsupportedSaslMechanism,
                    format!("unknown SCRAM mechanism {}", c.mechanism),
                ));
            };
            if pairs[&(c.user.clone(), c.mechanism)] > 1 {
                return Err(fail(
                    ResponseError::DuplicateResource,
                    format!(
                        "a user credential cannot be altered twice in the same request: {} {}",
                        c.user,
                        mechanism.name()
                    ),
                ));
            }
            match &c.upsert {
                None => {
                    let exists = stored
                        .get(&c.user)
                        .is_some_and(|m| m.contains_key(mechanism.name()));
                    if !exists {
                        return Err(fail(
                            ResponseError::ResourceNotFound,
                            format!(
                                "attempt to delete a user credential that does not exist: {} {}",
                                c.user,
                                mechanism.name()
                            ),
                        ));
                    }
                    Ok(MetadataRecord::ScramCredentialSet {
                        user: c.user.clone(),
                        mechanism: mechanism.name().into(),
                        credential: None,
                    })
                }
                Some((iterations, salt, salted)) => {
                    let iterations = u32::try_from(*iterations).unwrap_or(0);
                    let credential =
                        ScramCredential::from_salted_password(mechanism, salted, salt, iterations)
                            .map_err(|e| {
                                fail(ResponseError::UnacceptableCredential, e.to_string())
                            })?;
                    Ok(MetadataRecord::ScramCredentialSet {
                        user: c.user.clone(),
                        mechanism: mechanism.name().into(),
                        credential: Some(crate::broker::credentials::to_stored(credential)),
                    })
                }
            }
        })();
        match checked {
            Ok(r) => records.push((c.user.clone(), r)),
            Err(e) => {
                errors.insert(c.user.clone(), e);
            }
        }
    }
    let records: Vec<MetadataRecord> = records
        .into_iter()
        .filter(|(user, _)| !errors.contains_key(user))
        .map(|(_, r)| r)
        .collect();
    if !records.is_empty()
        && let Err(e) = broker.metadata.append(records).await
    {
        for user in &order {
            errors.entry(user.clone()).or_insert((
                ResponseError::RequestTimedOut.code(),
                format!("the change was not stored: {e}"),
            ));
        }
    }
    let results = order
        .into_iter()
        .map(|user| {
            let result = AlterUserScramCredentialsResult::default()
                .with_user(StrBytes::from_string(user.clone()));
            match errors.get(&user) {
                Some((code, message)) => result
                    .with_error_code(*code)
                    .with_error_message(text(message.clone())),
                None => {
                    tracing::info!(user = %user, "altered SCRAM credentials");
                    result
                }
            }
        })
        .collect();
    AlterUserScramCredentialsResponse::default().with_results(results)
}
