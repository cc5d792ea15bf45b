"""deploy/rehost.service: a ``Type=notify`` unit with a watchdog and hardening, whose
command lines are ones ``rehost`` accepts, and which systemd itself reads without a
complaint (when ``systemd-analyze`` is on the machine)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import pytest

from bot.cli import build_parser
from bot.config import load_config
from tests.conftest import ROOT

UNIT = ROOT / "deploy" / "rehost.service"


def unit_settings() -> dict[str, dict[str, list[str]]]:
    """``{section: {key: [values in order]}}``: systemd allows a key more than once."""
    sections: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    section = ""
    for line in UNIT.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        sections[section][key].append(value)
    return sections


def test_the_unit_is_a_hardened_notify_service_with_a_watchdog() -> None:
    service = unit_settings()["Service"]
    expected = {
        "Type": "notify",
        "NotifyAccess": "main",
        "WatchdogSec": "30",
        "Restart": "on-failure",
        "ExecReload": "/bin/kill -HUP $MAINPID",
        "DynamicUser": "yes",
        "StateDirectory": "rehost",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "NoNewPrivileges": "yes",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
        "CapabilityBoundingSet": "",
        "UMask": "0077",
        "EnvironmentFile": "-/etc/rehost/rehost.env",
    }
    for key, value in expected.items():
        assert service[key] == [value], key
    assert service["SystemCallFilter"][0] == "@system-service"
    assert unit_settings()["Install"]["WantedBy"] == ["multi-user.target"]


def run_args(command_line: str) -> tuple[str, list[str]]:
    program, *args = shlex.split(command_line)
    return program, args


def test_its_command_lines_are_ones_rehost_accepts() -> None:
    parser = build_parser()
    (start,) = unit_settings()["Service"]["ExecStart"]
    program, args = run_args(start)
    assert program == "/opt/rehost/bin/rehost"
    parsed = parser.parse_args(args)
    assert parsed.command == "run" and str(parsed.config) == "/etc/rehost/rehost.toml"
    assert parsed.role == "all"
    # The documented alternative: the whole configuration handed over as a credential.
    documented = re.findall(r"^#\s+ExecStart=(.*)$", UNIT.read_text(), re.M)
    assert len(documented) == 1
    program, args = run_args(documented[0])
    parsed = parser.parse_args(args)
    assert parsed.command == "run"
    assert str(parsed.config) == "${CREDENTIALS_DIRECTORY}/rehost.toml"
    assert "#   LoadCredential=rehost.toml:/etc/rehost/rehost.toml" in UNIT.read_text()


def test_the_database_is_in_the_state_directory(tmp_path: Path) -> None:
    service = unit_settings()["Service"]
    environ = dict(setting.split("=", 1) for setting in service["Environment"])
    config = tmp_path / "rehost.toml"
    config.write_text(
        '[upload]\nhosts = ["h"]\n[hosts.h]\npreset = "zg.is"\n[storage]\npath = "rehost.db"\n'
    )
    environ["REHOST_HOST_H_API_KEY"] = "from-rehost.env"
    storage = load_config(config, environ).storage
    state = Path("/var/lib") / service["StateDirectory"][0]
    assert storage.url is None and storage.path == state / "rehost.db"
    assert service["WorkingDirectory"] == [str(state)]


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_reads_the_unit_without_a_complaint() -> None:
    verified = subprocess.run(
        ["systemd-analyze", "verify", "--man=no", str(UNIT)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    # Lines naming the file are settings systemd could not read (an unknown key, a bad
    # value); the programs it names do not exist on a test machine, which is fine.
    complaints = [
        line for line in (verified.stdout + verified.stderr).splitlines()
        if line.startswith(f"{UNIT}:")
    ]  # fmt: skip
    assert complaints == []
    security = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", str(UNIT)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    level = re.search(r"Overall exposure level for rehost\.service: ([\d.]+)", security.stdout)
    assert level is not None, security.stdout + security.stderr
    assert float(level.group(1)) <= 2.0, security.stdout  # systemd calls up to 2.0 "OK"
