"""Apply pending yoyo migrations to DATABASE_URL (`make migrate`, `python -m service migrate`)."""

from __future__ import annotations

from yoyo import get_backend, read_migrations

from service.db import MIGRATIONS_DIR


def yoyo_url(database_url: str) -> str:
    """yoyo needs a DB-API driver named in the scheme; we ship psycopg 3."""
    _scheme, sep, rest = database_url.partition("://")
    return f"postgresql+psycopg://{rest}" if sep else database_url


def apply_migrations(database_url: str) -> list[str]:
    """Apply every pending migration under yoyo's lock; return the ids applied."""
    backend = get_backend(yoyo_url(database_url))
    try:
        migrations = read_migrations(str(MIGRATIONS_DIR))
        with backend.lock():
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
        return [m.id for m in pending]
    finally:
        backend.connection.close()
