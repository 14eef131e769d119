//! Kafka's ACL model: resource patterns, bindings, filters and the authorizer.
//!
//! The semantics follow Kafka's KRaft `StandardAuthorizer`: super users may do anything; a
//! matching DENY wins over any ALLOW; an ALLOW for READ, WRITE, DELETE or ALTER also grants
//! DESCRIBE, and one for ALTER_CONFIGS also grants DESCRIBE_CONFIGS (DENY ACLs imply nothing);
//! a resource without any ACL at all falls back to `allow_everyone_if_no_acl_found`.
//!
//! Hosts are compared as strings, as Kafka does with `InetAddress.getHostAddress()`: use
//! [`java_host_address`] once per connection to print a peer address the way Java does.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// Kafka's INVALID_REQUEST error code.
pub const INVALID_REQUEST: i16 = 42;

/// The resource name (and host) that matches every name in a LITERAL ACL.
pub const WILDCARD: &str = "*";

/// The ACL principal that applies to every principal.
pub const WILDCARD_PRINCIPAL: &str = "User:*";

/// The only valid name of the CLUSTER resource.
pub const CLUSTER_NAME: &str = "kafka-cluster";

/// Defines a Kafka enum carried on the wire as an `i8`, with its upper snake case name.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $code:literal => $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
        )]
        pub enum $name {
            $($(#[$vmeta])* $variant = $code,)+
        }

        impl $name {
            /// Every value, in code order.
            pub const ALL_VALUES: &'static [$name] = &[$($name::$variant,)+];

            /// The value for a wire code; codes Kafka does not define give `Unknown`.
            pub fn from_code(code: i8) -> Self {
                match code {
                    $($code => $name::$variant,)+
                    _ => $name::Unknown,
                }
            }

            /// The wire code.
            pub fn code(self) -> i8 {
                self as i8
            }

            /// Kafka's name for the value (upper snake case).
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// Parses Kafka's name, ignoring ASCII case and accepting `-` for `_`.
            pub fn parse_name(s: &str) -> Option<Self> {
                let s = s.trim();
                Self::ALL_VALUES.iter().copied().find(|v| {
                    let n = v.name();
                    n.len() == s.len()
                        && n.bytes().zip(s.bytes()).all(|(a, b)| {
                            let b = if b == b'-' { b'_' } else { b.to_ascii_uppercase() };
                            a == b
                        })
                })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

wire_enum! {
    /// The kind of resource an ACL protects.
    ResourceType {
        Unknown = 0 => "UNKNOWN",
        Any = 1 => "ANY",
        Topic = 2 => "TOPIC",
        Group = 3 => "GROUP",
        Cluster = 4 => "CLUSTER",
        TransactionalId = 5 => "TRANSACTIONAL_ID",
        DelegationToken = 6 => "DELEGATION_TOKEN",
        User = 7 => "USER",
    }
}

wire_enum! {
    /// How an ACL's resource name is matched (bindings use LITERAL or PREFIXED; filters also
    /// ANY and MATCH).
    PatternType {
        Unknown = 0 => "UNKNOWN",
        Any = 1 => "ANY",
        Match = 2 => "MATCH",
        Literal = 3 => "LITERAL",
        Prefixed = 4 => "PREFIXED",
    }
}

wire_enum! {
    /// An operation on a resource.
    AclOperation {
        Unknown = 0 => "UNKNOWN",
        Any = 1 => "ANY",
        All = 2 => "ALL",
        Read = 3 => "READ",
        Write = 4 => "WRITE",
        Create = 5 => "CREATE",
        Delete = 6 => "DELETE",
        Alter = 7 => "ALTER",
        Describe = 8 => "DESCRIBE",
        ClusterAction = 9 => "CLUSTER_ACTION",
        DescribeConfigs = 10 => "DESCRIBE_CONFIGS",
        AlterConfigs = 11 => "ALTER_CONFIGS",
        IdempotentWrite = 12 => "IDEMPOTENT_WRITE",
        CreateTokens = 13 => "CREATE_TOKENS",
        DescribeTokens = 14 => "DESCRIBE_TOKENS",
        TwoPhaseCommit = 15 => "TWO_PHASE_COMMIT",
    }
}

wire_enum! {
    /// Whether an ACL allows or denies.
    AclPermission {
        Unknown = 0 => "UNKNOWN",
        Any = 1 => "ANY",
        Deny = 2 => "DENY",
        Allow = 3 => "ALLOW",
    }
}

impl ResourceType {
    /// True for the types an ACL can be bound to (not UNKNOWN or ANY).
    pub fn is_concrete(self) -> bool {
        !matches!(self, ResourceType::Unknown | ResourceType::Any)
    }
}

impl AclOperation {
    /// True if an ALLOW ACL for `self` grants `requested` (the operation itself, ALL, or an
    /// implied DESCRIBE / DESCRIBE_CONFIGS).
    pub fn allow_grants(self, requested: AclOperation) -> bool {
        use AclOperation::*;
        if self == All || self == requested {
            return true;
        }
        match requested {
            Describe => matches!(self, Read | Write | Delete | Alter),
            DescribeConfigs => self == AlterConfigs,
            _ => false,
        }
    }

    /// True if a DENY ACL for `self` refuses `requested` (the operation itself or ALL; a DENY
    /// implies nothing else).
    pub fn deny_refuses(self, requested: AclOperation) -> bool {
        self == AclOperation::All || self == requested
    }
}

/// Error from validating a binding or filter: a Kafka error code and a message.
pub type AclError = (i16, String);

fn invalid(message: String) -> AclError {
    (INVALID_REQUEST, message)
}

/// True if `principal` has Kafka's `Type:name` form (both parts non-empty).
pub fn is_valid_principal(principal: &str) -> bool {
    match principal.split_once(':') {
        Some((kind, name)) => !kind.is_empty() && !name.is_empty(),
        None => false,
    }
}

/// Prints an address as Java's `InetAddress.getHostAddress()` does, which is what ACL hosts
/// are compared with: IPv4 dotted, IPv4-mapped IPv6 as IPv4, other IPv6 as eight uncompressed
/// lower-case hex groups (`0:0:0:0:0:0:0:1`).
pub fn java_host_address(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return v4.to_string();
            }
            let s = v6.segments();
            format!(
                "{:x}:{:x}:{:x}:{:x}:{:x}:{:x}:{:x}:{:x}",
                s[0], s[1], s[2], s[3], s[4], s[5], s[6], s[7]
            )
        }
    }
}

/// Bumped whenever some metadata state of this process changes its ACLs (or is replaced by a
/// snapshot): authorizers built from that state compare it with the value they were built at
/// and rebuild when it moved. A hint only: a change elsewhere in the process costs a rebuild.
static ACL_GENERATION: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

/// Notes that ACLs of some metadata state changed (see [`acl_generation`]).
pub fn note_acls_changed() {
    ACL_GENERATION.fetch_add(1, std::sync::atomic::Ordering::AcqRel);
}

/// The current ACL generation: any change of ACLs applied after it was read gives a larger one.
pub fn acl_generation() -> u64 {
    ACL_GENERATION.load(std::sync::atomic::Ordering::Acquire)
}

/// One ACL: a resource pattern and an access control entry.
#[derive(
    Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
pub struct AclBinding {
    /// The resource type (never ANY or UNKNOWN in a valid binding).
    pub resource_type: ResourceType,
    /// The resource name, `*` (LITERAL) for every name, or a prefix (PREFIXED).
    pub resource_name: String,
    /// LITERAL or PREFIXED.
    pub pattern_type: PatternType,
    /// `Type:name`, e.g. `User:alice`, or `User:*` for every user.
    pub principal: String,
    /// A host address, or `*` for every host.
    pub host: String,
    /// The operation.
    pub operation: AclOperation,
    /// ALLOW or DENY.
    pub permission: AclPermission,
}

impl AclBinding {
    /// Builds a binding.
    pub fn new(
        resource_type: ResourceType,
        resource_name: impl Into<String>,
        pattern_type: PatternType,
        principal: impl Into<String>,
        host: impl Into<String>,
        operation: AclOperation,
        permission: AclPermission,
    ) -> Self {
        AclBinding {
            resource_type,
            resource_name: resource_name.into(),
            pattern_type,
            principal: principal.into(),
            host: host.into(),
            operation,
            permission,
        }
    }

    /// The checks Kafka makes on CreateAcls (the broker's request checks and the controller's
    /// `AclControlManager`); every failure is INVALID_REQUEST. The principal must be `Type:name`
    /// with both parts non-empty (Kafka only needs the colon); the host is not checked.
    pub fn validate(&self) -> Result<(), AclError> {
        if !self.resource_type.is_concrete() {
            return Err(invalid(format!(
                "invalid resource type {}",
                self.resource_type
            )));
        }
        if !matches!(
            self.pattern_type,
            PatternType::Literal | PatternType::Prefixed
        ) {
            return Err(invalid(format!(
                "invalid pattern type {}",
                self.pattern_type
            )));
        }
        if matches!(self.operation, AclOperation::Unknown | AclOperation::Any) {
            return Err(invalid(format!("invalid operation {}", self.operation)));
        }
        if !matches!(self.permission, AclPermission::Allow | AclPermission::Deny) {
            return Err(invalid(format!(
                "invalid permission type {}",
                self.permission
            )));
        }
        if self.resource_type == ResourceType::Cluster && self.resource_name != CLUSTER_NAME {
            return Err(invalid(format!(
                "the only valid name for the CLUSTER resource is {CLUSTER_NAME}"
            )));
        }
        if self.resource_name.is_empty() {
            return Err(invalid("resource name should not be empty".to_string()));
        }
        if !is_valid_principal(&self.principal) {
            return Err(invalid(format!(
                "principal {:?} is not of the form Type:name",
                self.principal
            )));
        }
        Ok(())
    }

    /// True if this ACL's pattern covers the resource `name` (LITERAL: equal or `*`;
    /// PREFIXED: `name` starts with it).
    pub fn pattern_covers(&self, name: &str) -> bool {
        match self.pattern_type {
            PatternType::Literal => self.resource_name == name || self.resource_name == WILDCARD,
            PatternType::Prefixed => name.starts_with(self.resource_name.as_str()),
            _ => false,
        }
    }

    fn principal_and_host_match(&self, principal: &str, host: &str) -> bool {
        (self.principal == principal || self.principal == WILDCARD_PRINCIPAL)
            && (self.host == WILDCARD || self.host == host)
    }
}

impl fmt::Display for AclBinding {
    /// `TOPIC:LITERAL:orders User:alice@* READ ALLOW`, for logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{} {}@{} {} {}",
            self.resource_type,
            self.pattern_type,
            self.resource_name,
            self.principal,
            self.host,
            self.operation,
            self.permission
        )
    }
}

/// A filter over bindings, as in DescribeAcls and DeleteAcls.
#[derive(Clone, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct AclFilter {
    /// A type, or ANY for every type.
    pub resource_type: ResourceType,
    /// A name, or `None` for every name.
    pub resource_name: Option<String>,
    /// ANY (every pattern type, exact name), MATCH (every pattern that would cover the name),
    /// LITERAL or PREFIXED (that pattern type, exact name).
    pub pattern_type: PatternType,
    /// A principal, or `None` for every principal (`User:*` selects only `User:*` ACLs).
    pub principal: Option<String>,
    /// A host, or `None` for every host.
    pub host: Option<String>,
    /// An operation, or ANY.
    pub operation: AclOperation,
    /// A permission, or ANY.
    pub permission: AclPermission,
}

impl AclFilter {
    /// The filter that matches every binding.
    pub fn any() -> Self {
        AclFilter {
            resource_type: ResourceType::Any,
            resource_name: None,
            pattern_type: PatternType::Any,
            principal: None,
            host: None,
            operation: AclOperation::Any,
            permission: AclPermission::Any,
        }
    }

    /// The filter that matches exactly `binding`.
    pub fn exact(binding: &AclBinding) -> Self {
        AclFilter {
            resource_type: binding.resource_type,
            resource_name: Some(binding.resource_name.clone()),
            pattern_type: binding.pattern_type,
            principal: Some(binding.principal.clone()),
            host: Some(binding.host.clone()),
            operation: binding.operation,
            permission: binding.permission,
        }
    }

    /// True if `binding` passes the filter (Kafka's `AclBindingFilter.matches`).
    pub fn matches(&self, binding: &AclBinding) -> bool {
        self.pattern_matches(binding) && self.entry_matches(binding)
    }

    fn pattern_matches(&self, b: &AclBinding) -> bool {
        if self.resource_type != ResourceType::Any && self.resource_type != b.resource_type {
            return false;
        }
        let loose = matches!(self.pattern_type, PatternType::Any | PatternType::Match);
        if !loose && self.pattern_type != b.pattern_type {
            return false;
        }
        let Some(name) = self.resource_name.as_deref() else {
            return true;
        };
        if self.pattern_type != PatternType::Match {
            return b.resource_name == name;
        }
        b.pattern_covers(name)
    }

    fn entry_matches(&self, b: &AclBinding) -> bool {
        self.principal.as_deref().is_none_or(|p| p == b.principal)
            && self.host.as_deref().is_none_or(|h| h == b.host)
            && (self.operation == AclOperation::Any || self.operation == b.operation)
            && (self.permission == AclPermission::Any || self.permission == b.permission)
    }

    /// Kafka's check of a filter: no UNKNOWN resource type, pattern type, operation or
    /// permission (INVALID_REQUEST).
    pub fn validate(&self) -> Result<(), AclError> {
        if self.resource_type == ResourceType::Unknown {
            return Err(invalid("unknown resource type in filter".to_string()));
        }
        if self.pattern_type == PatternType::Unknown {
            return Err(invalid("unknown pattern type in filter".to_string()));
        }
        if self.operation == AclOperation::Unknown {
            return Err(invalid("unknown operation in filter".to_string()));
        }
        if self.permission == AclPermission::Unknown {
            return Err(invalid("unknown permission type in filter".to_string()));
        }
        Ok(())
    }

    /// The check of a DeleteAcls filter (same as [`AclFilter::validate`]).
    pub fn validate_for_delete(&self) -> Result<(), AclError> {
        self.validate()
    }

    /// The check of a DescribeAcls filter (same as [`AclFilter::validate`]).
    pub fn validate_for_describe(&self) -> Result<(), AclError> {
        self.validate()
    }
}

/// The ACLs of one resource type, indexed by name.
#[derive(Clone, Debug, Default)]
struct TypeIndex {
    /// LITERAL ACLs by exact name (including the `*` wildcard).
    literal: HashMap<String, Vec<AclBinding>>,
    /// PREFIXED ACLs by prefix.
    prefixed: BTreeMap<String, Vec<AclBinding>>,
    /// How many distinct prefixes of each byte length exist, so a lookup probes only the
    /// lengths that can match.
    prefix_lengths: BTreeMap<usize, usize>,
}

impl TypeIndex {
    fn insert(&mut self, b: AclBinding) {
        match b.pattern_type {
            PatternType::Literal => self
                .literal
                .entry(b.resource_name.clone())
                .or_default()
                .push(b),
            PatternType::Prefixed => {
                let len = b.resource_name.len();
                let list = self.prefixed.entry(b.resource_name.clone()).or_default();
                if list.is_empty() {
                    *self.prefix_lengths.entry(len).or_default() += 1;
                }
                list.push(b);
            }
            _ => {}
        }
    }

    fn remove(&mut self, b: &AclBinding) {
        match b.pattern_type {
            PatternType::Literal => {
                if let Some(list) = self.literal.get_mut(b.resource_name.as_str()) {
                    list.retain(|x| x != b);
                    if list.is_empty() {
                        self.literal.remove(b.resource_name.as_str());
                    }
                }
            }
            PatternType::Prefixed => {
                if let Some(list) = self.prefixed.get_mut(b.resource_name.as_str()) {
                    list.retain(|x| x != b);
                    if list.is_empty() {
                        self.prefixed.remove(b.resource_name.as_str());
                        let len = b.resource_name.len();
                        if let Some(count) = self.prefix_lengths.get_mut(&len) {
                            *count -= 1;
                            if *count == 0 {
                                self.prefix_lengths.remove(&len);
                            }
                        }
                    }
                }
            }
            _ => {}
        }
    }

    /// Calls `visit` with each list of ACLs whose pattern covers `name`: the literal name, the
    /// literal wildcard, then every prefix of `name`. Stops early when `visit` returns false.
    fn for_each_covering(&self, name: &str, mut visit: impl FnMut(&[AclBinding]) -> bool) {
        if let Some(list) = self.literal.get(name)
            && !visit(list)
        {
            return;
        }
        if name != WILDCARD
            && let Some(list) = self.literal.get(WILDCARD)
            && !visit(list)
        {
            return;
        }
        for &len in self.prefix_lengths.keys() {
            if len > name.len() {
                break;
            }
            if !name.is_char_boundary(len) {
                continue;
            }
            if let Some(list) = self.prefixed.get(&name[..len])
                && !visit(list)
            {
                return;
            }
        }
    }
}

/// The ACLs of the cluster and the decisions Kafka's `StandardAuthorizer` makes with them.
#[derive(Clone, Debug, Default)]
pub struct Authorizer {
    /// Every binding, deduplicated, in a stable order (for listing).
    all: BTreeSet<AclBinding>,
    /// Per resource type (indexed by wire code), for lookups.
    by_type: [TypeIndex; 8],
    /// Principals allowed everything (`super.users`).
    super_users: HashSet<String>,
    /// The decision for a resource that has no ACL at all.
    allow_everyone_if_no_acl_found: bool,
}

impl Authorizer {
    /// An authorizer with no ACLs, no super users, denying resources without ACLs.
    pub fn new() -> Self {
        Self::default()
    }

    /// An authorizer holding `bindings`, with the given configuration.
    pub fn with_acls(
        bindings: impl IntoIterator<Item = AclBinding>,
        super_users: Vec<String>,
        allow_everyone_if_no_acl_found: bool,
    ) -> Self {
        let mut a = Authorizer {
            super_users: super_users.into_iter().collect(),
            allow_everyone_if_no_acl_found,
            ..Self::default()
        };
        for b in bindings {
            a.add(b);
        }
        a
    }

    /// Replaces the super users (principals such as `User:admin`).
    pub fn set_super_users(&mut self, super_users: Vec<String>) {
        self.super_users = super_users.into_iter().collect();
    }

    /// Sets Kafka's `allow.everyone.if.no.acl.found`.
    pub fn set_allow_everyone_if_no_acl_found(&mut self, allow: bool) {
        self.allow_everyone_if_no_acl_found = allow;
    }

    /// True if `principal` is a super user.
    pub fn is_super_user(&self, principal: &str) -> bool {
        self.super_users.contains(principal)
    }

    /// The number of ACLs.
    pub fn len(&self) -> usize {
        self.all.len()
    }

    /// True if there is no ACL.
    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    /// Adds a binding; returns false if it was already there or cannot be stored (a resource
    /// type of ANY/UNKNOWN or a pattern type other than LITERAL/PREFIXED).
    pub fn add(&mut self, binding: AclBinding) -> bool {
        if !binding.resource_type.is_concrete()
            || !matches!(
                binding.pattern_type,
                PatternType::Literal | PatternType::Prefixed
            )
            || self.all.contains(&binding)
        {
            return false;
        }
        self.by_type[binding.resource_type.code() as usize].insert(binding.clone());
        self.all.insert(binding);
        true
    }

    /// Removes and returns the bindings the filter matches.
    pub fn remove(&mut self, filter: &AclFilter) -> Vec<AclBinding> {
        let gone = self.list(filter);
        for b in &gone {
            self.all.remove(b);
            self.by_type[b.resource_type.code() as usize].remove(b);
        }
        gone
    }

    /// The bindings the filter matches, in a stable order.
    pub fn list(&self, filter: &AclFilter) -> Vec<AclBinding> {
        self.all
            .iter()
            .filter(|b| filter.matches(b))
            .cloned()
            .collect()
    }

    /// Every binding, in a stable order.
    pub fn iter(&self) -> impl Iterator<Item = &AclBinding> {
        self.all.iter()
    }

    /// Kafka's decision for `principal` (e.g. `User:alice`) connected from `host` (as printed
    /// by [`java_host_address`]) doing `op` on the resource `name` of `resource_type`.
    ///
    /// Super users are allowed. Otherwise the ACLs covering the resource are those with the
    /// literal name, the literal `*`, and every prefix of the name. Of those whose principal
    /// (or `User:*`) and host (or `*`) match: a DENY for `op` or ALL denies; else an ALLOW for
    /// `op`, ALL, or an operation implying `op` allows. If no ACL covers the resource at all
    /// (whatever its principal), the answer is `allow_everyone_if_no_acl_found`; else deny.
    /// Allocation-free.
    pub fn authorize(
        &self,
        principal: &str,
        host: &str,
        op: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        if self.super_users.contains(principal) {
            return true;
        }
        if !resource_type.is_concrete() || matches!(op, AclOperation::Unknown | AclOperation::Any) {
            return false;
        }
        let index = &self.by_type[resource_type.code() as usize];
        let mut has_acls = false;
        let mut allowed = false;
        let mut denied = false;
        index.for_each_covering(name, |list| {
            has_acls |= !list.is_empty();
            for acl in list {
                if !acl.principal_and_host_match(principal, host) {
                    continue;
                }
                match acl.permission {
                    AclPermission::Deny if acl.operation.deny_refuses(op) => {
                        denied = true;
                        return false;
                    }
                    AclPermission::Allow if acl.operation.allow_grants(op) => allowed = true,
                    _ => {}
                }
            }
            true
        });
        if denied {
            false
        } else if allowed {
            true
        } else {
            !has_acls && self.allow_everyone_if_no_acl_found
        }
    }

    /// Kafka's `authorizeByResourceType` (KIP-679): may `principal` do `op` on at least one
    /// resource of `resource_type`? Used e.g. for idempotent producers without cluster
    /// IDEMPOTENT_WRITE ("WRITE on any topic").
    ///
    /// As Kafka's default implementation: allowed if [`Authorizer::authorize`] allows the op on
    /// a resource named `hardcode` (covers super users, `*` ACLs and the no-ACL default).
    /// Otherwise, among ACLs of that type whose principal (or `User:*`) and host (or `*`)
    /// match and whose operation is `op` or ALL (no implied operations here): a DENY on the
    /// literal `*` denies; an ALLOW on the literal `*` allows; else allowed if some LITERAL
    /// ALLOW name has no LITERAL DENY of the same name and no PREFIXED DENY that is a prefix of
    /// it, or some PREFIXED ALLOW has no PREFIXED DENY that is a prefix of it.
    pub fn authorize_by_resource_type(
        &self,
        principal: &str,
        host: &str,
        op: AclOperation,
        resource_type: ResourceType,
    ) -> bool {
        if !resource_type.is_concrete() || matches!(op, AclOperation::Unknown | AclOperation::Any) {
            return self.super_users.contains(principal);
        }
        if self.authorize(principal, host, op, resource_type, "hardcode") {
            return true;
        }
        let index = &self.by_type[resource_type.code() as usize];
        let relevant = |acl: &AclBinding| {
            acl.principal_and_host_match(principal, host)
                && (acl.operation == op || acl.operation == AclOperation::All)
        };
        let mut literal_denies: HashSet<&str> = HashSet::new();
        let mut prefix_denies: HashSet<&str> = HashSet::new();
        let mut wildcard_allow = false;
        for acl in index
            .literal
            .values()
            .chain(index.prefixed.values())
            .flatten()
        {
            if !relevant(acl) || acl.permission != AclPermission::Deny {
                continue;
            }
            if acl.pattern_type == PatternType::Literal {
                if acl.resource_name == WILDCARD {
                    return false;
                }
                literal_denies.insert(&acl.resource_name);
            } else {
                prefix_denies.insert(&acl.resource_name);
            }
        }
        let dominated_by_prefix_deny = |name: &str| {
            prefix_denies
                .iter()
                .any(|p| !p.is_empty() && name.starts_with(p))
        };
        let mut any_allow = false;
        for acl in index
            .literal
            .values()
            .chain(index.prefixed.values())
            .flatten()
        {
            if !relevant(acl) || acl.permission != AclPermission::Allow {
                continue;
            }
            let name = acl.resource_name.as_str();
            if acl.pattern_type == PatternType::Literal {
                if name == WILDCARD {
                    wildcard_allow = true;
                    continue;
                }
                if literal_denies.contains(name) {
                    continue;
                }
            }
            if !dominated_by_prefix_deny(name) {
                any_allow = true;
            }
        }
        wildcard_allow || any_allow
    }
}

#[cfg(test)]
mod tests {
    use super::AclOperation as Op;
    use super::AclPermission as Perm;
    use super::PatternType as Pat;
    use super::ResourceType as Res;
    use super::*;

    fn acl(
        rt: Res,
        name: &str,
        pat: Pat,
        principal: &str,
        host: &str,
        op: Op,
        perm: Perm,
    ) -> AclBinding {
        AclBinding::new(rt, name, pat, principal, host, op, perm)
    }

    fn topic(name: &str, pat: Pat, principal: &str, op: Op, perm: Perm) -> AclBinding {
        acl(Res::Topic, name, pat, principal, "*", op, perm)
    }

    const ALICE: &str = "User:alice";
    const BOB: &str = "User:bob";
    const HOST: &str = "10.0.0.1";

    #[test]
    fn enum_codes_names_round_trip() {
        let cases: &[(i8, Res, &str)] = &[
            (0, Res::Unknown, "UNKNOWN"),
            (1, Res::Any, "ANY"),
            (2, Res::Topic, "TOPIC"),
            (3, Res::Group, "GROUP"),
            (4, Res::Cluster, "CLUSTER"),
            (5, Res::TransactionalId, "TRANSACTIONAL_ID"),
            (6, Res::DelegationToken, "DELEGATION_TOKEN"),
            (7, Res::User, "USER"),
        ];
        for &(code, v, name) in cases {
            assert_eq!(Res::from_code(code), v);
            assert_eq!(v.code(), code);
            assert_eq!(v.to_string(), name);
            assert_eq!(Res::parse_name(&name.to_lowercase()), Some(v));
        }
        assert_eq!(Res::from_code(8), Res::Unknown);
        assert_eq!(Res::from_code(-1), Res::Unknown);

        let ops: &[(i8, Op, &str)] = &[
            (0, Op::Unknown, "UNKNOWN"),
            (1, Op::Any, "ANY"),
            (2, Op::All, "ALL"),
            (3, Op::Read, "READ"),
            (4, Op::Write, "WRITE"),
            (5, Op::Create, "CREATE"),
            (6, Op::Delete, "DELETE"),
            (7, Op::Alter, "ALTER"),
            (8, Op::Describe, "DESCRIBE"),
            (9, Op::ClusterAction, "CLUSTER_ACTION"),
            (10, Op::DescribeConfigs, "DESCRIBE_CONFIGS"),
            (11, Op::AlterConfigs, "ALTER_CONFIGS"),
            (12, Op::IdempotentWrite, "IDEMPOTENT_WRITE"),
            (13, Op::CreateTokens, "CREATE_TOKENS"),
            (14, Op::DescribeTokens, "DESCRIBE_TOKENS"),
            (15, Op::TwoPhaseCommit, "TWO_PHASE_COMMIT"),
        ];
        for &(code, v, name) in ops {
            assert_eq!(Op::from_code(code), v);
            assert_eq!(v.code(), code);
            assert_eq!(v.to_string(), name);
        }
        assert_eq!(Op::from_code(16), Op::Unknown);
        assert_eq!(
            Op::parse_name("describe-configs"),
            Some(Op::DescribeConfigs)
        );
        assert_eq!(Op::parse_name("nope"), None);

        let pats = [
            (0, Pat::Unknown, "UNKNOWN"),
            (1, Pat::Any, "ANY"),
            (2, Pat::Match, "MATCH"),
            (3, Pat::Literal, "LITERAL"),
            (4, Pat::Prefixed, "PREFIXED"),
        ];
        for (code, v, name) in pats {
            assert_eq!(
                (Pat::from_code(code), v.code(), v.to_string()),
                (v, code, name.into())
            );
        }
        let perms = [
            (0, Perm::Unknown, "UNKNOWN"),
            (1, Perm::Any, "ANY"),
            (2, Perm::Deny, "DENY"),
            (3, Perm::Allow, "ALLOW"),
        ];
        for (code, v, name) in perms {
            assert_eq!(
                (Perm::from_code(code), v.code(), v.to_string()),
                (v, code, name.into())
            );
        }
        assert_eq!(Perm::from_code(9), Perm::Unknown);
    }

    #[test]
    fn binding_serde_round_trip() {
        let b = topic("orders", Pat::Prefixed, ALICE, Op::Read, Perm::Allow);
        let json = serde_json::to_string(&b).expect("serialize");
        let back: AclBinding = serde_json::from_str(&json).expect("deserialize");
        assert_eq!(back, b);
        assert_eq!(
            b.to_string(),
            "TOPIC:PREFIXED:orders User:alice@* READ ALLOW"
        );
    }

    /// One authorization case: principal, host, operation, resource type, name, expected.
    type Case = (&'static str, &'static str, Op, Res, &'static str, bool);

    fn check(auth: &Authorizer, cases: &[Case]) {
        for (i, &(p, h, op, rt, name, want)) in cases.iter().enumerate() {
            assert_eq!(
                auth.authorize(p, h, op, rt, name),
                want,
                "case {i}: {p} from {h} {op} on {rt}:{name}"
            );
        }
    }

    #[test]
    fn deny_wins_over_allow() {
        let auth = Authorizer::with_acls(
            [
                topic("t", Pat::Literal, ALICE, Op::Read, Perm::Allow),
                topic("t", Pat::Literal, ALICE, Op::Read, Perm::Deny),
                topic("u", Pat::Literal, ALICE, Op::All, Perm::Allow),
                topic("u", Pat::Literal, WILDCARD_PRINCIPAL, Op::Write, Perm::Deny),
                topic("v", Pat::Literal, ALICE, Op::Write, Perm::Allow),
                topic("*", Pat::Literal, ALICE, Op::All, Perm::Deny),
                topic("w", Pat::Literal, BOB, Op::Read, Perm::Allow),
                topic("w", Pat::Prefixed, BOB, Op::All, Perm::Deny),
            ],
            vec![],
            false,
        );
        check(
            &auth,
            &[
                (ALICE, HOST, Op::Read, Res::Topic, "t", false),
                (ALICE, HOST, Op::Write, Res::Topic, "u", false),
                (ALICE, HOST, Op::Write, Res::Topic, "v", false),
                (ALICE, HOST, Op::Read, Res::Topic, "u", false),
                (BOB, HOST, Op::Read, Res::Topic, "w", false),
                (BOB, HOST, Op::Read, Res::Topic, "wx", false),
                (BOB, HOST, Op::Read, Res::Topic, "t", false),
            ],
        );
    }

    #[test]
    fn implied_operations() {
        let auth = Authorizer::with_acls(
            [
                topic("r", Pat::Literal, ALICE, Op::Read, Perm::Allow),
                topic("w", Pat::Literal, ALICE, Op::Write, Perm::Allow),
                topic("d", Pat::Literal, ALICE, Op::Delete, Perm::Allow),
                topic("a", Pat::Literal, ALICE, Op::Alter, Perm::Allow),
                topic("c", Pat::Literal, ALICE, Op::Create, Perm::Allow),
                topic("ac", Pat::Literal, ALICE, Op::AlterConfigs, Perm::Allow),
                topic("dc", Pat::Literal, ALICE, Op::DescribeConfigs, Perm::Allow),
                topic("all", Pat::Literal, ALICE, Op::All, Perm::Allow),
                // A DENY of READ does not deny DESCRIBE.
                topic("x", Pat::Literal, ALICE, Op::Read, Perm::Deny),
                topic("x", Pat::Literal, ALICE, Op::Write, Perm::Allow),
                // A DENY of DESCRIBE does not deny READ.
                topic("y", Pat::Literal, ALICE, Op::Describe, Perm::Deny),
                topic("y", Pat::Literal, ALICE, Op::Read, Perm::Allow),
                // A DENY of ALTER_CONFIGS does not deny DESCRIBE_CONFIGS.
                topic("z", Pat::Literal, ALICE, Op::AlterConfigs, Perm::Deny),
                topic("z", Pat::Literal, ALICE, Op::DescribeConfigs, Perm::Allow),
            ],
            vec![],
            false,
        );
        check(
            &auth,
            &[
                (ALICE, HOST, Op::Describe, Res::Topic, "r", true),
                (ALICE, HOST, Op::Describe, Res::Topic, "w", true),
                (ALICE, HOST, Op::Describe, Res::Topic, "d", true),
                (ALICE, HOST, Op::Describe, Res::Topic, "a", true),
                (ALICE, HOST, Op::Describe, Res::Topic, "c", false),
                (ALICE, HOST, Op::Describe, Res::Topic, "ac", false),
                (ALICE, HOST, Op::DescribeConfigs, Res::Topic, "ac", true),
                (ALICE, HOST, Op::AlterConfigs, Res::Topic, "dc", false),
                (ALICE, HOST, Op::DescribeConfigs, Res::Topic, "r", false),
                (ALICE, HOST, Op::Read, Res::Topic, "w", false),
                (ALICE, HOST, Op::Write, Res::Topic, "r", false),
                (ALICE, HOST, Op::Delete, Res::Topic, "all", true),
                (ALICE, HOST, Op::IdempotentWrite, Res::Topic, "all", true),
                (ALICE, HOST, Op::Describe, Res::Topic, "x", true),
                (ALICE, HOST, Op::Read, Res::Topic, "x", false),
                (ALICE, HOST, Op::Read, Res::Topic, "y", true),
                (ALICE, HOST, Op::Describe, Res::Topic, "y", false),
                (ALICE, HOST, Op::DescribeConfigs, Res::Topic, "z", true),
                (ALICE, HOST, Op::AlterConfigs, Res::Topic, "z", false),
            ],
        );
    }

    #[test]
    fn wildcards_of_principal_host_and_resource() {
        let auth = Authorizer::with_acls(
            [
                topic(
                    "*",
                    Pat::Literal,
                    WILDCARD_PRINCIPAL,
                    Op::Describe,
                    Perm::Allow,
                ),
                acl(
                    Res::Topic,
                    "t",
                    Pat::Literal,
                    ALICE,
                    HOST,
                    Op::Read,
                    Perm::Allow,
                ),
                acl(
                    Res::Group,
                    "*",
                    Pat::Literal,
                    ALICE,
                    "*",
                    Op::Read,
                    Perm::Allow,
                ),
                acl(
                    Res::Group,
                    "g",
                    Pat::Literal,
                    BOB,
                    "10.9.9.9",
                    Op::Read,
                    Perm::Deny,
                ),
                acl(
                    Res::Group,
                    "g",
                    Pat::Literal,
                    BOB,
                    "*",
                    Op::Read,
                    Perm::Allow,
                ),
            ],
            vec![],
            false,
        );
        check(
            &auth,
            &[
                (BOB, HOST, Op::Describe, Res::Topic, "anything", true),
                // As in Kafka, `User:*` ACLs apply to every principal, whatever its type.
                ("Group:x", HOST, Op::Describe, Res::Topic, "anything", true),
                (BOB, HOST, Op::Write, Res::Topic, "anything", false),
                (BOB, HOST, Op::Read, Res::Topic, "t", false),
                (ALICE, HOST, Op::Read, Res::Topic, "t", true),
                (ALICE, "10.0.0.2", Op::Read, Res::Topic, "t", false),
                (ALICE, "10.0.0.2", Op::Read, Res::Group, "any-group", true),
                (ALICE, HOST, Op::Read, Res::Group, "*", true),
                (BOB, "10.9.9.9", Op::Read, Res::Group, "g", false),
                (BOB, HOST, Op::Read, Res::Group, "g", true),
                (BOB, HOST, Op::Read, Res::Group, "h", false),
                // The wildcard is literal `*` only; a name containing `*` is not special.
                (ALICE, HOST, Op::Read, Res::TransactionalId, "*", false),
            ],
        );
    }

    #[test]
    fn prefixed_acls() {
        let auth = Authorizer::with_acls(
            [
                topic("fin-", Pat::Prefixed, ALICE, Op::Read, Perm::Allow),
                topic("fin-secret", Pat::Prefixed, ALICE, Op::Read, Perm::Deny),
                topic("f", Pat::Prefixed, BOB, Op::Write, Perm::Allow),
                topic("fo", Pat::Literal, BOB, Op::Read, Perm::Allow),
                topic("é", Pat::Prefixed, BOB, Op::Read, Perm::Allow),
            ],
            vec![],
            false,
        );
        check(
            &auth,
            &[
                (ALICE, HOST, Op::Read, Res::Topic, "fin-", true),
                (ALICE, HOST, Op::Read, Res::Topic, "fin-orders", true),
                (ALICE, HOST, Op::Describe, Res::Topic, "fin-orders", true),
                (ALICE, HOST, Op::Read, Res::Topic, "fin", false),
                (ALICE, HOST, Op::Read, Res::Topic, "fin-secret-1", false),
                (ALICE, HOST, Op::Read, Res::Topic, "fin-secret", false),
                (ALICE, HOST, Op::Read, Res::Group, "fin-orders", false),
                (BOB, HOST, Op::Write, Res::Topic, "foo", true),
                (BOB, HOST, Op::Read, Res::Topic, "foo", false),
                (BOB, HOST, Op::Read, Res::Topic, "fo", true),
                (BOB, HOST, Op::Read, Res::Topic, "éa", true),
                (BOB, HOST, Op::Read, Res::Topic, "e\u{301}", false),
                (BOB, HOST, Op::Write, Res::Topic, "", false),
            ],
        );
    }

    #[test]
    fn super_users_bypass_denies() {
        let auth = Authorizer::with_acls(
            [
                topic("*", Pat::Literal, WILDCARD_PRINCIPAL, Op::All, Perm::Deny),
                acl(
                    Res::Cluster,
                    CLUSTER_NAME,
                    Pat::Literal,
                    "User:*",
                    "*",
                    Op::All,
                    Perm::Deny,
                ),
            ],
            vec!["User:admin".into(), "User:CN=ops,O=Acme".into()],
            false,
        );
        assert!(auth.is_super_user("User:admin"));
        check(
            &auth,
            &[
                ("User:admin", HOST, Op::Write, Res::Topic, "t", true),
                (
                    "User:admin",
                    HOST,
                    Op::Alter,
                    Res::Cluster,
                    CLUSTER_NAME,
                    true,
                ),
                ("User:CN=ops,O=Acme", HOST, Op::Read, Res::Topic, "t", true),
                ("User:Admin", HOST, Op::Read, Res::Topic, "t", false),
                ("admin", HOST, Op::Read, Res::Topic, "t", false),
            ],
        );
    }

    #[test]
    fn no_acl_default_on_and_off() {
        let acls = [topic("guarded", Pat::Literal, ALICE, Op::Read, Perm::Allow)];
        let off = Authorizer::with_acls(acls.clone(), vec![], false);
        let mut on = Authorizer::with_acls(acls, vec![], false);
        on.set_allow_everyone_if_no_acl_found(true);
        for (auth, open) in [(&off, false), (&on, true)] {
            check(
                auth,
                &[
                    // No ACL covers these resources: the default decides.
                    (BOB, HOST, Op::Write, Res::Topic, "free", open),
                    (BOB, HOST, Op::Read, Res::Group, "guarded", open),
                    (BOB, HOST, Op::Alter, Res::Cluster, CLUSTER_NAME, open),
                    // An ACL covers the resource, even if not for BOB: deny.
                    (BOB, HOST, Op::Read, Res::Topic, "guarded", false),
                    (ALICE, HOST, Op::Write, Res::Topic, "guarded", false),
                    (ALICE, HOST, Op::Read, Res::Topic, "guarded", true),
                ],
            );
        }
        // A prefixed ACL also counts as an ACL on the resources it covers.
        let mut p = Authorizer::with_acls(
            [topic("pre", Pat::Prefixed, ALICE, Op::Read, Perm::Allow)],
            vec![],
            true,
        );
        assert!(!p.authorize(BOB, HOST, Op::Read, Res::Topic, "prefix"));
        assert!(p.authorize(BOB, HOST, Op::Read, Res::Topic, "pr"));
        p.remove(&AclFilter::any());
        assert!(p.authorize(BOB, HOST, Op::Read, Res::Topic, "prefix"));
    }

    #[test]
    fn invalid_requests_are_denied() {
        let auth = Authorizer::with_acls(
            [topic("*", Pat::Literal, ALICE, Op::All, Perm::Allow)],
            vec!["User:root".into()],
            true,
        );
        check(
            &auth,
            &[
                (ALICE, HOST, Op::Any, Res::Topic, "t", false),
                (ALICE, HOST, Op::Unknown, Res::Topic, "t", false),
                (ALICE, HOST, Op::Read, Res::Any, "t", false),
                (ALICE, HOST, Op::Read, Res::Unknown, "t", false),
                ("User:root", HOST, Op::Read, Res::Any, "t", true),
            ],
        );
    }

    #[test]
    fn authorize_by_resource_type_cases() {
        type Rt = (&'static str, Vec<AclBinding>, &'static str, Op, bool);
        let cases: Vec<Rt> = vec![
            ("no acls", vec![], ALICE, Op::Write, false),
            (
                "literal allow",
                vec![topic("t", Pat::Literal, ALICE, Op::Write, Perm::Allow)],
                ALICE,
                Op::Write,
                true,
            ),
            (
                "other principal",
                vec![topic("t", Pat::Literal, BOB, Op::Write, Perm::Allow)],
                ALICE,
                Op::Write,
                false,
            ),
            (
                "wildcard principal, ALL",
                vec![topic("t", Pat::Literal, "User:*", Op::All, Perm::Allow)],
                ALICE,
                Op::Write,
                true,
            ),
            (
                "implied ops do not count",
                vec![topic("t", Pat::Literal, ALICE, Op::Write, Perm::Allow)],
                ALICE,
                Op::Describe,
                false,
            ),
            (
                "literal allow, same literal deny",
                vec![
                    topic("t", Pat::Literal, ALICE, Op::Write, Perm::Allow),
                    topic("t", Pat::Literal, ALICE, Op::Write, Perm::Deny),
                ],
                ALICE,
                Op::Write,
                false,
            ),
            (
                "literal allow, deny on another literal",
                vec![
                    topic("t", Pat::Literal, ALICE, Op::Write, Perm::Allow),
                    topic("u", Pat::Literal, ALICE, Op::Write, Perm::Deny),
                ],
                ALICE,
                Op::Write,
                true,
            ),
            (
                "literal allow, prefix deny covering it",
                vec![
                    topic("team-a", Pat::Literal, ALICE, Op::Write, Perm::Allow),
                    topic("team", Pat::Prefixed, ALICE, Op::Write, Perm::Deny),
                ],
                ALICE,
                Op::Write,
                false,
            ),
            (
                "prefix allow, longer prefix deny",
                vec![
                    topic("team", Pat::Prefixed, ALICE, Op::Write, Perm::Allow),
                    topic("team-a", Pat::Prefixed, ALICE, Op::Write, Perm::Deny),
                ],
                ALICE,
                Op::Write,
                true,
            ),
            (
                "prefix allow, shorter prefix deny",
                vec![
                    topic("team-a", Pat::Prefixed, ALICE, Op::Write, Perm::Allow),
                    topic("team", Pat::Prefixed, "User:*", Op::All, Perm::Deny),
                ],
                ALICE,
                Op::Write,
                false,
            ),
            (
                "wildcard deny beats everything",
                vec![
                    topic("t", Pat::Literal, ALICE, Op::Write, Perm::Allow),
                    topic("*", Pat::Literal, ALICE, Op::Write, Perm::Deny),
                ],
                ALICE,
                Op::Write,
                false,
            ),
            (
                "wildcard allow",
                vec![topic("*", Pat::Literal, ALICE, Op::Write, Perm::Allow)],
                ALICE,
                Op::Write,
                true,
            ),
            (
                "other resource type",
                vec![acl(
                    Res::Group,
                    "g",
                    Pat::Literal,
                    ALICE,
                    "*",
                    Op::Write,
                    Perm::Allow,
                )],
                ALICE,
                Op::Write,
                false,
            ),
            (
                "other host",
                vec![acl(
                    Res::Topic,
                    "t",
                    Pat::Literal,
                    ALICE,
                    "10.1.1.1",
                    Op::Write,
                    Perm::Allow,
                )],
                ALICE,
                Op::Write,
                false,
            ),
            ("super user", vec![], "User:admin", Op::Write, true),
        ];
        for (what, acls, principal, op, want) in cases {
            let auth = Authorizer::with_acls(acls, vec!["User:admin".into()], false);
            assert_eq!(
                auth.authorize_by_resource_type(principal, HOST, op, Res::Topic),
                want,
                "{what}"
            );
        }
        // With no ACL at all on topics, the no-ACL default answers (as Kafka's `hardcode` probe).
        let open = Authorizer::with_acls([], vec![], true);
        assert!(open.authorize_by_resource_type(ALICE, HOST, Op::Write, Res::Topic));
        assert!(!open.authorize_by_resource_type(ALICE, HOST, Op::Any, Res::Topic));
    }

    fn store() -> Authorizer {
        Authorizer::with_acls(
            [
                topic("foo", Pat::Literal, ALICE, Op::Read, Perm::Allow),
                topic("*", Pat::Literal, ALICE, Op::Read, Perm::Allow),
                topic("f", Pat::Prefixed, BOB, Op::Write, Perm::Allow),
                topic("fo", Pat::Prefixed, BOB, Op::Write, Perm::Deny),
                topic("foobar", Pat::Prefixed, BOB, Op::Write, Perm::Allow),
                topic("bar", Pat::Literal, BOB, Op::Read, Perm::Allow),
                acl(
                    Res::Group,
                    "foo",
                    Pat::Literal,
                    ALICE,
                    HOST,
                    Op::Read,
                    Perm::Allow,
                ),
            ],
            vec![],
            false,
        )
    }

    fn filter(rt: Res, name: Option<&str>, pat: Pat) -> AclFilter {
        AclFilter {
            resource_type: rt,
            resource_name: name.map(str::to_string),
            pattern_type: pat,
            ..AclFilter::any()
        }
    }

    fn names(bindings: &[AclBinding]) -> Vec<String> {
        let mut v: Vec<String> = bindings
            .iter()
            .map(|b| format!("{}:{}:{}", b.resource_type, b.pattern_type, b.resource_name))
            .collect();
        v.sort();
        v
    }

    #[test]
    fn filters() {
        let s = store();
        let cases: Vec<(AclFilter, Vec<&str>)> = vec![
            (
                AclFilter::any(),
                vec![
                    "GROUP:LITERAL:foo",
                    "TOPIC:LITERAL:*",
                    "TOPIC:LITERAL:bar",
                    "TOPIC:LITERAL:foo",
                    "TOPIC:PREFIXED:f",
                    "TOPIC:PREFIXED:fo",
                    "TOPIC:PREFIXED:foobar",
                ],
            ),
            (
                filter(Res::Topic, Some("foo"), Pat::Match),
                vec![
                    "TOPIC:LITERAL:*",
                    "TOPIC:LITERAL:foo",
                    "TOPIC:PREFIXED:f",
                    "TOPIC:PREFIXED:fo",
                ],
            ),
            (
                filter(Res::Any, Some("foo"), Pat::Any),
                vec!["GROUP:LITERAL:foo", "TOPIC:LITERAL:foo"],
            ),
            (
                filter(Res::Topic, Some("fo"), Pat::Any),
                vec!["TOPIC:PREFIXED:fo"],
            ),
            (
                filter(Res::Topic, Some("foo"), Pat::Literal),
                vec!["TOPIC:LITERAL:foo"],
            ),
            (filter(Res::Topic, Some("foo"), Pat::Prefixed), vec![]),
            (
                filter(Res::Topic, Some("f"), Pat::Prefixed),
                vec!["TOPIC:PREFIXED:f"],
            ),
            (
                filter(Res::Topic, None, Pat::Prefixed),
                vec![
                    "TOPIC:PREFIXED:f",
                    "TOPIC:PREFIXED:fo",
                    "TOPIC:PREFIXED:foobar",
                ],
            ),
            (
                filter(Res::Topic, Some("*"), Pat::Literal),
                vec!["TOPIC:LITERAL:*"],
            ),
            (
                filter(Res::Topic, Some("*"), Pat::Match),
                vec!["TOPIC:LITERAL:*"],
            ),
            (
                filter(Res::Topic, Some("zzz"), Pat::Match),
                vec!["TOPIC:LITERAL:*"],
            ),
            (
                filter(Res::Group, None, Pat::Match),
                vec!["GROUP:LITERAL:foo"],
            ),
            (
                AclFilter {
                    principal: Some(BOB.into()),
                    operation: Op::Write,
                    ..AclFilter::any()
                },
                vec![
                    "TOPIC:PREFIXED:f",
                    "TOPIC:PREFIXED:fo",
                    "TOPIC:PREFIXED:foobar",
                ],
            ),
            (
                AclFilter {
                    principal: Some(BOB.into()),
                    permission: Perm::Deny,
                    ..AclFilter::any()
                },
                vec!["TOPIC:PREFIXED:fo"],
            ),
            (
                AclFilter {
                    host: Some(HOST.into()),
                    ..AclFilter::any()
                },
                vec!["GROUP:LITERAL:foo"],
            ),
            (
                AclFilter {
                    principal: Some("User:*".into()),
                    ..AclFilter::any()
                },
                vec![],
            ),
        ];
        for (i, (f, want)) in cases.into_iter().enumerate() {
            assert_eq!(names(&s.list(&f)), want, "case {i}: {f:?}");
        }
    }

    #[test]
    fn exact_filter_and_remove() {
        let mut s = store();
        let b = topic("fo", Pat::Prefixed, BOB, Op::Write, Perm::Deny);
        // `f` allows and `fo` denies WRITE: deny wins for names under `fo`.
        assert!(s.authorize(BOB, HOST, Op::Write, Res::Topic, "fa"));
        assert!(!s.authorize(BOB, HOST, Op::Write, Res::Topic, "fox"));
        assert_eq!(s.remove(&AclFilter::exact(&b)), vec![b.clone()]);
        assert_eq!(s.len(), 6);
        assert!(s.authorize(BOB, HOST, Op::Write, Res::Topic, "fox"));
        assert!(s.remove(&AclFilter::exact(&b)).is_empty());
        // Adding twice stores once; re-adding restores the decision.
        assert!(s.add(b.clone()));
        assert!(!s.add(b.clone()));
        assert_eq!(s.len(), 7);
        assert!(!s.authorize(BOB, HOST, Op::Write, Res::Topic, "fox"));

        let gone = s.remove(&filter(Res::Topic, Some("foobar"), Pat::Match));
        assert_eq!(
            names(&gone),
            vec![
                "TOPIC:LITERAL:*",
                "TOPIC:PREFIXED:f",
                "TOPIC:PREFIXED:fo",
                "TOPIC:PREFIXED:foobar",
            ]
        );
        assert_eq!(
            names(&s.list(&AclFilter::any())),
            vec![
                "GROUP:LITERAL:foo",
                "TOPIC:LITERAL:bar",
                "TOPIC:LITERAL:foo",
            ]
        );
        assert!(!s.authorize(BOB, HOST, Op::Write, Res::Topic, "foobarbaz"));
        assert!(s.authorize(ALICE, HOST, Op::Read, Res::Topic, "foo"));
        assert!(!s.authorize(ALICE, HOST, Op::Read, Res::Topic, "other"));
        assert_eq!(s.remove(&AclFilter::any()).len(), 3);
        assert!(s.is_empty());
    }

    #[test]
    fn add_refuses_unstorable_bindings() {
        let mut s = Authorizer::new();
        assert!(!s.add(topic("t", Pat::Match, ALICE, Op::Read, Perm::Allow)));
        assert!(!s.add(topic("t", Pat::Any, ALICE, Op::Read, Perm::Allow)));
        assert!(!s.add(acl(
            Res::Any,
            "t",
            Pat::Literal,
            ALICE,
            "*",
            Op::Read,
            Perm::Allow
        )));
        assert!(s.is_empty());
    }

    #[test]
    fn binding_validation() {
        let ok = topic("t", Pat::Literal, ALICE, Op::Read, Perm::Allow);
        assert_eq!(ok.validate(), Ok(()));
        let cluster = acl(
            Res::Cluster,
            CLUSTER_NAME,
            Pat::Literal,
            ALICE,
            "*",
            Op::Alter,
            Perm::Allow,
        );
        assert_eq!(cluster.validate(), Ok(()));
        let prefixed = topic("t-", Pat::Prefixed, "User:*", Op::All, Perm::Deny);
        assert_eq!(prefixed.validate(), Ok(()));

        let bad: Vec<(&str, AclBinding)> = vec![
            (
                "unknown type",
                AclBinding {
                    resource_type: Res::Unknown,
                    ..ok.clone()
                },
            ),
            (
                "any type",
                AclBinding {
                    resource_type: Res::Any,
                    ..ok.clone()
                },
            ),
            (
                "any pattern",
                AclBinding {
                    pattern_type: Pat::Any,
                    ..ok.clone()
                },
            ),
            (
                "match pattern",
                AclBinding {
                    pattern_type: Pat::Match,
                    ..ok.clone()
                },
            ),
            (
                "unknown pattern",
                AclBinding {
                    pattern_type: Pat::Unknown,
                    ..ok.clone()
                },
            ),
            (
                "any op",
                AclBinding {
                    operation: Op::Any,
                    ..ok.clone()
                },
            ),
            (
                "unknown op",
                AclBinding {
                    operation: Op::Unknown,
                    ..ok.clone()
                },
            ),
            (
                "any perm",
                AclBinding {
                    permission: Perm::Any,
                    ..ok.clone()
                },
            ),
            (
                "unknown perm",
                AclBinding {
                    permission: Perm::Unknown,
                    ..ok.clone()
                },
            ),
            (
                "cluster name",
                AclBinding {
                    resource_name: "other".into(),
                    ..cluster.clone()
                },
            ),
            (
                "empty name",
                AclBinding {
                    resource_name: String::new(),
                    ..ok.clone()
                },
            ),
            (
                "no colon",
                AclBinding {
                    principal: "alice".into(),
                    ..ok.clone()
                },
            ),
            (
                "empty type",
                AclBinding {
                    principal: ":alice".into(),
                    ..ok.clone()
                },
            ),
            (
                "empty user",
                AclBinding {
                    principal: "User:".into(),
                    ..ok.clone()
                },
            ),
        ];
        for (what, b) in bad {
            let err = b.validate().expect_err(what);
            assert_eq!(err.0, INVALID_REQUEST, "{what}");
            assert!(!err.1.is_empty(), "{what}");
        }
        let err = AclBinding {
            resource_name: "x".into(),
            ..cluster
        }
        .validate()
        .expect_err("cluster");
        assert!(err.1.contains("kafka-cluster"), "{}", err.1);
    }

    #[test]
    fn filter_validation() {
        assert_eq!(AclFilter::any().validate_for_delete(), Ok(()));
        assert_eq!(
            filter(Res::Topic, Some("x"), Pat::Match).validate_for_describe(),
            Ok(())
        );
        let bad = [
            AclFilter {
                resource_type: Res::Unknown,
                ..AclFilter::any()
            },
            AclFilter {
                pattern_type: Pat::Unknown,
                ..AclFilter::any()
            },
            AclFilter {
                operation: Op::Unknown,
                ..AclFilter::any()
            },
            AclFilter {
                permission: Perm::Unknown,
                ..AclFilter::any()
            },
        ];
        for f in bad {
            assert_eq!(
                f.validate_for_delete().map_err(|e| e.0),
                Err(INVALID_REQUEST),
                "{f:?}"
            );
            assert_eq!(
                f.validate_for_describe().map_err(|e| e.0),
                Err(INVALID_REQUEST),
                "{f:?}"
            );
        }
    }

    #[test]
    fn java_host_addresses() {
        let cases = [
            ("10.0.0.1", "10.0.0.1"),
            ("::1", "0:0:0:0:0:0:0:1"),
            ("fe80::1:abcd", "fe80:0:0:0:0:0:1:abcd"),
            ("::ffff:192.168.1.2", "192.168.1.2"),
        ];
        for (ip, want) in cases {
            let ip: IpAddr = ip.parse().expect("ip");
            assert_eq!(java_host_address(ip), want);
        }
    }

    /// Decisions agree with a direct scan of every ACL (the index is only an optimisation).
    #[test]
    fn index_agrees_with_linear_scan() {
        let s = store();
        let principals = [ALICE, BOB, "User:carol"];
        let hosts = [HOST, "10.0.0.2"];
        let names = ["foo", "fo", "f", "foobar", "foobarx", "bar", "*", "", "zz"];
        for rt in [Res::Topic, Res::Group] {
            for name in names {
                for p in principals {
                    for h in hosts {
                        for &op in Op::ALL_VALUES {
                            if matches!(op, Op::Any | Op::Unknown) {
                                continue;
                            }
                            let covering: Vec<&AclBinding> = s
                                .iter()
                                .filter(|b| b.resource_type == rt && b.pattern_covers(name))
                                .collect();
                            let applies: Vec<&&AclBinding> = covering
                                .iter()
                                .filter(|b| b.principal_and_host_match(p, h))
                                .collect();
                            let want = if applies
                                .iter()
                                .any(|b| b.permission == Perm::Deny && b.operation.deny_refuses(op))
                            {
                                false
                            } else if applies.iter().any(|b| {
                                b.permission == Perm::Allow && b.operation.allow_grants(op)
                            }) {
                                true
                            } else {
                                covering.is_empty() && s.allow_everyone_if_no_acl_found
                            };
                            assert_eq!(
                                s.authorize(p, h, op, rt, name),
                                want,
                                "{p} {h} {op} {rt}:{name}"
                            );
                        }
                    }
                }
            }
        }
    }
}
