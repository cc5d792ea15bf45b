"""``rehost upload``: upload files from disk, record them, print links or one failure line per
file.

Every upload is recorded in the bot's database (platform ``cli``, owner ``cli`` or
``--owner``) as soon as its host answers, before anything is printed: a closed or full
stdout loses no links, they are in ``rehost history``. Retries and failover are logged only
with ``-v`` or ``REHOST_LOG_LEVEL``; what an operator must see without asking (a host that
refused the API key) is one warning line per host.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import json
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.cli import EXIT_FAILED, EXIT_OK, UsageError, printable
from bot.config import Config, load_config
from bot.cooldowns import Cooldowns
from bot.errors import CredentialsError, ExpirationError
from bot.expiration import Duration, parse_duration
from bot.hosts.base import UploadSource, record_fields
from bot.hosts.factory import build_client
from bot.httpclient import new_http_client
from bot.logsafety import configure_logging, level_from_environment
from bot.media import SUPPORTED, human_size
from bot.presenting import delete_link_effect
from bot.store import Store
from bot.uploader import RetryPolicy, Uploader, UploadOutcome

FORMATS = ", ".join(t.extension.upper() for t in SUPPORTED)
PLATFORM = "cli"


@dataclass
class FileReport:
    path: Path
    source: UploadSource | None = None
    outcome: UploadOutcome | None = None
    problem: str | None = None  # why nothing was sent
    record_id: int | None = None  # the upload's id in the database
    unrecorded: str | None = None  # why recording it failed

    @property
    def name(self) -> str:
        """The file name as typed, safe to show on one line."""
        return printable(str(self.path))


async def run_upload(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    configure_logging(
        _log_level(args.verbose), secrets=config.secrets(), format=config.logging.format
    )
    duration = _duration(args.expire, config)
    names = _host_names(config, args.host)
    owner = args.owner.strip()
    if not owner:
        raise UsageError("--owner: give a name to record the uploads under")
    # Opened before anything is sent: bad storage stops the command before any upload.
    store = None if args.no_record else await Store.open(config.storage.target)
    try:
        policy = RetryPolicy(config.upload.retry_attempts, config.upload.retry_backoff)
        async with new_http_client(concurrency=config.upload.max_concurrency) as http:
            budget = config.upload.host_time_budget
            uploader = Uploader(
                [build_client(config.hosts[n], http, budget) for n in names],
                policy,
                # Hosts resting after rate limiting, as the bot and earlier runs saw them.
                cooldowns=Cooldowns(store),
            )
            gate = asyncio.Semaphore(config.upload.max_concurrency)

            async def one(path: Path) -> FileReport:
                async with gate:
                    report = await _upload_file(uploader, path, duration)
                if store is not None:
                    try:
                        report.record_id = await _record(store, report, owner)
                    except Exception as error:  # the links are printed all the same
                        report.unrecorded = f"{config.storage.where}: {error}"
                return report

            reports = await asyncio.gather(*(one(path) for path in args.files))
    finally:
        if store is not None:
            await store.close()
    return _report_all(reports, args)


def _log_level(verbose: int) -> int:
    """-v: retries and failover (INFO); -vv: every request (DEBUG); else the environment's
    ``REHOST_LOG_LEVEL``, or errors only."""
    if verbose:
        return logging.DEBUG if verbose > 1 else logging.INFO
    return level_from_environment(logging.ERROR)


def _duration(expire: str | None, config: Config) -> Duration | None:
    if expire is None:
        return config.upload.default_expiration
    try:
        return parse_duration(expire)
    except ExpirationError as error:
        raise UsageError(f"--expire: {error.user_message}") from None


def _host_names(config: Config, only: str | None) -> tuple[str, ...]:
    if only is None:
        return config.upload.hosts
    if only not in config.hosts:
        known = ", ".join(config.hosts)
        raise UsageError(f"--host {only}: no such host in the configuration (known: {known})")
    return (only,)


async def _upload_file(uploader: Uploader, path: Path, duration: Duration | None) -> FileReport:
    report = FileReport(path)
    if not path.is_file():
        report.problem = "no such file" if not path.exists() else "not a regular file"
        return report
    try:
        source = await asyncio.to_thread(UploadSource.from_path, path)
    except OSError as error:
        report.problem = f"cannot be read ({error.strerror or type(error).__name__})"
        return report
    if source is None:
        report.problem = f"not a supported image ({FORMATS}); nothing was sent"
        return report
    report.source = source
    largest = uploader.largest_accepted()
    if source.size > largest:
        report.problem = (
            f"too large ({human_size(source.size)}); the configured hosts accept at most "
            f"{human_size(largest)}; nothing was sent"
        )
        return report
    report.outcome = await uploader.upload(source, duration)
    return report


async def _record(store: Store, report: FileReport, owner: str) -> int | None:
    """Record a stored image as the bot records its own; its id, or None if none was stored."""
    image = report.outcome.image if report.outcome else None
    if image is None or report.source is None:
        return None
    return await store.add_upload(
        platform=PLATFORM, owner_id=owner, **record_fields(report.source, image)
    )


# --- output ----------------------------------------------------------------------------------


def _report_all(reports: list[FileReport], args: argparse.Namespace) -> int:
    """Links on stdout, one line per failure on stderr, one warning per host that refused
    the key. A stdout that cannot be written (closed, full) is one more line and exit 1."""
    stdout_error: OSError | None = None
    for report in reports:
        if report.outcome is None or report.outcome.image is None:
            why = report.problem or (report.outcome.reason() if report.outcome else "not uploaded")
            _stderr(f"{report.name}: {why}")
        elif stdout_error is None:
            try:
                _print_links(report, as_json=args.json)
            except OSError as error:  # BrokenPipeError, ENOSPC, EBADF...
                stdout_error = error
                _silence_stdout()
    for line in _refused_key_warnings(reports):
        _stderr(f"warning: {line}")
    for report in reports:
        if report.unrecorded:
            _stderr(f"{report.name}: uploaded but not recorded ({report.unrecorded})")
    ok = all(r.outcome and r.outcome.ok and not r.unrecorded for r in reports)
    if stdout_error is not None:
        _stderr(_unprinted(stdout_error, reports, args))
        return EXIT_FAILED
    return EXIT_OK if ok else EXIT_FAILED


def _refused_key_warnings(reports: list[FileReport]) -> list[str]:
    """``zg refused the API key; uploaded to mychev instead``, once per refusing host."""
    refusals: dict[str, tuple[str, list[str]]] = {}
    for report in reports:
        outcome = report.outcome
        if outcome is None or outcome.image is None:
            continue  # its failure line already says why, the refusal included
        for failure in outcome.failures:
            if isinstance(failure, CredentialsError):
                _, used = refusals.setdefault(failure.host, (failure.user_message, []))
                if outcome.image.host not in used:
                    used.append(outcome.image.host)
    return [
        printable(f"{message}; uploaded to {', '.join(used)} instead")
        for message, used in refusals.values()
    ]


def _print_links(report: FileReport, *, as_json: bool) -> None:
    assert report.outcome is not None and report.outcome.image is not None
    assert report.source is not None
    if sys.stdout is None:  # started with no stdout at all
        raise OSError(errno.EBADF, "stdout is closed")
    image = report.outcome.image
    expires = image.expires_at.isoformat().replace("+00:00", "Z") if image.expires_at else None
    if as_json:
        record: dict[str, Any] = {
            "file": str(report.path),
            "host": image.host,
            "id": image.image_id,
            "viewer_url": image.viewer_url,
            "url": image.url,
            "delete_url": image.delete_url,
            "expires_at": expires,
            "sha256": report.source.sha256,
            "record": report.record_id,
        }
        print(json.dumps(record), flush=True)
        return
    lines = [
        f"{report.name}: uploaded to {image.host}",
        f"  viewer:  {image.viewer_url}",
        f"  direct:  {image.url or '(held for moderation)'}",
    ]
    if image.delete_url:
        effect = delete_link_effect(image.dialect)
        lines.append(f"  delete:  {image.delete_url}  (private: {effect})")
    lines.append(f"  expires: {expires or 'never'}")
    if report.record_id is not None:
        lines.append(f"  record:  #{report.record_id}")
    print("\n".join(lines), flush=True)


def _unprinted(error: OSError, reports: list[FileReport], args: argparse.Namespace) -> str:
    why = "stdout is closed" if isinstance(error, BrokenPipeError) else None
    why = why or error.strerror or type(error).__name__
    ids = [f"#{n}" for n in sorted(r.record_id for r in reports if r.record_id is not None)]
    if ids:
        where = f"they are recorded as {', '.join(ids)}: see rehost history"
    elif args.no_record:
        where = "they were not recorded (--no-record)"
    else:
        where = "nothing was recorded"
    return f"could not print the links ({why}); {where}"


def _stderr(line: str) -> None:
    print(f"rehost: {printable(line)}", file=sys.stderr, flush=True)


def _silence_stdout() -> None:
    """Point stdout at /dev/null, so that flushing it again at exit cannot fail too."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError, AttributeError):
        pass
