"""Re-reading the configuration of a running process (``rehost run`` on SIGHUP).

What takes effect at once: the hosts and their keys, the host order, the retry policy,
the per-user limit, the default expiry, and the configured auto-rehost chats and
channels. What needs a restart (tokens, the storage, listening addresses, the number of
concurrent uploads, the log format, communities' own hosts and their key) makes the
whole new file refused: the running configuration stays, whole, and one line says why.
A file with a mistake is refused the same way, with the mistake named.
"""

from __future__ import annotations

import dataclasses
import logging
from pathlib import Path

from bot.app import Core
from bot.config import Config, load_config
from bot.errors import ConfigError
from bot.hosts.factory import build_client
from bot.logsafety import protect_handlers
from bot.ratelimit import RateLimit
from bot.uploader import RetryPolicy

log = logging.getLogger(__name__)
KEPT = "configuration not reloaded; the running one is kept"


def needs_restart(old: Config, new: Config) -> list[str]:
    """The settings that differ between ``old`` and ``new`` and apply only at start."""
    changed = []
    if new.storage != old.storage:
        changed.append("[storage]")
    if new.upload.max_concurrency != old.upload.max_concurrency:
        changed.append("upload.max_concurrency")
    if new.observability != old.observability:
        changed.append("[observability]")
    if new.logging != old.logging:
        changed.append("[logging]")
    if new.communities != old.communities:  # the own hosts' sealer is made at start
        changed.append("[communities]")
    telegram = [(section, "auto_rehost_chats") for section in (old.telegram, new.telegram)]
    discord = [(section, "auto_rehost_channels") for section in (old.discord, new.discord)]
    for name, pair in (("telegram", telegram), ("discord", discord)):
        before, after = (_without(section, field) for section, field in pair)
        if before != after:
            changed.append(f"[{name}] (other than its auto-rehost list)")
    return changed


def _without(section: object | None, field: str) -> object | None:
    """``section`` with ``field`` emptied: what is left must not change while running."""
    if section is None:
        return None
    return dataclasses.replace(section, **{field: ()})  # type: ignore[type-var]


def apply(core: Core, new: Config) -> None:
    """Switch the running core to ``new`` (checked with :func:`needs_restart` first)."""
    protect_handlers(logging.getLogger().handlers, new.secrets())  # new keys masked first
    upload, service = new.upload, core.rehost
    uploader = service.uploader
    uploader.clients = [
        build_client(host, core.http, upload.host_time_budget) for host in new.ordered_hosts()
    ]
    uploader.policy = RetryPolicy(upload.retry_attempts, upload.retry_backoff)
    service.fetcher.max_bytes = uploader.largest_accepted()
    service.intake.limit = RateLimit(upload.user_rate_limit, upload.user_rate_window)
    service.default_expiration = upload.default_expiration
    core.config = new


def reload_config(core: Core, path: Path) -> bool:
    """Read ``path`` again and apply it, or keep the running configuration; logs one line
    either way. True when the new configuration is in effect."""
    try:
        new = load_config(path)
    except ConfigError as error:
        log.error("%s: %s", KEPT, error)
        return False
    changed = needs_restart(core.config, new)
    if changed:
        log.error("%s: %s changed, which takes a restart", KEPT, ", ".join(changed))
        return False
    apply(core, new)
    log.info("configuration reloaded from %s: hosts %s", path, ", ".join(new.upload.hosts))
    return True
