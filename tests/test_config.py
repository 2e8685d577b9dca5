"""Configuration from the environment, and start-up failing at once with one clear line."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from service.config import Config, ConfigError

ROOT = Path(__file__).resolve().parent.parent
BASE = {
    "DATABASE_URL": "postgresql://u:p@db:5432/app",
    "ZOOM_WEBHOOK_SECRET": "secret-a, secret-b",
    "INTERNAL_API_TOKENS": "token-1,token-2,",
}
ZOOM_API = {
    "ZOOM_ACCOUNT_ID": "acct",
    "ZOOM_CLIENT_ID": "client",
    "ZOOM_CLIENT_SECRET": "client-secret",
    "ZOOM_HOST_USER": "coach-host@example.com",
}


def start_service(env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("ZOOM_", "INTERNAL_"))}
    clean.pop("DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "service"],
        env={**clean, **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_defaults_and_lists_are_read():
    config = Config.from_env(BASE)
    assert config.webhook_secrets == ("secret-a", "secret-b")
    assert config.internal_api_tokens == ("token-1", "token-2")
    assert (config.host, config.port, config.webhook_tolerance_seconds) == ("0.0.0.0", 8080, 7200)
    assert config.zoom_api_url == "https://api.zoom.us/v2"
    assert config.zoom_oauth_url == "https://zoom.us/oauth/token"
    assert config.zoom_api is None
    assert set(config.missing_zoom_api_variables) == set(ZOOM_API)


def test_processes_and_pool_settings_are_read_with_their_defaults():
    defaults = Config.from_env(BASE)
    assert (defaults.web_concurrency, defaults.db_pool_max_size) == (1, 10)
    assert defaults.db_statement_cache_size == 100
    config = Config.from_env(
        {**BASE, "WEB_CONCURRENCY": "2", "DB_POOL_MAX_SIZE": "4", "DB_STATEMENT_CACHE_SIZE": "0"}
    )
    assert (config.web_concurrency, config.db_pool_max_size) == (2, 4)
    assert config.db_statement_cache_size == 0


def test_zoom_api_credentials_are_read_when_all_are_set():
    config = Config.from_env({**BASE, **ZOOM_API, "ZOOM_API_URL": "http://127.0.0.1:9/v2/"})
    assert config.zoom_api.host_user == "coach-host@example.com"
    assert config.zoom_api_url == "http://127.0.0.1:9/v2"
    assert config.missing_zoom_api_variables == ()


def test_secrets_are_not_in_the_repr():
    text = repr(Config.from_env({**BASE, **ZOOM_API}))
    for secret in ("secret-a", "token-1", "client-secret", "u:p@"):
        assert secret not in text


@pytest.mark.parametrize("name", ["DATABASE_URL", "ZOOM_WEBHOOK_SECRET", "INTERNAL_API_TOKENS"])
@pytest.mark.parametrize("value", [None, "", " , "])
def test_missing_or_empty_required_variable_is_named(name, value):
    env = dict(BASE)
    if value is None:
        del env[name]
    else:
        env[name] = value
    with pytest.raises(ConfigError, match=name):
        Config.from_env(env)


@pytest.mark.parametrize("legacy", ["ZOOM_VERIFICATION_TOKEN", "ZOOM_WEBHOOK_SECRET_TOKEN"])
def test_legacy_secret_name_is_not_read_and_the_error_says_rename(legacy):
    env = {k: v for k, v in BASE.items() if k != "ZOOM_WEBHOOK_SECRET"}
    with pytest.raises(ConfigError, match=f"{legacy}.*rename it to ZOOM_WEBHOOK_SECRET"):
        Config.from_env({**env, legacy: "old-token"})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("PORT", "http"),
        ("PORT", "70000"),
        ("WEBHOOK_TOLERANCE_SECONDS", "0"),
        ("ZOOM_API_URL", "x"),
        ("WEB_CONCURRENCY", "0"),
        ("WEB_CONCURRENCY", "two"),
        ("DB_POOL_MAX_SIZE", "1"),
        ("DB_STATEMENT_CACHE_SIZE", "-1"),
    ],
)
def test_malformed_setting_is_named(name, value):
    with pytest.raises(ConfigError, match=name):
        Config.from_env({**BASE, name: value})


def test_startup_without_secret_exits_nonzero_with_one_line_naming_it():
    result = start_service({k: v for k, v in BASE.items() if k != "ZOOM_WEBHOOK_SECRET"})
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "ZOOM_WEBHOOK_SECRET" in lines[0]
    assert "Traceback" not in result.stderr


def test_startup_with_only_the_legacy_name_tells_to_rename():
    env = {k: v for k, v in BASE.items() if k != "ZOOM_WEBHOOK_SECRET"}
    result = start_service({**env, "ZOOM_VERIFICATION_TOKEN": "old"})
    assert result.returncode != 0
    assert "rename it to ZOOM_WEBHOOK_SECRET" in result.stderr
    assert "Traceback" not in result.stderr


def test_startup_without_database_url_names_it():
    result = start_service({k: v for k, v in BASE.items() if k != "DATABASE_URL"})
    assert result.returncode != 0
    assert "DATABASE_URL" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
