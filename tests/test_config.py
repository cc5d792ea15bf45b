"""Configuration: every mistake names its key; secrets may come from the environment."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import env_name, load_config
from bot.errors import ConfigError

GOOD = """
[upload]
hosts = ["zg", "mychev"]
default_expiration = "3d"

[hosts.zg]
preset = "zg.is"
api_key = "zg-secret-key"

[hosts.mychev]
dialect = "chevereto"
endpoint = "https://example.org/api/1/upload"
api_key = "chev-secret-key"

[storage]
path = "data/rehost.db"
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "rehost.toml"
    path.write_text(text)
    return path


def test_a_good_file_loads(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, GOOD), environ={})
    zg, chev = config.ordered_hosts()
    assert (zg.dialect, zg.endpoint, zg.max_bytes) == ("imgbb", "https://zg.is/1/upload", 32 << 20)
    assert (chev.dialect, chev.endpoint) == ("chevereto", "https://example.org/api/1/upload")
    assert config.upload.default_expiration is not None
    assert config.upload.default_expiration.label() == "3d"
    assert config.storage.path == tmp_path / "data" / "rehost.db"
    assert "zg-secret-key" not in repr(config)


def test_the_example_file_is_valid(tmp_path: Path) -> None:
    example = Path(__file__).parent.parent / "config.example.toml"
    config = load_config(example, environ={})
    assert config.upload.hosts == ("zg", "mychev")


def test_environment_supplies_and_overrides_keys(tmp_path: Path) -> None:
    text = GOOD.replace('api_key = "zg-secret-key"\n', "")
    config = load_config(write(tmp_path, text), environ={"REHOST_HOST_ZG_API_KEY": "from-env"})
    assert config.hosts["zg"].api_key == "from-env"
    assert env_name("my-chev.2") == "REHOST_HOST_MY_CHEV_2_API_KEY"
    overridden = load_config(
        write(tmp_path, GOOD), environ={"REHOST_HOST_MYCHEV_API_KEY": "env-wins"}
    )
    assert overridden.hosts["mychev"].api_key == "env-wins"


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        (('api_key = "zg-secret-key"', 'api_kye = "x"'), "hosts.zg.api_kye", "unknown key"),
        (('api_key = "zg-secret-key"', ""), "hosts.zg.api_key", "REHOST_HOST_ZG_API_KEY"),
        (('preset = "zg.is"', 'preset = "zg.com"'), "hosts.zg.preset", "unknown preset"),
        (('dialect = "chevereto"', 'dialect = "flickr"'), "hosts.mychev.dialect", "imgbb or"),
        (('hosts = ["zg", "mychev"]', 'hosts = ["zg", "nope"]'), "upload.hosts", "[hosts.nope]"),
        (('"3d"', '"3 fortnights"'), "upload.default_expiration", "not a duration"),
        (("[storage]", "[storage]\nretries = 2"), "storage.retries", "unknown key"),
        (("[upload]", "[uplaod]"), "uplaod", "unknown key"),
        (('"https://example.org/api/1/upload"', '"example.org"'), "hosts.mychev.endpoint", "URL"),
        (("[upload]", "[upload]\nmax_concurrency = 0"), "upload.max_concurrency", "greater"),
        (("[upload]", "[upload]\nretry_attempts = true"), "upload.retry_attempts", "boolean"),
        (('hosts = ["zg", "mychev"]', "hosts = []"), "upload.hosts", "missing"),
        (('hosts = ["zg", "mychev"]', 'hosts = "zg"'), "upload.hosts", "a list"),
    ],
)
def test_mistakes_name_the_key(
    tmp_path: Path, change: tuple[str, str], key: str, words: str
) -> None:
    assert change[0] in GOOD
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, GOOD.replace(change[0], change[1], 1)), environ={})
    assert caught.value.key == key
    assert words in caught.value.user_message


def test_a_missing_or_broken_file_is_explained(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such configuration file"):
        load_config(tmp_path / "absent.toml", environ={})
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(write(tmp_path, "[upload\n"), environ={})


def test_the_command_reports_config_errors_in_one_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD.replace("api_key =", "apikey =", 1))
    image = tmp_path / "a.png"
    image.write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 32)
    done = subprocess.run(
        [sys.executable, "-m", "bot", "upload", str(image), "-c", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "hosts.zg.apikey: unknown key" in lines[0]
    assert "Traceback" not in done.stderr


URL = '"https://bot.example.org/tg/webhook"'
SECRET_ENV = "REHOST_TELEGRAM_WEBHOOK_SECRET"
WEBHOOK = (
    GOOD
    + """
[telegram]
token = "4242:telegram-token"
mode = "webhook"
webhook_listen = "0.0.0.0:8443"
webhook_url = "https://bot.example.org/tg/webhook"
webhook_secret = "hook_secret-0123"
"""
)


def test_a_telegram_webhook_is_configured(tmp_path: Path) -> None:
    config = load_config(write(tmp_path, WEBHOOK), environ={})
    telegram = config.telegram
    assert telegram is not None
    assert telegram.mode == "webhook"
    assert telegram.webhook_listen == ("0.0.0.0", 8443)
    assert telegram.webhook_url == "https://bot.example.org/tg/webhook"
    assert telegram.webhook_path == "/tg/webhook"
    assert telegram.webhook_secret == "hook_secret-0123"
    assert "hook_secret-0123" not in repr(config)
    assert "hook_secret-0123" in config.secrets()  # so that logging masks it


def test_telegram_polls_by_default_and_the_environment_holds_the_secret(tmp_path: Path) -> None:
    polling = GOOD + '\n[telegram]\ntoken = "4242:telegram-token"\n'
    telegram = load_config(write(tmp_path, polling), environ={}).telegram
    assert telegram is not None
    assert (telegram.mode, telegram.webhook_listen, telegram.webhook_secret) == (
        "polling",
        None,
        None,
    )
    without_secret = WEBHOOK.replace('webhook_secret = "hook_secret-0123"\n', "")
    environ = {"REHOST_TELEGRAM_WEBHOOK_SECRET": "from-the-environment"}
    telegram = load_config(write(tmp_path, without_secret), environ=environ).telegram
    assert telegram is not None and telegram.webhook_secret == "from-the-environment"
    telegram = load_config(write(tmp_path, WEBHOOK), environ=environ).telegram
    assert telegram is not None and telegram.webhook_secret == "from-the-environment"
    ipv6 = WEBHOOK.replace('"0.0.0.0:8443"', '"[::1]:8080"')
    telegram = load_config(write(tmp_path, ipv6), environ={}).telegram
    assert telegram is not None and telegram.webhook_listen == ("::1", 8080)


@pytest.mark.parametrize(
    ("change", "key", "words"),
    [
        (('mode = "webhook"', 'mode = "push"'), "telegram.mode", "polling or webhook"),
        (('webhook_listen = "0.0.0.0:8443"\n', ""), "telegram.webhook_listen", "missing"),
        (('"0.0.0.0:8443"', '"8443"'), "telegram.webhook_listen", "HOST:PORT"),
        (('"0.0.0.0:8443"', '"0.0.0.0:http"'), "telegram.webhook_listen", "HOST:PORT"),
        (('"0.0.0.0:8443"', '"0.0.0.0:0"'), "telegram.webhook_listen", "1-65535"),
        (('"0.0.0.0:8443"', '"0.0.0.0:65536"'), "telegram.webhook_listen", "1-65535"),
        (('"0.0.0.0:8443"', "8443"), "telegram.webhook_listen", "a string"),
        (("webhook_url = ", "webhook_uri = "), "telegram.webhook_uri", "unknown key"),
        ((f"webhook_url = {URL}\n", ""), "telegram.webhook_url", "missing"),
        ((URL, '"https://bot.example.org"'), "telegram.webhook_url", "path"),
        ((URL, '"ftp://bot.example.org/tg"'), "telegram.webhook_url", "http"),
        (('webhook_secret = "hook_secret-0123"\n', ""), "telegram.webhook_secret", SECRET_ENV),
        (('"hook_secret-0123"', '"hook secret!"'), "telegram.webhook_secret", "a letter, a digit"),
        (('"hook_secret-0123"', f'"{"x" * 257}"'), "telegram.webhook_secret", "1 to 256"),
        (('"hook_secret-0123"', '""'), "telegram.webhook_secret", "missing"),
    ],
)  # fmt: skip
def test_telegram_webhook_mistakes_name_the_key(
    tmp_path: Path, change: tuple[str, str], key: str, words: str
) -> None:
    assert change[0] in WEBHOOK
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, WEBHOOK.replace(change[0], change[1], 1)), environ={})
    assert caught.value.key == key
    assert words in caught.value.user_message
    assert "hook secret!" not in str(caught.value)


def test_a_bad_secret_in_the_environment_is_named_as_such(tmp_path: Path) -> None:
    environ = {"REHOST_TELEGRAM_WEBHOOK_SECRET": "not/allowed"}
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, WEBHOOK), environ=environ)
    assert caught.value.key == "REHOST_TELEGRAM_WEBHOOK_SECRET"
    assert "not/allowed" not in str(caught.value)


def test_postgresql_storage_from_the_file_or_the_environment(tmp_path: Path) -> None:
    in_file = GOOD.replace(
        'path = "data/rehost.db"', 'url = "postgresql://rehost:pw-in-file@db:5432/rehost"'
    )
    config = load_config(write(tmp_path, in_file), environ={})
    assert config.storage.target == "postgresql://rehost:pw-in-file@db:5432/rehost"
    assert config.storage.where == "postgresql://rehost:***@db:5432/rehost"
    assert "pw-in-file" in config.secrets() and "pw-in-file" not in repr(config)
    # The environment wins, so the password need not be in the file at all.
    environ = {"REHOST_STORAGE_URL": "postgresql://rehost:pw-in-env@other/rehost"}
    config = load_config(write(tmp_path, GOOD), environ=environ)
    assert config.storage.target == environ["REHOST_STORAGE_URL"]
    assert "pw-in-env" in config.secrets()


def test_a_storage_url_that_is_not_postgresql_names_where_it_came_from(tmp_path: Path) -> None:
    bad = GOOD.replace('path = "data/rehost.db"', 'url = "mysql://db/rehost"')
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, bad), environ={})
    assert caught.value.key == "storage.url" and "PostgreSQL URL" in str(caught.value)
    environ = {"REHOST_STORAGE_URL": "sqlite:///x.db"}
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, GOOD), environ=environ)
    assert caught.value.key == "REHOST_STORAGE_URL"


def test_the_environment_says_where_the_database_and_health_endpoint_are(
    tmp_path: Path,
) -> None:
    """What the container image sets: its database on the volume and /healthz on, whatever
    the mounted file says."""
    in_file = GOOD + '\n[observability]\nlisten = "127.0.0.1:9100"\n'
    config = load_config(write(tmp_path, in_file), environ={})
    assert config.storage.path == tmp_path / "data" / "rehost.db"
    assert config.observability.listen == ("127.0.0.1", 9100)
    environ = {
        "REHOST_STORAGE_PATH": "/data/rehost.db",
        "REHOST_OBSERVABILITY_LISTEN": "[::]:9464",
    }
    config = load_config(write(tmp_path, in_file), environ=environ)
    assert config.storage.path == Path("/data/rehost.db")
    assert config.observability.listen == ("::", 9464)
    # Off in the file, on from the environment; an empty variable leaves the file's say.
    environ = {"REHOST_OBSERVABILITY_LISTEN": "127.0.0.1:9464", "REHOST_STORAGE_PATH": ""}
    config = load_config(write(tmp_path, GOOD), environ=environ)
    assert config.observability.listen == ("127.0.0.1", 9464)
    assert config.storage.path == tmp_path / "data" / "rehost.db"
    assert load_config(write(tmp_path, GOOD), environ={}).observability.listen is None


def test_a_bad_listen_address_in_the_environment_is_named_as_such(tmp_path: Path) -> None:
    for value, words in (("9464", '"HOST:PORT"'), ("127.0.0.1:99999", "out of range")):
        with pytest.raises(ConfigError) as caught:
            load_config(write(tmp_path, GOOD), environ={"REHOST_OBSERVABILITY_LISTEN": value})
        assert caught.value.key == "REHOST_OBSERVABILITY_LISTEN"
        assert words in caught.value.user_message
