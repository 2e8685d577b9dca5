"""A TCP proxy in front of the real PostgreSQL, which a test can cut and restore.

It is how a test takes the database away from a running service and gives it back, without
stopping the server that the rest of the suite shares.
"""

from __future__ import annotations

import asyncio
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
        self._server: asyncio.AbstractServer | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> str:
        """Listen on 127.0.0.1 and return the DSN that goes through the proxy."""
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        listen_port = self._server.sockets[0].getsockname()[1]
        parts = urlsplit(self.target_url)
        user = parts.username or "postgres"
        auth = f"{user}:{parts.password}@" if parts.password else f"{user}@"
        return urlunsplit(("postgresql", f"{auth}127.0.0.1:{listen_port}", parts.path, "", ""))

    def cut(self) -> None:
        """Drop every open connection and refuse new ones, as a database outage would."""
        self.available = False
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    def restore(self) -> None:
        self.available = True

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if not self.available:
            writer.transport.abort()
            return
        if self.unix_path:
            up_reader, up_writer = await asyncio.open_unix_connection(self.unix_path)
        else:
            up_reader, up_writer = await asyncio.open_connection(self.tcp_host, self.port)
        self._writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()
