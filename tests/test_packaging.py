"""Packaging: ``rehost --version``, and the sdist and wheel that ``python -m build`` makes.

The wheel is built from the sdist (as ``python -m build`` does), so the sdist is shown to
hold what the wheel needs. The wheel carries what the ``rehost`` command runs and nothing
else, and installed alone in a fresh virtualenv it runs the README's offline walkthrough,
importing nothing from this checkout.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tarfile
import tomllib
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bot import version as version_module
from sandbox import samples
from tests.conftest import ROOT
from tests.test_deploy_files import dockerfile
from tests.test_readme_walkthrough import readme_config

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
VERSION: str = PROJECT["version"]
# What a checkout holds beside the sources, which a build must not see.
NOT_SOURCES = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", "*.egg-info", "build", "dist", ".*_cache", ".hypothesis",
    "*.db", "*.db-wal", "*.db-shm", ".env", "*.mo",
)  # fmt: skip


def test_version_prints_the_version_pyproject_sets() -> None:
    ran = subprocess.run(
        [sys.executable, "-m", "bot", "--version"], capture_output=True, text=True, cwd=ROOT
    )
    assert (ran.returncode, ran.stdout, ran.stderr) == (0, f"rehost {VERSION}\n", "")


def test_without_metadata_the_version_comes_from_the_checkout(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Run from a checkout that was never installed, the version is pyproject.toml's; with
    neither, a version that says it is unknown."""
    import importlib.metadata

    def not_installed(name: str) -> str:
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", not_installed)
    assert version_module.version() == VERSION
    assert version_module.checkout_version(tmp_path) is None
    (tmp_path / "pyproject.toml").write_text('[project]\nname = "other"\nversion = "9.9"\n')
    assert version_module.checkout_version(tmp_path) is None
    monkeypatch.setattr(version_module, "checkout_version", lambda root: None)
    assert version_module.version() == "0+unknown"


@dataclass(frozen=True)
class Dist:
    source: Path  # the copy of the checkout it was built from
    wheel: Path
    sdist: Path


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Dist:
    """``python -m build`` (sdist, then the wheel from the sdist) on a copy of the checkout,
    so the build writes nothing into it. Offline: the build tools are the test extra's."""
    where = tmp_path_factory.mktemp("dist")
    source = where / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCES)
    built = subprocess.run(
        [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(where / "out")],
        cwd=source, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    (wheel,) = (where / "out").glob("*.whl")
    (sdist,) = (where / "out").glob("*.tar.gz")
    return Dist(source, wheel, sdist)


def sandbox_modules_emulate_host_imports() -> set[str]:
    """The sandbox modules that ``rehost emulate-host`` loads, as files of the wheel."""
    ran = subprocess.run(
        [sys.executable, "-c",
         "import sys, bot.cli, sandbox.hostemu\n"
         "print('\\n'.join(m for m in sys.modules if m.split('.')[0] == 'sandbox'))"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return {
        name.replace(".", "/") + ("/__init__.py" if name == "sandbox" else ".py")
        for name in ran.stdout.split()
    }


def test_the_wheel_carries_what_rehost_runs_and_nothing_else(dist: Dist) -> None:
    names = set(zipfile.ZipFile(dist.wheel).namelist())
    info = f"rehost_bot-{VERSION}.dist-info"
    assert {name.split("/")[0] for name in names} == {"bot", "adapters", "sandbox", info}
    for package in ("bot", "adapters"):
        sources = {
            path.relative_to(dist.source).as_posix()
            for path in (dist.source / package).rglob("*.py")
        }
        if package == "bot":  # and the message catalogues, compiled by the build
            catalogues = {
                path.relative_to(dist.source).as_posix()
                for path in (dist.source / "bot" / "locales").glob("*/LC_MESSAGES/*.po")
            }
            assert catalogues, "no catalogue in the checkout"
            sources |= catalogues | {name[: -len(".po")] + ".mo" for name in catalogues}
        assert {name for name in names if name.startswith(f"{package}/")} == sources
    # Of the emulators, only the host emulator and what it imports.
    assert {n for n in names if n.startswith("sandbox/")} == sandbox_modules_emulate_host_imports()
    metadata = zipfile.ZipFile(dist.wheel).read(f"{info}/METADATA").decode()
    assert f"\nVersion: {VERSION}\n" in metadata
    entry_points = zipfile.ZipFile(dist.wheel).read(f"{info}/entry_points.txt").decode()
    assert "rehost = bot.cli:main" in entry_points


def test_the_sdist_holds_the_sources_and_the_changelog(dist: Dist) -> None:
    with tarfile.open(dist.sdist) as archive:
        names = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    wheel_sources = {
        name for name in zipfile.ZipFile(dist.wheel).namelist() if name.endswith(".py")
    }
    assert wheel_sources <= names
    assert {"pyproject.toml", "README.md", "CHANGELOG.md", "PKG-INFO"} <= names
    if (ROOT / "LICENSE").exists():
        assert "LICENSE" in names
    assert not {name for name in names if name.split("/")[0] in ("tests", "bench", "deploy")}
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert "## [Unreleased]" in changelog and f"## [{VERSION}] - " in changelog


def test_the_image_copies_every_package_of_the_wheel(dist: Dist) -> None:
    """The image's build stage builds the same wheel: it needs every top-level package."""
    tops = {n.split("/")[0] for n in zipfile.ZipFile(dist.wheel).namelist()} - {
        f"rehost_bot-{VERSION}.dist-info"
    }
    copied = {
        source.rstrip("/")
        for instruction in dockerfile()
        if instruction.stage == 0 and instruction.name == "COPY"
        for source in instruction.arguments.split()[:-1]
    }
    assert tops <= copied and "pyproject.toml" in copied


@pytest.fixture
def venv(dist: Dist, tmp_path: Path) -> Iterator[Path]:
    """A fresh virtualenv with the wheel installed, and nothing of this checkout.

    Its dependencies are this environment's (the tests run offline): a ``.pth`` file puts
    this environment's site-packages on its path, and pip sees them installed. A directory
    listed in a .pth file is not a site directory, so the editable install of this checkout
    found there (its own .pth finder) stays inactive.
    """
    where = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(where)], check=True)
    site = Path(sysconfig.get_path("purelib", vars={"base": str(where), "platbase": str(where)}))
    ours = {sysconfig.get_path("purelib"), sysconfig.get_path("platlib")}
    (site / "dependencies.pth").write_text("".join(f"{path}\n" for path in sorted(ours)))
    installed = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(where / "bin" / "python"), "install",
         "--no-index", "--no-cache-dir", "--disable-pip-version-check", str(dist.wheel)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr
    yield where


def isolated(venv: Path) -> dict[str, str]:
    """An environment as a fresh shell would have it: no PYTHONPATH to this checkout."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("PYTHON", "VIRTUAL_ENV", "REHOST_"))
    }
    environment["PATH"] = f"{venv / 'bin'}{os.pathsep}/usr/bin{os.pathsep}/bin"
    return environment


def test_the_wheel_alone_runs_the_offline_walkthrough(venv: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    environment = isolated(venv)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            args, cwd=work, env=environment, capture_output=True, text=True, timeout=60
        )

    ran = run(str(venv / "bin" / "rehost"), "--version")
    assert (ran.returncode, ran.stdout) == (0, f"rehost {VERSION}\n"), ran.stderr
    # Everything the command imports is the installed copy; the tests' emulators are not.
    ran = run(
        str(venv / "bin" / "python"), "-c",
        "import json, sys, bot.cli, bot.upload_cli, adapters.telegram, sandbox.hostemu\n"
        "from importlib.util import find_spec\n"
        "print(json.dumps({'files': [m.__file__ for m in (bot.cli, bot.upload_cli,"
        " adapters.telegram, sandbox.hostemu)], 'path': sys.path,"
        " 'telegram_emulator': find_spec('sandbox.telegram_api') is not None}))",
    )  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    seen = json.loads(ran.stdout)
    assert all(Path(file).is_relative_to(venv) for file in seen["files"]), seen["files"]
    assert ROOT not in {Path(entry or work).resolve() for entry in seen["path"]}
    assert seen["telegram_emulator"] is False

    # The README's walkthrough: the emulator, the config it shows, an upload.
    emulator = subprocess.Popen(
        [str(venv / "bin" / "rehost"), "emulate-host", "--port", "0"],
        cwd=work, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert emulator.stdout is not None
        first = emulator.stdout.readline()
        found = re.search(r":(\d+)/", first)
        assert found is not None, first + (emulator.stderr.read() if emulator.stderr else "")
        (work / "rehost.toml").write_text(readme_config(int(found.group(1))))
        image = samples.png(6, 4)
        (work / "cat.png").write_bytes(image)
        ran = run(str(venv / "bin" / "rehost"), "upload", "cat.png", "-c", "rehost.toml",
                  "--expire", "1d", "--json")  # fmt: skip
        assert ran.returncode == 0, ran.stderr
        line = json.loads(ran.stdout)
        assert httpx.get(line["url"]).content == image
        assert line["expires_at"] is not None
    finally:
        emulator.send_signal(signal.SIGINT)
        emulator.communicate(timeout=30)
    assert emulator.returncode == 0
