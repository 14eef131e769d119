"""A fault-injecting HTTP/1.1 proxy between the broker and an S3 server, for the reliability suite.

It forwards each request of a client connection to the upstream server over a connection of its
own, one request at a time (S3 clients do not pipeline), and can be switched at any moment to:

  pass     forward everything
  hang     accept connections and read requests, but answer nothing and forward nothing until
           the mode changes (what a SIGSTOPped server looks like from the network: the kernel
           still accepts); responses already on their way are held back too
  500      answer every request with 500 InternalError (the request is read, never forwarded)
  503      answer every request with 503 SlowDown
  latency  forward every request after a pause of `latency_s` seconds

Runs on its own asyncio event loop in a background thread; `mode` may be set from any thread.
Only loopback addresses. Counts requests (by mode and method) and injected faults per mode.

The reliability suite runs it as a process of its own (`python s3_fault_proxy.py UPSTREAM_PORT`),
so that its work never competes with a measuring client for the interpreter lock: it prints
`listening PORT CONTROL_PORT`, and a line `mode NAME` or `stats` sent to the control port is
answered with `ok` or a JSON line (see `ProxyProcess`).
"""
import asyncio
import json
import subprocess
import sys
import threading
import time
from collections import Counter

MODES = ("pass", "hang", "500", "503", "latency")
MAX_HEAD = 64 * 1024
_ERRORS = {
    "500": (500, "Internal Server Error", "InternalError", "fault injected by the test proxy"),
    "503": (503, "Slow Down", "SlowDown", "fault injected by the test proxy: reduce the request rate"),
}


class _Closed(Exception):
    pass


def _parse_head(head):
    lines = head.decode("latin-1").split("\r\n")
    first = lines[0]
    headers = []
    for line in lines[1:]:
        if not line:
            continue
        name, _, value = line.partition(":")
        headers.append((name.strip(), value.strip()))
    return first, headers


def _header(headers, name):
    name = name.lower()
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


async def _read_head(reader):
    try:
        return await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise _Closed("connection closed inside a message head") from exc
        raise _Closed("connection closed") from exc
    except asyncio.LimitOverrunError as exc:
        raise _Closed("message head too large") from exc


async def _read_chunked(reader):
    """The raw bytes of a chunked body, framing included."""
    out = bytearray()
    while True:
        line = await reader.readuntil(b"\r\n")
        out += line
        size = int(line.split(b";")[0].strip(), 16)
        if size == 0:
            while True:  # trailers, then the empty line
                trailer = await reader.readuntil(b"\r\n")
                out += trailer
                if trailer == b"\r\n":
                    return bytes(out)
        out += await reader.readexactly(size + 2)


async def _read_body(reader, headers, *, response_to=None, status=None):
    if response_to == "HEAD" or (status is not None and (100 <= status < 200 or status in (204, 304))):
        return b"", False
    te = _header(headers, "transfer-encoding")
    if te and "chunked" in te.lower():
        return await _read_chunked(reader), False
    length = _header(headers, "content-length")
    if length is not None:
        return await reader.readexactly(int(length)), False
    if response_to is not None:  # a response without a length ends with the connection
        return await reader.read(), True
    return b"", False


class FaultProxy:
    def __init__(self, upstream_host, upstream_port, latency_s=2.0):
        self.upstream = (upstream_host, upstream_port)
        self.latency_s = latency_s
        self.mode = "pass"
        self.port = None
        self.requests = Counter()  # mode -> requests that arrived while it was active
        self.injected = Counter()  # mode -> requests answered with a fault or delayed or held
        self.methods = Counter()  # "mode method" -> requests
        self._loop = None
        self._server = None
        self._thread = None
        self._lock = threading.Lock()

    # --- control (any thread) ---------------------------------------------------------------
    def start(self):
        ready = threading.Event()

        def run():
            self._loop = asyncio.new_event_loop()
            asyncio.set_event_loop(self._loop)
            self._server = self._loop.run_until_complete(
                asyncio.start_server(self._client, "127.0.0.1", 0, limit=MAX_HEAD))
            self.port = self._server.sockets[0].getsockname()[1]
            ready.set()
            self._loop.run_forever()

        self._thread = threading.Thread(target=run, name="s3-fault-proxy", daemon=True)
        self._thread.start()
        if not ready.wait(10):
            raise RuntimeError("fault proxy did not start")
        return self

    def set_mode(self, mode):
        assert mode in MODES, mode
        self.mode = mode

    def stop(self):
        if self._loop is None:
            return
        self.mode = "pass"

        async def shutdown():
            self._server.close()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()

        fut = asyncio.run_coroutine_threadsafe(shutdown(), self._loop)
        try:
            fut.result(5)
        except Exception:  # noqa: BLE001 - best effort at teardown
            pass
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def _count(self, counter, mode):
        with self._lock:
            counter[mode] += 1

    # --- the proxy ---------------------------------------------------------------------------
    async def _hold_while_hung(self):
        held = False
        while self.mode == "hang":
            held = True
            await asyncio.sleep(0.05)
        return held

    async def _client(self, creader, cwriter):
        upstream = None
        try:
            while True:
                head = await _read_head(creader)
                first, headers = _parse_head(head)
                method = first.split(" ", 1)[0].upper()
                if (_header(headers, "expect") or "").lower() == "100-continue":
                    cwriter.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                    await cwriter.drain()
                    head = b"".join(
                        f"{k}: {v}\r\n".encode("latin-1") for k, v in headers if k.lower() != "expect")
                    head = first.encode("latin-1") + b"\r\n" + head + b"\r\n"
                body, _ = await _read_body(creader, headers)
                mode = self.mode
                self._count(self.requests, mode)
                self._count(self.methods, f"{mode} {method}")
                if mode == "hang":
                    self._count(self.injected, "hang")
                    await self._hold_while_hung()
                    mode = self.mode
                if mode in _ERRORS:
                    self._count(self.injected, mode)
                    status, reason, code, message = _ERRORS[mode]
                    xml = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
                           f"<Message>{message}</Message><RequestId>chronik-test-{time.monotonic_ns()}"
                           f"</RequestId></Error>").encode()
                    cwriter.write(
                        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/xml\r\n"
                        f"content-length: {len(xml)}\r\nconnection: keep-alive\r\n\r\n".encode() + xml)
                    await cwriter.drain()
                    continue
                if mode == "latency":
                    self._count(self.injected, "latency")
                    await asyncio.sleep(self.latency_s)
                if upstream is None:
                    upstream = await asyncio.open_connection(*self.upstream, limit=MAX_HEAD)
                ureader, uwriter = upstream
                uwriter.write(head + body)
                await uwriter.drain()
                while True:  # skip interim 1xx responses
                    rhead = await _read_head(ureader)
                    rfirst, rheaders = _parse_head(rhead)
                    status = int(rfirst.split(" ")[1])
                    if status >= 200:
                        break
                rbody, closes = await _read_body(ureader, rheaders, response_to=method, status=status)
                if await self._hold_while_hung():  # a server stopped mid-answer answers later
                    self._count(self.injected, "hang")
                cwriter.write(rhead + rbody)
                await cwriter.drain()
                conn = (_header(rheaders, "connection") or "").lower()
                if closes or conn == "close":
                    uwriter.close()
                    upstream = None
                    if closes:
                        break
        except (_Closed, ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            pass
        except asyncio.CancelledError:
            pass
        finally:
            if upstream is not None:
                upstream[1].close()
            cwriter.close()


# --- as a process of its own ---------------------------------------------------------------------
async def _control(proxy, reader, writer):
    try:
        while True:
            line = (await reader.readline()).decode().strip()
            if not line:
                break
            if line.startswith("mode "):
                proxy.set_mode(line[5:])
                writer.write(b"ok\n")
            elif line == "stats":
                with proxy._lock:
                    stats = {"requests": dict(proxy.requests), "injected": dict(proxy.injected),
                             "methods": dict(proxy.methods)}
                writer.write(json.dumps(stats).encode() + b"\n")
            else:
                writer.write(b"error unknown command\n")
            await writer.drain()
    except (ConnectionError, AssertionError):
        pass
    finally:
        writer.close()


def main():
    upstream_port = int(sys.argv[1])
    latency_s = float(sys.argv[2]) if len(sys.argv) > 2 else 2.0
    proxy = FaultProxy("127.0.0.1", upstream_port, latency_s).start()
    ready = threading.Event()
    holder = {}

    async def serve_control():
        server = await asyncio.start_server(lambda r, w: _control(proxy, r, w), "127.0.0.1", 0)
        holder["port"] = server.sockets[0].getsockname()[1]
        ready.set()

    asyncio.run_coroutine_threadsafe(serve_control(), proxy._loop)
    ready.wait(10)
    print(f"listening {proxy.port} {holder['port']}", flush=True)
    sys.stdin.read()  # runs until the parent closes our stdin (or dies)


class ProxyProcess:
    """Starts `s3_fault_proxy.py` as a child process and drives it over its control port."""

    def __init__(self, upstream_port, latency_s=2.0):
        self.proc = subprocess.Popen([sys.executable, __file__, str(upstream_port), str(latency_s)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        words = self.proc.stdout.readline().split()
        if len(words) != 3 or words[0] != "listening":
            self.proc.kill()
            raise RuntimeError(f"fault proxy did not start: {words}")
        self.port, self.control_port = int(words[1]), int(words[2])
        import socket
        self._sock = socket.create_connection(("127.0.0.1", self.control_port), timeout=10)
        self._file = self._sock.makefile("rw")

    @property
    def endpoint(self):
        return f"http://127.0.0.1:{self.port}"

    def _ask(self, line):
        self._file.write(line + "\n")
        self._file.flush()
        return self._file.readline().strip()

    def set_mode(self, mode):
        answer = self._ask(f"mode {mode}")
        if answer != "ok":
            raise RuntimeError(f"fault proxy: {answer}")

    def stats(self):
        return json.loads(self._ask("stats"))

    def stop(self):
        try:
            self._sock.close()
            self.proc.stdin.close()
            self.proc.wait(10)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait(5)


if __name__ == "__main__":
    main()
