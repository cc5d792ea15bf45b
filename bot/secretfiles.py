"""Files that hold secrets are kept from other local users.

The SQLite database holds every delete link: it is created with mode 0600 whatever the
umask, and an existing one that others may read is tightened at start, with one logged
line (INFO: it is done; a WARNING when it cannot be). SQLite gives the files it creates
beside a database (the WAL and its index, a rollback journal) the database file's own
mode, so they follow; ones already there are tightened with it.

A configuration file holding a key or a token that group or others may read is left as it
is, with a warning naming it and the fix, as ssh does for a private key. Only what is in
the file counts: a secret given by an environment variable does not make it sensitive.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

PRIVATE_MODE = 0o600
_BESIDE_DATABASE = ("-wal", "-shm", "-journal")
_CHAT_SECRETS = (("telegram", "token"), ("telegram", "webhook_secret"), ("discord", "token"))


def make_private(database: Path) -> str | None:
    """Create the SQLite file ``database`` with mode 0600 if it is missing, or take group
    and others' access away from it (and the files beside it). Returns the line to log
    once the database has opened (a database that does not open gets its one error line
    alone), or None when there is nothing to say."""
    try:
        fd = os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, PRIVATE_MODE)
    except FileExistsError:
        return _tighten(database)
    except OSError:
        return None  # sqlite3.connect meets the same problem and says it in its own words
    try:
        os.fchmod(fd, PRIVATE_MODE)  # an odd umask may have taken some of the owner's bits
    finally:
        os.close(fd)
    return None


def _tighten(database: Path) -> str | None:
    names = [str(database), *(f"{database}{suffix}" for suffix in _BESIDE_DATABASE)]
    exposed = {name: mode for name in names if (mode := _exposed_mode(name)) is not None}
    if not exposed:
        return None
    shown = ", ".join(f"{name} ({mode:04o})" for name, mode in exposed.items())
    try:
        for name, mode in exposed.items():
            os.chmod(name, mode & 0o700)
    except OSError as error:
        log.warning(
            "the database holds delete links and other users may read it: %s; it could not"
            " be changed (%s): run chmod 600 %s",
            shown, error.strerror, " ".join(exposed),
        )  # fmt: skip
        return None
    return (
        f"the database holds delete links and other users could read it: {shown}; made it"
        " readable by its owner only"
    )


def _exposed_mode(name: str) -> int | None:
    """The mode of the regular file ``name`` when group or others have any access to it."""
    try:
        found = os.stat(name)
    except OSError:
        return None
    mode = stat.S_IMODE(found.st_mode)
    return mode if stat.S_ISREG(found.st_mode) and mode & 0o077 else None


def warn_if_exposed(config: Path, raw: Mapping[str, Any]) -> None:
    """Warn when the configuration file ``config`` (read as ``raw``) holds a secret and
    group or others may read it.

    A file under ``$CREDENTIALS_DIRECTORY`` is left alone: systemd gives a credential to
    the service's user alone, through an ACL whose mask shows in the group's bits."""
    held = secret_keys(raw)
    if not held:
        return
    credentials = os.environ.get("CREDENTIALS_DIRECTORY")
    if credentials and config.resolve().is_relative_to(Path(credentials).resolve()):
        return
    try:
        found = os.stat(config)
    except OSError:
        return
    mode = stat.S_IMODE(found.st_mode)
    if not stat.S_ISREG(found.st_mode) or not mode & 0o044:
        return
    log.warning(
        "%s holds secrets (%s) and other users can read it (mode %04o): run chmod 600 %s,"
        " or move them to environment variables",
        config, ", ".join(held), mode, config,
    )  # fmt: skip


def secret_keys(raw: Mapping[str, Any]) -> list[str]:
    """The keys of a configuration file that hold a secret, e.g. ``hosts.zg.api_key``: the
    file's share of :meth:`bot.config.Config.secrets`."""
    held: list[str] = []
    hosts = raw.get("hosts")
    if isinstance(hosts, Mapping):
        for name, host in hosts.items():
            if isinstance(host, Mapping) and host.get("api_key"):
                held.append(f"hosts.{name}.api_key")
    for section, key in _CHAT_SECRETS:
        table = raw.get(section)
        if isinstance(table, Mapping) and table.get(key):
            held.append(f"{section}.{key}")
    storage = raw.get("storage")
    url = storage.get("url") if isinstance(storage, Mapping) else None
    if isinstance(url, str) and _password(url):
        held.append("storage.url")
    return held


def _password(url: str) -> str | None:
    try:
        return urlsplit(url).password
    except ValueError:
        return None
