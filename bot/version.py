"""rehost's version, as ``rehost --version`` prints it.

pyproject.toml is the one place the version is written; an installed rehost reads it back
from its distribution's metadata. A checkout run without installing (``python -m bot``
with the repository on ``PYTHONPATH``) has no metadata, so the version is read from the
pyproject.toml beside the package instead.
"""

from __future__ import annotations

from pathlib import Path

DISTRIBUTION = "rehost-bot"
UNKNOWN = "0+unknown"  # a valid version string that sorts before every real one


def version() -> str:
    # Imported here: only --version needs it, and ``rehost --help`` should stay fast.
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed(DISTRIBUTION)
    except PackageNotFoundError:
        return checkout_version(Path(__file__).resolve().parent.parent) or UNKNOWN


def checkout_version(root: Path) -> str | None:
    """The version in ``root/pyproject.toml``, if that file is rehost's."""
    import tomllib

    try:
        project = tomllib.loads((root / "pyproject.toml").read_text()).get("project", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    found = project.get("version")
    return found if project.get("name") == DISTRIBUTION and isinstance(found, str) else None
