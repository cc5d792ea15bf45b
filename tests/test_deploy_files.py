"""The deploy files say what the code does: every command compose.yaml runs is one the
``rehost`` command accepts, the image installs an extra the project defines, and the
example environment names the variables the configuration reads."""

from __future__ import annotations

import json
import re
import tomllib

from bot.cli import build_parser
from tests.conftest import ROOT


def compose_commands() -> list[list[str]]:
    text = (ROOT / "compose.yaml").read_text()
    return [json.loads(found) for found in re.findall(r"^\s+command: (\[.*\])$", text, re.M)]


def test_every_compose_service_runs_a_command_rehost_accepts() -> None:
    commands = compose_commands()
    assert {tuple(c[c.index("--role") + 1 :]) for c in commands} == {
        ("discord",),
        ("telegram",),
        ("worker",),
    }
    parser = build_parser()
    for command in commands:
        args = parser.parse_args(command)
        assert args.command == "run" and str(args.config) == "/config/rehost.toml"


def test_the_image_installs_an_extra_the_project_defines() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    installed = set(re.findall(r"\[(\w+)\]'", dockerfile))
    assert installed == {"postgres"} and "postgres" in extras
    assert "USER rehost" in dockerfile, "the bot does not run as root"


def test_the_example_environment_names_what_the_bot_reads() -> None:
    names = {
        line.split("=", 1)[0]
        for line in (ROOT / "deploy" / "rehost.env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert {
        "REHOST_DISCORD_TOKEN",
        "REHOST_TELEGRAM_TOKEN",
        "REHOST_TELEGRAM_WEBHOOK_SECRET",
        "POSTGRES_PASSWORD",
    } <= names
    assert "REHOST_STORAGE_URL" in (ROOT / "compose.yaml").read_text()
