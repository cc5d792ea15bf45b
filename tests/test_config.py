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
