"""Authorization: ACLs managed with Kafka's own `kafka-acls` (AclCommand) and enforced on every
API, checked with confluent-kafka as two ordinary users (alice, bob) and a super user (admin),
over a SASL_PLAINTEXT listener with PLAIN users from a file this test writes.

Each test uses topics, groups and ACLs of its own on one shared broker, and removes the ACLs it
added that could affect the others.
"""
import time
import uuid

import pytest
from confluent_kafka import (Consumer, ConsumerGroupTopicPartitions, KafkaError, KafkaException, Producer,
                             TopicPartition)
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation,
                                   AclPermissionType, AdminClient, ConfigResource, NewTopic,
                                   ResourcePatternType, ResourceType)

from security_lib import (SecureBroker, confluent_conf, java_properties, kafka_tool, make_certs,
                          write_properties)

ACL_COMMAND = "org.apache.kafka.tools.AclCommand"
USERS = {"admin": "admin-secret", "alice": "alice-secret", "bob": "bob-secret"}
LISTENER = "SASL"
TIMEOUT = 30


def unique(prefix):
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    work = tmp_path_factory.mktemp("acls")
    certs = make_certs(work / "certs")
    # PLAIN users of this test (the certificates' own file holds only the example's admin).
    (certs / "plain-users.txt").write_text("".join(f"{u}:{p}\n" for u, p in USERS.items()))
    b = SecureBroker(work / "broker", certs,
                     [{"name": LISTENER, "protocol": "SASL_PLAINTEXT", "sasl_mechanisms": ["PLAIN"]}],
                     extra='[authorization]\nenabled = true\nsuper_users = ["User:admin"]\n')
    try:
        b.start()
        yield b
    finally:
        b.stop()


def conf(broker, user, **extra):
    return confluent_conf(broker, LISTENER, "PLAIN", user, USERS[user], **extra)


_admins = {}


def admin(broker, user="admin"):
    """An AdminClient as `user`, kept for the module (a client dropped while its futures are
    pending cancels them)."""
    key = (broker.bootstrap(LISTENER), user)
    if key not in _admins:
        _admins[key] = AdminClient(conf(broker, user))
    return _admins[key]


def acls(broker, *args, user="admin", check=True):
    """Runs kafka-acls as `user` against the broker."""
    props = write_properties(broker.work / f"{user}.properties",
                             java_properties(broker, LISTENER, "PLAIN", user, USERS[user]))
    return kafka_tool(ACL_COMMAND, "--bootstrap-server", broker.bootstrap(LISTENER),
                      "--command-config", props, *args, timeout=90, check=check)


def create_topic(broker, name, partitions=1):
    fs = admin(broker).create_topics([NewTopic(name, partitions, 1)], operation_timeout=10)
    fs[name].result(timeout=TIMEOUT)


def produce(broker, user, topic, value=b"v", **extra):
    """Produces one message; returns its delivery error code (0 when it was written)."""
    p = Producer(conf(broker, user, **{"message.timeout.ms": 10000, **extra}))
    result = []
    p.produce(topic, value, on_delivery=lambda err, msg: result.append(err))
    p.flush(TIMEOUT)
    assert result, "no delivery report"
    return result[0].code() if result[0] else 0


def consume_one(broker, user, topic, group, timeout=20):
    """Consumes from the start of `topic` in `group`: (message value, None) or (None, error
    code) for the first error the consumer reports."""
    c = Consumer(conf(broker, user, **{"group.id": group, "auto.offset.reset": "earliest",
                                       "enable.auto.commit": False}))
    try:
        c.subscribe([topic])
        deadline = time.time() + timeout
        while time.time() < deadline:
            m = c.poll(1.0)
            if m is None:
                continue
            if m.error():
                if m.error().code() == KafkaError._PARTITION_EOF:
                    continue
                return None, m.error().code()
            c.commit(message=m, asynchronous=False)
            return m.value(), None
        return None, None
    finally:
        c.close()


def test_kafka_acls_add_list_remove(broker):
    topic = unique("cli")
    acls(broker, "--add", "--allow-principal", "User:alice", "--operation", "Read",
         "--operation", "Describe", "--topic", topic)
    acls(broker, "--add", "--deny-principal", "User:bob", "--operation", "All",
         "--resource-pattern-type", "prefixed", "--topic", topic)
    out = acls(broker, "--list", "--topic", topic).stdout
    assert "principal=User:alice" in out and "operation=READ" in out, out
    assert "permissionType=ALLOW" in out
    # A prefixed pattern is listed only when asked for (or with "match").
    matched = acls(broker, "--list", "--topic", topic, "--resource-pattern-type", "match").stdout
    assert "User:bob" in matched and "PREFIXED" in matched, matched

    # The same through the AdminClient's DescribeAcls, with exact fields.
    flt = AclBindingFilter(ResourceType.TOPIC, topic, ResourcePatternType.ANY, None, None,
                           AclOperation.ANY, AclPermissionType.ANY)
    found = admin(broker).describe_acls(flt).result(timeout=TIMEOUT)
    assert {(b.principal, b.operation, b.permission_type, b.resource_pattern_type) for b in found} == {
        ("User:alice", AclOperation.READ, AclPermissionType.ALLOW, ResourcePatternType.LITERAL),
        ("User:alice", AclOperation.DESCRIBE, AclPermissionType.ALLOW, ResourcePatternType.LITERAL),
        ("User:bob", AclOperation.ALL, AclPermissionType.DENY, ResourcePatternType.PREFIXED),
    }

    # An ordinary user may neither list nor change ACLs (no DESCRIBE / ALTER on the cluster).
    denied = acls(broker, "--list", "--topic", topic, user="alice", check=False)
    assert "ClusterAuthorizationException" in denied.stdout + denied.stderr, denied.stdout + denied.stderr
    grant = AclBinding(ResourceType.TOPIC, topic, ResourcePatternType.LITERAL, "User:alice", "*",
                       AclOperation.WRITE, AclPermissionType.ALLOW)
    with pytest.raises(KafkaException) as e:
        admin(broker, "alice").create_acls([grant])[grant].result(timeout=TIMEOUT)
    assert e.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED

    # DeleteAcls returns what it removed; the list is empty afterwards.
    fs = admin(broker).delete_acls([flt])
    removed = fs[flt].result(timeout=TIMEOUT)
    assert len(removed) == 3, removed
    out = acls(broker, "--list", "--topic", topic, "--resource-pattern-type", "any").stdout
    assert "User:" not in out, out


def test_invalid_binding_gets_invalid_request(broker):
    # The broker's own validation: a binding with an empty resource name.
    bad = AclBinding(ResourceType.GROUP, "", ResourcePatternType.LITERAL, "User:alice", "*",
                     AclOperation.READ, AclPermissionType.ALLOW)
    with pytest.raises(KafkaException) as e:
        admin(broker).create_acls([bad])[bad].result(timeout=TIMEOUT)
    assert e.value.args[0].code() == KafkaError.INVALID_REQUEST


def test_produce_and_consume_need_acls(broker):
    topic, group = unique("orders"), unique("g")
    create_topic(broker, topic)
    assert produce(broker, "alice", topic) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    acls(broker, "--add", "--allow-principal", "User:alice", "--producer", "--topic", topic)
    assert produce(broker, "alice", topic, b"hello") == 0

    # bob: no READ on the topic, then no READ on the group, then both.
    _, err = consume_one(broker, "bob", topic, group)
    assert err in (KafkaError.TOPIC_AUTHORIZATION_FAILED, KafkaError.GROUP_AUTHORIZATION_FAILED), err
    acls(broker, "--add", "--allow-principal", "User:bob", "--operation", "Read", "--topic", topic)
    _, err = consume_one(broker, "bob", topic, group)
    assert err == KafkaError.GROUP_AUTHORIZATION_FAILED, err
    acls(broker, "--add", "--allow-principal", "User:bob", "--operation", "Read", "--group", group)
    value, err = consume_one(broker, "bob", topic, group)
    assert (value, err) == (b"hello", None)
    # bob may read but not write.
    assert produce(broker, "bob", topic) == KafkaError.TOPIC_AUTHORIZATION_FAILED

    # Committed offsets: bob may fetch them for his group; alice may not (no DESCRIBE on it).
    a = admin(broker, "bob")
    req = ConsumerGroupTopicPartitions(group, [TopicPartition(topic, 0)])
    res = a.list_consumer_group_offsets([req])[group].result(timeout=TIMEOUT)
    assert res.topic_partitions[0].offset == 1
    with pytest.raises(KafkaException) as e:
        admin(broker, "alice").list_consumer_group_offsets([req])[group].result(timeout=TIMEOUT)
    assert e.value.args[0].code() == KafkaError.GROUP_AUTHORIZATION_FAILED


def test_idempotent_producer_needs_write_somewhere(broker):
    topic = unique("idem")
    create_topic(broker, topic)
    # bob may describe the topic (so the client finds its leader) but has WRITE on no topic
    # and no IDEMPOTENT_WRITE: InitProducerId is refused, which librdkafka treats as fatal.
    acls(broker, "--add", "--allow-principal", "User:bob", "--operation", "Describe",
         "--topic", topic)
    errors = []
    p = Producer(conf(broker, "bob", **{"enable.idempotence": True, "message.timeout.ms": 10000,
                                        "error_cb": lambda e: errors.append(e)}))
    p.produce(topic, b"x")
    try:
        p.flush(15)
    except KafkaException as e:  # a fatal error is raised from flush, too
        errors.append(e.args[0])
    assert any(e.code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED
               or (e.code() == KafkaError._FATAL and "authorization" in e.str().lower())
               for e in errors), errors
    # WRITE on this topic is enough for an idempotent producer.
    acls(broker, "--add", "--allow-principal", "User:bob", "--operation", "Write", "--topic", topic)
    assert produce(broker, "bob", topic, **{"enable.idempotence": True}) == 0


def test_transactional_id_needs_write(broker):
    p = Producer(conf(broker, "alice", **{"transactional.id": unique("tx")}))
    with pytest.raises(KafkaException) as e:
        p.init_transactions(20)
    assert e.value.args[0].code() == KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED


def test_metadata_hides_topics_not_described(broker):
    seen, hidden = unique("seen"), unique("hidden")
    create_topic(broker, seen)
    create_topic(broker, hidden)
    acls(broker, "--add", "--allow-principal", "User:alice", "--operation", "Describe",
         "--topic", seen)
    md = admin(broker, "alice").list_topics(timeout=TIMEOUT)
    assert seen in md.topics and hidden not in md.topics
    # Named: TOPIC_AUTHORIZATION_FAILED, whether or not it exists (nothing is disclosed).
    for name in (hidden, unique("absent")):
        md = admin(broker, "alice").list_topics(topic=name, timeout=TIMEOUT)
        assert md.topics[name].error.code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # The super user sees everything.
    md = admin(broker).list_topics(timeout=TIMEOUT)
    assert seen in md.topics and hidden in md.topics


def test_deny_wins_and_prefixed_patterns(broker):
    prefix = unique("fin") + "-"
    public, secret = prefix + "public", prefix + "secret"
    create_topic(broker, public)
    create_topic(broker, secret)
    acls(broker, "--add", "--allow-principal", "User:alice", "--operation", "All",
         "--resource-pattern-type", "prefixed", "--topic", prefix)
    acls(broker, "--add", "--deny-principal", "User:alice", "--operation", "Write",
         "--topic", secret)
    assert produce(broker, "alice", public) == 0
    assert produce(broker, "alice", secret) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    # DENY of WRITE leaves the other operations the prefix allows.
    md = admin(broker, "alice").list_topics(topic=secret, timeout=TIMEOUT)
    assert md.topics[secret].error is None


def test_wildcard_resource_and_principal(broker):
    topic = unique("pub")
    create_topic(broker, topic)
    assert produce(broker, "bob", topic) == KafkaError.TOPIC_AUTHORIZATION_FAILED
    try:
        # Every user may write to every topic.
        acls(broker, "--add", "--allow-principal", "User:*", "--operation", "Write",
             "--topic", "*")
        assert produce(broker, "bob", topic) == 0
    finally:
        acls(broker, "--remove", "--force", "--allow-principal", "User:*", "--operation",
             "Write", "--topic", "*")
    assert produce(broker, "bob", topic) == KafkaError.TOPIC_AUTHORIZATION_FAILED


def test_delete_records_needs_delete(broker):
    topic = unique("dr")
    create_topic(broker, topic)
    assert produce(broker, "admin", topic) == 0
    assert produce(broker, "admin", topic) == 0
    # alice may describe the topic (the client looks its leader up) but not delete from it.
    acls(broker, "--add", "--allow-principal", "User:alice", "--operation", "Describe",
         "--topic", topic)
    tp = TopicPartition(topic, 0, 1)
    res = admin(broker, "alice").delete_records([tp])[tp]
    with pytest.raises(KafkaException) as e:
        res.result(timeout=TIMEOUT)
    assert e.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    acls(broker, "--add", "--allow-principal", "User:alice", "--operation", "Delete",
         "--topic", topic)
    done = admin(broker, "alice").delete_records([tp])[tp].result(timeout=TIMEOUT)
    assert done.low_watermark == 1


def test_create_topics_and_configs(broker):
    prefix = unique("alice") + "-"
    name = prefix + "t"
    fs = admin(broker, "alice").create_topics([NewTopic(name, 1, 1)], operation_timeout=10)
    with pytest.raises(KafkaException) as e:
        fs[name].result(timeout=TIMEOUT)
    assert e.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    acls(broker, "--add", "--allow-principal", "User:alice", "--operation", "Create",
         "--operation", "Describe", "--resource-pattern-type", "prefixed", "--topic", prefix)
    admin(broker, "alice").create_topics([NewTopic(name, 1, 1)])[name].result(timeout=TIMEOUT)

    # Configs: DESCRIBE_CONFIGS on the topic; brokers need it on the cluster.
    res = ConfigResource(ConfigResource.Type.TOPIC, name)
    with pytest.raises(KafkaException) as e:
        admin(broker, "alice").describe_configs([res])[res].result(timeout=TIMEOUT)
    assert e.value.args[0].code() == KafkaError.TOPIC_AUTHORIZATION_FAILED
    acls(broker, "--add", "--allow-principal", "User:alice", "--operation", "DescribeConfigs",
         "--topic", name)
    configs = admin(broker, "alice").describe_configs([res])[res].result(timeout=TIMEOUT)
    assert "retention.ms" in configs
    node = ConfigResource(ConfigResource.Type.BROKER, "1")
    with pytest.raises(KafkaException) as e:
        admin(broker, "alice").describe_configs([node])[node].result(timeout=TIMEOUT)
    assert e.value.args[0].code() == KafkaError.CLUSTER_AUTHORIZATION_FAILED


def test_groups_listed_described_deleted_by_acl(broker):
    topic, mine, theirs = unique("gt"), unique("mine"), unique("theirs")
    create_topic(broker, topic)
    assert produce(broker, "admin", topic) == 0
    for g in (mine, theirs):
        assert consume_one(broker, "admin", topic, g)[1] is None
    acls(broker, "--add", "--allow-principal", "User:alice", "--operation", "Describe",
         "--group", mine)
    listed = admin(broker, "alice").list_consumer_groups().result(timeout=TIMEOUT)
    ids = {g.group_id for g in listed.valid}
    assert mine in ids and theirs not in ids, ids
    everything = admin(broker).list_consumer_groups().result(timeout=TIMEOUT)
    assert {mine, theirs} <= {g.group_id for g in everything.valid}

    described = admin(broker, "alice").describe_consumer_groups([mine, theirs])
    assert described[mine].result(timeout=TIMEOUT).group_id == mine
    with pytest.raises(KafkaException) as e:
        described[theirs].result(timeout=TIMEOUT)
    assert e.value.args[0].code() == KafkaError.GROUP_AUTHORIZATION_FAILED

    with pytest.raises(KafkaException) as e:
        admin(broker, "alice").delete_consumer_groups([mine])[mine].result(timeout=TIMEOUT)
    assert e.value.args[0].code() == KafkaError.GROUP_AUTHORIZATION_FAILED
    acls(broker, "--add", "--allow-principal", "User:alice", "--operation", "Delete",
         "--group", mine)
    admin(broker, "alice").delete_consumer_groups([mine])[mine].result(timeout=TIMEOUT)


def test_acl_apis_without_authorizer(tmp_path):
    """With authorization off, the ACL APIs answer SECURITY_DISABLED (Kafka without an
    authorizer) and everything else is allowed."""
    certs = make_certs(tmp_path / "certs")
    (certs / "plain-users.txt").write_text("".join(f"{u}:{p}\n" for u, p in USERS.items()))
    b = SecureBroker(tmp_path / "broker", certs,
                     [{"name": LISTENER, "protocol": "SASL_PLAINTEXT", "sasl_mechanisms": ["PLAIN"]}])
    try:
        b.start()
        out = acls(b, "--list", check=False)
        assert "SecurityDisabledException" in out.stdout + out.stderr, out.stdout + out.stderr
        topic = unique("open")
        admin(b, "bob").create_topics([NewTopic(topic, 1, 1)])[topic].result(timeout=TIMEOUT)
        assert produce(b, "bob", topic) == 0
    finally:
        b.stop()
