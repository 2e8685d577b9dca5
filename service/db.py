"""The asyncpg pool (as a cleanup context) and the named SQL queries loaded from sql/*.sql."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import make_dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias, cast

import asyncpg
import orjson
from aiohttp import web

from service.config import Config
from service.keys import CONFIG, POOL

if TYPE_CHECKING:
    from asyncpg.pool import PoolConnectionProxy

ROOT = Path(__file__).resolve().parent.parent
SQL_DIR = ROOT / "sql"
MIGRATIONS_DIR = ROOT / "migrations"
QUERY_HEADER = re.compile(r"^--\s*name:\s*(\w+)\s*$", re.MULTILINE)


# A connection of its own or one lent by the pool (`async with pool.acquire()`): the query
# functions take either.
Connection: TypeAlias = "asyncpg.Connection[asyncpg.Record] | PoolConnectionProxy[asyncpg.Record]"


class Queries:
    """Named SQL statements with attribute access; built by load_queries()."""

    if TYPE_CHECKING:
        # The names come from sql/*.sql at start-up; a wrong one fails on first use in tests.
        def __getattr__(self, name: str) -> str: ...


def load_queries(directory: Path = SQL_DIR) -> Queries:
    """Read every `-- name: x` statement in directory/*.sql; fail fast on a duplicate or empty one.

    Only the files directly in directory: sql/functions/ holds the database functions the
    migrations install (whole CREATE FUNCTION statements), which are not queries to load.
    """
    found: dict[str, str] = {}
    for path in sorted(directory.glob("*.sql")):
        parts = QUERY_HEADER.split(path.read_text(encoding="utf-8"))
        for name, text in zip(parts[1::2], parts[2::2], strict=True):
            if name in found:
                raise ValueError(f"query {name!r} is defined twice (again in {path.name})")
            code = [
                ln for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("--")
            ]
            if not code:
                raise ValueError(f"query {name!r} in {path.name} is empty")
            found[name] = text.strip()
    # A frozen dataclass: a typo such as q.insert_sesion_log is an AttributeError at once.
    cls = make_dataclass("Queries", list(found), frozen=True, slots=True, bases=(Queries,))
    return cast(Queries, cls(**found))


def migration_ids(directory: Path = MIGRATIONS_DIR) -> frozenset[str]:
    """Return the ids yoyo gives the migrations on disk (file names without .sql)."""
    return frozenset(
        p.name.removesuffix(".sql")
        for p in directory.glob("*.sql")
        if not p.name.endswith(".rollback.sql")
    )


def _encode_jsonb(value: Any) -> str:
    # Raw webhook bodies arrive as text already; re-encoding them would be wasted work.
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


async def _init_connection(conn: asyncpg.Connection[asyncpg.Record]) -> None:
    for type_name in ("json", "jsonb"):
        await conn.set_type_codec(
            type_name, encoder=_encode_jsonb, decoder=orjson.loads, schema="pg_catalog"
        )


async def create_pool(config: Config) -> asyncpg.Pool[asyncpg.Record]:
    """Create the pool without connecting: the service starts, and heals, while the DB is down."""
    return await asyncpg.create_pool(
        config.database_url,
        min_size=config.db_pool_min_size,
        max_size=config.db_pool_max_size,
        timeout=config.db_connect_timeout_seconds,
        init=_init_connection,
        command_timeout=30,
        statement_cache_size=config.db_statement_cache_size,
    )


async def pool_ctx(app: web.Application) -> AsyncIterator[None]:
    app[POOL] = await create_pool(app[CONFIG])
    yield
    await app[POOL].close()


async def pending_migrations(conn: Connection, on_disk: frozenset[str]) -> set[str]:
    """Return the migrations on disk that yoyo has not applied to this database."""
    try:
        rows = await conn.fetch("SELECT migration_id FROM _yoyo_migration")
    except asyncpg.UndefinedTableError:
        return set(on_disk)
    return set(on_disk) - {r["migration_id"] for r in rows}
