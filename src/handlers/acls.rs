//! CreateAcls, DescribeAcls and DeleteAcls: the cluster's ACLs, kept in the metadata log.
//!
//! As a Kafka broker with an authorizer: creating and deleting take ALTER on the cluster,
//! describing DESCRIBE on the cluster (CLUSTER_AUTHORIZATION_FAILED otherwise); a binding or
//! filter that does not validate gets INVALID_REQUEST on its own result. With authorization
//! off the broker has no authorizer, and answers SECURITY_DISABLED as Kafka does then.

use std::collections::BTreeMap;
use std::sync::Arc;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{
    CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;

use super::authz::Authz;
use super::{code, msg};
use crate::broker::Broker;
use crate::metadata::MetadataRecord;
use crate::protocol::RequestContext;
use crate::security::acl::{
    AclBinding, AclFilter, AclOperation, AclPermission, PatternType, ResourceType,
};

const NO_AUTHORIZER: &str = "No Authorizer is configured on the broker";
const DENIED: &str = "Authorization failed.";

/// Why the whole request is refused, if it is: no authorizer, or `op` on the cluster denied.
fn refusal(broker: &Broker, ctx: &RequestContext, op: AclOperation) -> Option<(i16, &'static str)> {
    let a = Authz::of(broker, ctx);
    if !a.on() {
        Some((code(ResponseError::SecurityDisabled), NO_AUTHORIZER))
    } else if !a.cluster(op) {
        Some((code(ResponseError::ClusterAuthorizationFailed), DENIED))
    } else {
        None
    }
}

fn text(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

pub async fn create_acls(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: CreateAclsRequest,
) -> CreateAclsResponse {
    if let Some((error, message)) = refusal(broker, ctx, AclOperation::Alter) {
        let results = req
            .creations
            .iter()
            .map(|_| {
                AclCreationResult::default()
                    .with_error_code(error)
                    .with_error_message(msg(message))
            })
            .collect();
        return CreateAclsResponse::default().with_results(results);
    }
    // Each creation is checked on its own; the valid ones are made in one record.
    let checked: Vec<Result<AclBinding, (i16, String)>> = req
        .creations
        .iter()
        .map(|c| {
            let b = AclBinding::new(
                ResourceType::from_code(c.resource_type),
                c.resource_name.to_string(),
                PatternType::from_code(c.resource_pattern_type),
                c.principal.to_string(),
                c.host.to_string(),
                AclOperation::from_code(c.operation),
                AclPermission::from_code(c.permission_type),
            );
            b.validate().map(|()| b)
        })
        .collect();
    let valid: Vec<AclBinding> = checked.iter().filter_map(|r| r.clone().ok()).collect();
    let stored = if valid.is_empty() {
        Ok(())
    } else {
        broker
            .metadata
            .append(vec![MetadataRecord::AclsCreated {
                acls: valid.clone(),
            }])
            .await
            .map(|_| ())
    };
    if stored.is_ok() {
        for b in &valid {
            tracing::info!(principal = %ctx.principal, acl = %b, "ACL created");
        }
    }
    let results = checked
        .into_iter()
        .map(|r| match (r, &stored) {
            (Err((error, message)), _) => AclCreationResult::default()
                .with_error_code(error)
                .with_error_message(msg(message)),
            (Ok(_), Ok(())) => AclCreationResult::default(),
            (Ok(_), Err(e)) => AclCreationResult::default()
                .with_error_code(code(ResponseError::UnknownServerError))
                .with_error_message(msg(format!("the ACL could not be stored: {e}"))),
        })
        .collect();
    CreateAclsResponse::default().with_results(results)
}

#[allow(clippy::too_many_arguments)]
fn filter_of(
    resource_type: i8,
    resource_name: Option<&StrBytes>,
    pattern_type: i8,
    principal: Option<&StrBytes>,
    host: Option<&StrBytes>,
    operation: i8,
    permission: i8,
) -> AclFilter {
    AclFilter {
        resource_type: ResourceType::from_code(resource_type),
        resource_name: resource_name.map(|s| s.to_string()),
        pattern_type: PatternType::from_code(pattern_type),
        principal: principal.map(|s| s.to_string()),
        host: host.map(|s| s.to_string()),
        operation: AclOperation::from_code(operation),
        permission: AclPermission::from_code(permission),
    }
}

pub async fn describe_acls(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: DescribeAclsRequest,
) -> DescribeAclsResponse {
    if let Some((error, message)) = refusal(broker, ctx, AclOperation::Describe) {
        return DescribeAclsResponse::default()
            .with_error_code(error)
            .with_error_message(msg(message));
    }
    let filter = filter_of(
        req.resource_type_filter,
        req.resource_name_filter.as_ref(),
        req.pattern_type_filter,
        req.principal_filter.as_ref(),
        req.host_filter.as_ref(),
        req.operation,
        req.permission_type,
    );
    if let Err((error, message)) = filter.validate_for_describe() {
        return DescribeAclsResponse::default()
            .with_error_code(error)
            .with_error_message(msg(message));
    }
    let matching: Vec<AclBinding> = broker.metadata.read(|s| {
        s.acls
            .iter()
            .filter(|b| filter.matches(b))
            .cloned()
            .collect()
    });
    // One entry per resource pattern, with its ACLs.
    let mut by_resource: BTreeMap<(i8, String, i8), Vec<AclDescription>> = BTreeMap::new();
    for b in matching {
        by_resource
            .entry((
                b.resource_type.code(),
                b.resource_name.clone(),
                b.pattern_type.code(),
            ))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(text(&b.principal))
                    .with_host(text(&b.host))
                    .with_operation(b.operation.code())
                    .with_permission_type(b.permission.code()),
            );
    }
    let resources = by_resource
        .into_iter()
        .map(|((rt, name, pt), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(rt)
                .with_resource_name(text(&name))
                .with_pattern_type(pt)
                .with_acls(acls)
        })
        .collect();
    DescribeAclsResponse::default().with_resources(resources)
}

pub async fn delete_acls(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: DeleteAclsRequest,
) -> DeleteAclsResponse {
    if let Some((error, message)) = refusal(broker, ctx, AclOperation::Alter) {
        let results = req
            .filters
            .iter()
            .map(|_| {
                DeleteAclsFilterResult::default()
                    .with_error_code(error)
                    .with_error_message(msg(message))
            })
            .collect();
        return DeleteAclsResponse::default().with_filter_results(results);
    }
    let filters: Vec<Result<AclFilter, (i16, String)>> = req
        .filters
        .iter()
        .map(|f| {
            let filter = filter_of(
                f.resource_type_filter,
                f.resource_name_filter.as_ref(),
                f.pattern_type_filter,
                f.principal_filter.as_ref(),
                f.host_filter.as_ref(),
                f.operation,
                f.permission_type,
            );
            filter.validate_for_delete().map(|()| filter)
        })
        .collect();
    // What each filter matches now; every binding matched by some filter is removed in one
    // record, and each filter reports the bindings it matched.
    let matched: Vec<Vec<AclBinding>> = broker.metadata.read(|s| {
        filters
            .iter()
            .map(|f| match f {
                Ok(f) => s.acls.iter().filter(|b| f.matches(b)).cloned().collect(),
                Err(_) => Vec::new(),
            })
            .collect()
    });
    let mut gone: Vec<AclBinding> = matched.iter().flatten().cloned().collect();
    gone.sort();
    gone.dedup();
    let stored = if gone.is_empty() {
        Ok(())
    } else {
        broker
            .metadata
            .append(vec![MetadataRecord::AclsDeleted { acls: gone.clone() }])
            .await
            .map(|_| ())
    };
    if stored.is_ok() {
        for b in &gone {
            tracing::info!(principal = %ctx.principal, acl = %b, "ACL deleted");
        }
    }
    let results = filters
        .into_iter()
        .zip(matched)
        .map(|(f, bindings)| match (f, &stored) {
            (Err((error, message)), _) => DeleteAclsFilterResult::default()
                .with_error_code(error)
                .with_error_message(msg(message)),
            (Ok(_), Err(e)) => DeleteAclsFilterResult::default()
                .with_error_code(code(ResponseError::UnknownServerError))
                .with_error_message(msg(format!("the ACLs could not be deleted: {e}"))),
            (Ok(_), Ok(())) => DeleteAclsFilterResult::default().with_matching_acls(
                bindings
                    .iter()
                    .map(|b| {
                        DeleteAclsMatchingAcl::default()
                            .with_resource_type(b.resource_type.code())
                            .with_resource_name(text(&b.resource_name))
                            .with_pattern_type(b.pattern_type.code())
                            .with_principal(text(&b.principal))
                            .with_host(text(&b.host))
                            .with_operation(b.operation.code())
                            .with_permission_type(b.permission.code())
                    })
                    .collect(),
            ),
        })
        .collect();
    DeleteAclsResponse::default().with_filter_results(results)
}
