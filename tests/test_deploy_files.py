"""The deploy files say what the code does: every command the compose files run is one the
``rehost`` command accepts, the image installs what the README's install command installs,
keeps no secret and checks its health the way the bot answers, and the example
environment names the variables the configuration reads."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.cli import build_parser
from bot.config import load_config
from bot.healthcheck import healthz_url
from sandbox.hostemu import HostEmulator
from sandbox.telegram_api import TelegramEmulator
from tests.conftest import ROOT
from tests.telegram_harness import free_port, telegram_config
from tests.telegram_harness import telegram_world as populate_telegram

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
SECRET_WORDS = re.compile(r"TOKEN|KEY|SECRET|PASSWORD", re.I)


@dataclass(frozen=True)
class Instruction:
    stage: int  # 0: the first FROM's stage
    name: str  # upper case: RUN, COPY, ENV...
    arguments: str


def dockerfile() -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    lines = [
        line
        for line in (ROOT / "Dockerfile").read_text().splitlines()
        if not line.lstrip().startswith("#")
    ]
    instructions, stage = [], -1
    for logical in re.split(r"(?<!\\)\n", "\n".join(lines)):
        text = re.sub(r"\\\n\s*", " ", logical).strip()
        if not text:
            continue
        name, _, arguments = text.partition(" ")
        stage += name.upper() == "FROM"
        instructions.append(Instruction(stage, name.upper(), arguments.strip()))
    return instructions


def env_of_image() -> dict[str, str]:
    found: dict[str, str] = {}
    for instruction in dockerfile():
        if instruction.name == "ENV" and instruction.stage == last_stage():
            found.update(item.split("=", 1) for item in shlex.split(instruction.arguments))
    return found


def last_stage() -> int:
    return max(instruction.stage for instruction in dockerfile())


def pip_requirements(command: str) -> list[tuple[str, frozenset[str]]]:
    """What a ``python -m pip install|wheel ...`` command line installs: (project, extras);
    ``.`` (this checkout) is named by the project's name."""
    words = shlex.split(command)
    found = []
    for start in (i for i, word in enumerate(words[:-1]) if words[i : i + 2] == ["-m", "pip"]):
        if words[start + 2] not in ("install", "wheel"):
            continue
        for word in words[start + 3 :]:
            if word in ("&&", ";", "|"):
                break
            if word.startswith("-"):
                continue
            match = re.fullmatch(r"([\w.-]+)(?:\[([\w,]+)\])?", word)
            assert match is not None, f"not a requirement: {word}"
            name = PROJECT["name"] if match.group(1) == "." else match.group(1)
            extras = frozenset(filter(None, (match.group(2) or "").split(",")))
            found.append((name, extras))
    return found


def compose(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / name).read_text())
    return loaded


def commands(name: str) -> list[list[str]]:
    services = compose(name)["services"].values()
    return [service["command"] for service in services if "command" in service]


def test_compose_runs_the_bot_in_one_process_on_sqlite() -> None:
    services = compose("compose.yaml")["services"]
    assert list(services) == ["rehost"], "one process, no database server"
    bot = services["rehost"]
    args = build_parser().parse_args(bot["command"])
    assert (args.command, args.role) == ("run", "all")
    assert f"./rehost.toml:{args.config}:ro" in bot["volumes"]
    # The database is on a named volume at /data, where the image puts it.
    assert "rehost-data:/data" in bot["volumes"]
    assert "rehost-data" in compose("compose.yaml")["volumes"]
    assert Path(env_of_image()["REHOST_STORAGE_PATH"]).parent == Path("/data")
    assert "REHOST_STORAGE_URL" not in json.dumps(bot)
    assert bot["env_file"] == ".env", "tokens and keys come from the environment"


def test_every_postgresql_service_runs_a_command_rehost_accepts() -> None:
    found = commands("compose.postgres.yaml")
    assert {tuple(c[c.index("--role") + 1 :]) for c in found} == {
        ("discord",),
        ("telegram",),
        ("worker",),
    }
    parser = build_parser()
    for command in found:
        args = parser.parse_args(command)
        assert args.command == "run" and str(args.config) == "/config/rehost.toml"
    for name, service in compose("compose.postgres.yaml")["services"].items():
        if name != "postgres":
            assert service["environment"]["REHOST_STORAGE_URL"].startswith("postgresql://")


def test_no_compose_file_writes_a_secret_into_itself() -> None:
    """A secret in a compose file's environment is a ${VARIABLE} from .env, never a value."""
    for name in ("compose.yaml", "compose.postgres.yaml"):
        for service in compose(name)["services"].values():
            for variable, value in (service.get("environment") or {}).items():
                if SECRET_WORDS.search(variable) or "@" in str(value):
                    assert "${" in str(value), f"{name}: {variable} holds a value"


def test_the_image_installs_what_the_readme_says() -> None:
    """The build stage makes wheels of what the README's install command installs, and the
    final stage installs exactly that: the project with the same extras."""
    readme = (ROOT / "README.md").read_text()
    install_section = readme[readme.index("## Install") : readme.index("## Run the tests")]
    documented = {
        requirement
        for command in re.findall(r"python -m pip install [^`\n]+", install_section)
        for requirement in pip_requirements(command)
    }
    runs = [i for i in dockerfile() if i.name == "RUN"]
    built = [r for i in runs if i.stage == 0 for r in pip_requirements(i.arguments)]
    installed = [r for i in runs if i.stage == last_stage() for r in pip_requirements(i.arguments)]
    assert built == installed == [(PROJECT["name"], frozenset({"postgres"}))]
    assert installed[0] in documented, f"the README installs {documented}"
    extras = PROJECT["optional-dependencies"]
    assert all(extra in extras for _, wanted in installed for extra in wanted)


def test_the_image_keeps_no_secret_and_runs_unprivileged() -> None:
    instructions = dockerfile()
    for instruction in instructions:
        if instruction.name in ("ENV", "ARG", "LABEL"):
            assert not SECRET_WORDS.search(instruction.arguments), instruction
    final = [i for i in instructions if i.stage == last_stage()]
    names = [i.name for i in final]
    assert ("USER", "rehost") in [(i.name, i.arguments) for i in final]
    assert names.index("USER") < names.index("ENTRYPOINT"), "the bot does not run as root"
    assert ("VOLUME", "/data") in [(i.name, i.arguments) for i in final]
    # The wheels reach the final stage through a mount, not a COPY that a layer would keep.
    assert not any(i.name == "COPY" and "--from" in i.arguments for i in final)
    # Only what the build stage copies enters the build context: no .env, database,
    # virtualenv or git history.
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert patterns[0] == "*", "an allowlist"
    copied = {
        source.rstrip("/")
        for i in instructions
        if i.stage == 0 and i.name == "COPY"
        for source in i.arguments.split()[:-1]
    }
    assert {pattern[1:] for pattern in patterns if pattern.startswith("!")} == copied


def healthcheck_command() -> list[str]:
    """The HEALTHCHECK's exec-form command, with this test run's interpreter."""
    (check,) = [i for i in dockerfile() if i.name == "HEALTHCHECK"]
    command: list[str] = json.loads(check.arguments.split(" CMD ", 1)[1])
    assert command[0] == "python"
    timeout = re.search(r"--timeout=(\d+)s", check.arguments)
    assert timeout is not None and float(timeout.group(1)) > 5.0, "longer than the probe's own"
    return [sys.executable, *command[1:]]


def test_the_image_serves_healthz_where_its_healthcheck_asks() -> None:
    """The example configuration (which the compose steps copy), read with the image's
    environment: the database on the volume, /healthz served where the probe asks."""
    environment = env_of_image()
    config = load_config(ROOT / "config.example.toml", environ=environment)
    assert config.storage.path == Path("/data/rehost.db")
    assert config.observability.listen is not None
    host, port = config.observability.listen
    assert healthz_url(environment) == f"http://{host}:{port}/healthz"


def test_the_healthcheck_asks_a_wildcard_listen_address_through_loopback() -> None:
    assert healthz_url({}) == "http://127.0.0.1:9464/healthz"
    assert healthz_url({"REHOST_OBSERVABILITY_LISTEN": "0.0.0.0:9100"}) == (
        "http://127.0.0.1:9100/healthz"
    )
    assert healthz_url({"REHOST_OBSERVABILITY_LISTEN": "[::]:9100"}) == "http://[::1]:9100/healthz"
    assert healthz_url({"REHOST_OBSERVABILITY_LISTEN": "[fd00::7]:80"}) == (
        "http://[fd00::7]:80/healthz"
    )


async def test_the_healthcheck_follows_the_bot_beside_it(
    host_emu: HostEmulator, tmp_path: Path
) -> None:
    """The image's HEALTHCHECK command, run as Docker runs it (the image's environment, a
    proxy in it that must not be used) beside ``rehost run``, which has /healthz on only
    through REHOST_OBSERVABILITY_LISTEN: unhealthy before the bot listens, and while
    Telegram has not answered (with the bot's reason), healthy once it has, unhealthy
    again once the bot stopped."""
    listen = f"127.0.0.1:{free_port()}"
    environment = {**os.environ, "REHOST_OBSERVABILITY_LISTEN": listen}
    # An operator's proxy for the bot's own calls; a request to loopback must not take it.
    proxied = {
        **environment,
        "HTTP_PROXY": "http://127.0.0.1:9/",
        "http_proxy": "http://127.0.0.1:9/",
    }

    async def probe() -> tuple[int, str]:
        process = await asyncio.create_subprocess_exec(
            *healthcheck_command(), env=proxied, cwd=ROOT,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        )  # fmt: skip
        out, _ = await asyncio.wait_for(process.communicate(), 30)
        assert process.returncode is not None
        return process.returncode, out.decode().strip()

    async def listening() -> None:
        host, port = listen.rsplit(":", 1)
        async with asyncio.timeout(30):
            while True:
                assert bot.returncode is None, "rehost run stopped"
                try:
                    _, writer = await asyncio.open_connection(host, int(port))
                except OSError:
                    await asyncio.sleep(0.02)
                    continue
                writer.close()
                return

    assert await probe() == (1, f"http://{listen}/healthz: [Errno 111] Connection refused")
    async with TelegramEmulator() as tg:
        populate_telegram(tg)
        config = telegram_config(tmp_path, host_emu, tg)  # no [observability] in the file
        starting = tg.hold("getMe")  # the bot's first call: it cannot be connected before
        bot = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "run", "-c", str(config), cwd=ROOT, env=environment,
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        err = b""
        try:
            await listening()
            code, said = await probe()
            assert code == 1 and said.startswith("503 ") and "telegram: not connected" in said
            starting.set()
            async with asyncio.timeout(30):
                while (answer := await probe())[0] != 0:
                    assert answer[1].startswith("503 "), answer
            assert answer[1].startswith("200 ")
        finally:
            if bot.returncode is None:
                bot.send_signal(signal.SIGTERM)
            _, err = await asyncio.wait_for(bot.communicate(), 30)
            print(err.decode()[-3000:])  # shown when the test fails
    assert bot.returncode == 0
    assert (await probe())[0] == 1


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
    assert "REHOST_STORAGE_URL" in (ROOT / "compose.postgres.yaml").read_text()


def container_engine() -> str:
    """A container engine that answers, or a skip saying why there is none."""
    reasons = []
    for engine in ("docker", "podman"):
        if shutil.which(engine) is None:
            reasons.append(f"no {engine} command")
            continue
        info = subprocess.run([engine, "info"], capture_output=True, text=True, timeout=30)
        if info.returncode == 0:
            return engine
        reasons.append(f"`{engine} info` failed: {(info.stderr.strip() or '?').splitlines()[-1]}")
    pytest.skip("no container engine to build the image: " + "; ".join(reasons))


def test_the_image_builds_and_runs_rehost() -> None:
    """Where a container engine runs: build the image and run the command in it (needs the
    package index, as any build of the image does)."""
    engine = container_engine()
    tag = "rehost-test-image"
    subprocess.run([engine, "build", "-t", tag, str(ROOT)], check=True, timeout=1200)
    try:
        ran = subprocess.run(
            [engine, "run", "--rm", tag, "--version"], capture_output=True, text=True, timeout=120
        )
        assert ran.stdout.strip() == f"rehost {PROJECT['version']}", ran.stderr
        user = subprocess.run(
            [engine, "run", "--rm", "--entrypoint", "id", tag, "-u"],
            capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert user.stdout.strip() not in ("", "0"), "runs as root"
        inspected = subprocess.run(
            [engine, "image", "inspect", tag], capture_output=True, text=True, check=True
        )
        config = json.loads(inspected.stdout)[0]["Config"]
        assert "bot.healthcheck" in json.dumps(config.get("Healthcheck"))
        assert not any(SECRET_WORDS.search(item.split("=")[0]) for item in config["Env"])
    finally:
        subprocess.run([engine, "image", "rm", "-f", tag], capture_output=True)
