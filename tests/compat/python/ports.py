"""Listening ports for the brokers, controllers and proxies a test starts on loopback.

A port the kernel hands out for `bind(0)` lies in its ephemeral range, the same range it draws
from for the source port of every outgoing connection. Between the moment a test picks such a
port and the moment the broker it starts binds it, any client connection of the test (or of
another process) may take it as its source port, and the broker then exits with
"address in use". Ports are therefore picked below that range, at random, never twice in one
test process, and only when nothing listens on them.
"""
import random
import socket

_given = set()


def _ephemeral_start():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port():
    """A loopback port nothing listens on and no outgoing connection will be given."""
    high = min(_ephemeral_start(), 32768)
    low = max(1024, high - 12000)
    for _ in range(2000):
        port = random.randrange(low, high)
        if port in _given:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _given.add(port)
        return port
    raise RuntimeError(f"no free port in {low}..{high}")
