"""TCP links between cluster nodes that a test can cut and heal (tests/compat/python/cluster_lib.py).

A `ProxyHub` runs one asyncio event loop in a daemon thread and holds any number of `Link`s. A
link listens on a port of its own on 127.0.0.1 and forwards every connection to one target port;
the cluster harness puts links in front of each node's internal listener and Kafka listener for
each other node, so the controller traffic from node a to node b is the link `a->b` and a's
replica fetches from b the link `a->b kafka`, and nothing else.

A cut closes the link's open connections at once (both sides aborted) and then, for the
connections that come after it:

- `blackhole` (default): accepts them and reads and drops what they send, answering nothing,
  like a network that loses packets (the sender waits for its own timeout); they are closed
  when the link heals. At most `MAX_HELD` are held per link; older ones are aborted.
- `refuse`: stops listening, so a connect fails at once (connection refused), like a host that
  is down; the link listens again on the same port when it heals.

Healing lets new connections through again (existing ones were closed by the cut). Counters per
link: connections forwarded, connections that met a cut, bytes each way. No dependencies beyond
the standard library.
"""

import asyncio
import socket
import threading

MAX_HELD = 256
CONNECT_TIMEOUT_S = 2.0
CHUNK = 64 * 1024


class Link:
    """One direction of one node pair: 127.0.0.1:port -> 127.0.0.1:target (state lives on the
    hub's loop; use the hub's methods from other threads)."""

    def __init__(self, name, target):
        self.name = name
        self.target = target
        self.port = None
        self.server = None
        self.up = True
        self.mode = "blackhole"
        self.live = set()   # writers of forwarded connections (both ends)
        self.held = []      # writers of black-holed connections
        self.forwarded = 0
        self.cut_connections = 0
        self.bytes_to_target = 0
        self.bytes_from_target = 0

    def stats(self):
        return {"up": self.up, "mode": self.mode, "forwarded": self.forwarded,
                "cut_connections": self.cut_connections, "bytes_to_target": self.bytes_to_target,
                "bytes_from_target": self.bytes_from_target, "open": len(self.live) // 2,
                "held": len(self.held)}

    async def listen(self, avoid=()):
        """Listens on its port (a free one the first time, none of `avoid`)."""
        for _ in range(20):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind(("127.0.0.1", self.port or 0))
            if self.port is None and sock.getsockname()[1] in avoid:
                sock.close()  # a port reserved for something else (a node's own listener)
                continue
            break
        self.port = sock.getsockname()[1]
        self.server = await asyncio.start_server(self.accept, sock=sock, backlog=128)

    async def stop_listening(self):
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    async def accept(self, reader, writer):
        if not self.up:
            self.cut_connections += 1
            if self.mode == "refuse":
                writer.transport.abort()
                return
            await self.hold(reader, writer)
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.target), CONNECT_TIMEOUT_S)
        except (OSError, asyncio.TimeoutError):
            writer.transport.abort()  # the target is down: the client sees its connection reset
            return
        if not self.up:  # cut while connecting
            up_writer.transport.abort()
            writer.transport.abort()
            self.cut_connections += 1
            return
        self.forwarded += 1
        for w in (writer, up_writer):
            w.transport.get_extra_info("socket").setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.live.add(w)
        try:
            await asyncio.gather(self.pump(reader, up_writer, True), self.pump(up_reader, writer, False))
        finally:
            self.live.discard(writer)
            self.live.discard(up_writer)

    async def pump(self, reader, writer, to_target):
        try:
            while True:
                data = await reader.read(CHUNK)
                if not data or not self.up:
                    break
                writer.write(data)
                await writer.drain()
                if to_target:
                    self.bytes_to_target += len(data)
                else:
                    self.bytes_from_target += len(data)
        except (OSError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            writer.transport.abort()

    async def hold(self, reader, writer):
        """A black-holed connection: read and dropped until the link heals or the peer leaves."""
        self.held.append(writer)
        while len(self.held) > MAX_HELD:
            self.held.pop(0).transport.abort()
        try:
            while not self.up:
                if not await reader.read(CHUNK):
                    break
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            if writer in self.held:
                self.held.remove(writer)
            writer.transport.abort()

    async def cut(self, mode):
        assert mode in ("blackhole", "refuse"), mode
        self.up = False
        self.mode = mode
        if mode == "refuse":
            await self.stop_listening()
        for w in list(self.live):
            w.transport.abort()
        self.live.clear()

    async def heal(self):
        self.up = True
        for w in self.held:
            w.transport.abort()
        self.held.clear()
        if self.server is None:
            await self.listen()

    async def close(self):
        self.up = False
        await self.stop_listening()
        for w in list(self.live) + self.held:
            w.transport.abort()
        self.live.clear()
        self.held.clear()


class ProxyHub:
    """The links of one cluster, served by one event loop in a daemon thread."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.links = {}
        self.thread = threading.Thread(target=self.loop.run_forever, name="tcp-proxy", daemon=True)
        self.thread.start()

    def _run(self, coro, timeout=10):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def add(self, name, target, avoid=()):
        """A new link to 127.0.0.1:target, listening on a free port that is none of `avoid`;
        returns that port."""
        link = Link(name, target)
        self._run(link.listen(set(avoid)))
        self.links[name] = link
        return link.port

    def cut(self, name, mode="blackhole"):
        self._run(self.links[name].cut(mode))

    def heal(self, name):
        self._run(self.links[name].heal())

    def stats(self, name):
        async def read():
            return self.links[name].stats()
        return self._run(read())

    def close(self):
        if not self.loop.is_running():
            return

        async def close_all():
            for link in self.links.values():
                await link.close()
        try:
            self._run(close_all())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(5)
            if not self.thread.is_alive():
                self.loop.close()
