"""Shared pytest fixtures for the Python client suites (BOOTSTRAP = broker under test)."""
import os
import random
import string
import time

import pytest


TIERED_SKIP_REASON = (
    "TARGET=kafka: the reference Apache Kafka runs without a remote storage manager "
    "(remote.log.storage.system.enable=false), so it has no tiered topics"
)


def pytest_collection_modifyitems(config, items):
    """Tests marked `tiered` need KIP-405 tiering, which only chronik provides here."""
    if os.environ.get("TARGET") != "kafka":
        return
    for item in items:
        if item.get_closest_marker("tiered"):
            item.add_marker(pytest.mark.skip(reason=TIERED_SKIP_REASON))


def _bootstrap():
    value = os.environ.get("BOOTSTRAP")
    if not value:
        raise pytest.UsageError("set BOOTSTRAP=host:port of the broker under test")
    return value


@pytest.fixture(scope="session")
def bootstrap():
    return _bootstrap()


_RUN = f"{int(time.time())}-{''.join(random.choices(string.ascii_lowercase, k=5))}"


@pytest.fixture
def topic_name(request):
    """Returns a function making topic names unique to this run and test."""
    counter = iter(range(1000))

    def make(label=""):
        base = request.node.name.replace("[", "-").replace("]", "").replace("_", "-")
        return f"compat-{base}{'-' + label if label else ''}-{_RUN}-{next(counter)}"[:200]

    return make


def wait_until(predicate, timeout=20.0, interval=0.2, what="condition"):
    """Polls predicate() until it returns a truthy value; bounded in time."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def make_records(n, seed, key_prefix=b"k"):
    """Deterministic records with binary keys/values (all byte values, empty, large)."""
    rng = random.Random(seed)
    records = []
    for i in range(n):
        kind = i % 6
        if kind == 0:
            value = bytes(range(256))
        elif kind == 1:
            value = b""
        elif kind == 2:
            value = rng.randbytes(rng.randint(1, 64))
        elif kind == 3:
            value = rng.randbytes(20_000)
        elif kind == 4:
            value = ("text ✓ %d" % i).encode()
        else:
            value = b"\x00" * 100 + bytes([i % 256])
        key = key_prefix + b"-" + str(i).encode() + b"-" + rng.randbytes(4)
        headers = [("idx", str(i).encode()), ("bin", bytes([0, 255, i % 256]))]
        if i % 3 == 0:
            headers.append(("dup", b"1"))
            headers.append(("dup", b"2"))
        records.append((key, value, headers))
    return records
