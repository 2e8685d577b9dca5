"""A TCP proxy in front of the real PostgreSQL, which a test can cut, freeze, reset and restore.

It is how a test takes the database away from a running service and gives it back, without
stopping the server that the rest of the suite shares. The faults it makes:
- cut(): every open connection is reset and new ones are refused (the server is down);
- reset(): every open connection is reset, new ones pass (a restart, a failover, an idle close);
- freeze(): nothing gets through, in either direction, on open or new connections, and nothing
  is closed (a blackhole: a dead network path or a hung server) until restore().
`ThreadedProxy` runs one on its own event loop, for tests that drive a real process.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator
from urllib.parse import parse_qs, urlsplit, urlunsplit


class DatabaseProxy:
    def __init__(self, database_url: str):
        self.target_url = database_url
        parts = urlsplit(database_url)
        socket_dir = parse_qs(parts.query).get("host", [None])[0]
        self.port = parts.port or 5432
        self.unix_path = f"{socket_dir}/.s.PGSQL.{self.port}" if socket_dir else None
        self.tcp_host = parts.hostname or "127.0.0.1"
        self.available = True
        self.url = ""
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._flowing = asyncio.Event()
        self._flowing.set()

    async def start(self) -> str:
        """Listen on 127.0.0.1 and return the DSN that goes through the proxy."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        listen_port = self._server.sockets[0].getsockname()[1]
        parts = urlsplit(self.target_url)
        user = parts.username or "postgres"
        auth = f"{user}:{parts.password}@" if parts.password else f"{user}@"
        self.url = urlunsplit(("postgresql", f"{auth}127.0.0.1:{listen_port}", parts.path, "", ""))
        return self.url

    def cut(self) -> None:
        """Drop every open connection and refuse new ones, as a database outage would."""
        self.available = False
        self.reset()

    def reset(self) -> None:
        """Reset every open connection; new ones are let through (unless cut or frozen)."""
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def freeze(self) -> None:
        """Let nothing through and close nothing: open connections and new ones hang."""
        self._flowing.clear()

    def restore(self) -> None:
        """Pass traffic again; what a freeze held back is delivered now."""
        self.available = True
        self._flowing.set()

    async def close(self) -> None:
        self.cut()
        self._flowing.set()  # lets the held pipes see their closed sockets and end
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.available:
            writer.transport.abort()
            return
        self._writers.add(writer)
        await self._flowing.wait()  # a frozen path: the client connected, but no server answers
        try:
            if self.unix_path:
                up_reader, up_writer = await asyncio.open_unix_connection(self.unix_path)
            else:
                up_reader, up_writer = await asyncio.open_connection(self.tcp_host, self.port)
        except OSError:
            self._writers.discard(writer)
            writer.transport.abort()
            return
        if writer.transport.is_closing():  # reset or cut while it waited
            up_writer.transport.abort()
            return
        self._writers.add(up_writer)
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self._flowing.wait()
                if writer.transport.is_closing():
                    break
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()


class ThreadedProxy:
    """A DatabaseProxy on an event loop of its own, so that the test's loop may block."""

    def __init__(self, database_url: str):
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.proxy: DatabaseProxy = self._call(self._create(database_url))
        self.url = self.proxy.url

    async def _create(self, database_url: str) -> DatabaseProxy:
        proxy = DatabaseProxy(database_url)
        await proxy.start()
        return proxy

    def _call(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout=10)

    def _do(self, action: str) -> None:
        async def run() -> None:
            getattr(self.proxy, action)()

        self._call(run())

    def cut(self) -> None:
        self._do("cut")

    def reset(self) -> None:
        self._do("reset")

    def freeze(self) -> None:
        self._do("freeze")

    def restore(self) -> None:
        self._do("restore")

    def close(self) -> None:
        self._call(self.proxy.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@contextlib.contextmanager
def threaded_proxy(database_url: str) -> Iterator[ThreadedProxy]:
    proxy = ThreadedProxy(database_url)
    try:
        yield proxy
    finally:
        proxy.close()
