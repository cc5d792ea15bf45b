"""``rehost upload``: upload files from disk, printing links or one failure line per file."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.cli import EXIT_FAILED, EXIT_OK, UsageError
from bot.config import Config, load_config
from bot.errors import CredentialsError
from bot.expiration import Duration, parse_duration
from bot.hosts.base import UploadSource
from bot.hosts.factory import build_client
from bot.httpclient import new_http_client
from bot.logsafety import configure_logging
from bot.media import SUPPORTED, human_size
from bot.uploader import RetryPolicy, Uploader, UploadOutcome

FORMATS = ", ".join(t.extension.upper() for t in SUPPORTED)


@dataclass
class FileReport:
    path: Path
    source: UploadSource | None = None
    outcome: UploadOutcome | None = None
    problem: str | None = None  # why nothing was sent


async def run_upload(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    configure_logging(secrets=config.secrets())
    duration = parse_duration(args.expire) if args.expire else config.upload.default_expiration
    names = _host_names(config, args.host)
    policy = RetryPolicy(config.upload.retry_attempts, config.upload.retry_backoff)
    async with new_http_client() as http:
        uploader = Uploader([build_client(config.hosts[n], http) for n in names], policy)
        gate = asyncio.Semaphore(config.upload.max_concurrency)

        async def one(path: Path) -> FileReport:
            async with gate:
                return await _upload_file(uploader, path, duration)

        reports = await asyncio.gather(*(one(path) for path in args.files))
    for report in reports:
        _print_report(report, as_json=args.json)
    return EXIT_OK if all(r.outcome and r.outcome.ok for r in reports) else EXIT_FAILED


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


def _print_report(report: FileReport, *, as_json: bool) -> None:
    name = str(report.path)
    outcome = report.outcome
    if outcome is None or outcome.image is None:
        why = report.problem or (outcome.reason() if outcome else "not uploaded")
        print(f"rehost: {name}: {why}", file=sys.stderr)
        return
    for failure in outcome.failures:
        if isinstance(failure, CredentialsError):
            print(
                f"rehost: warning: {name}: {failure.user_message}; "
                f"uploaded to {outcome.image.host} instead",
                file=sys.stderr,
            )
    image = outcome.image
    assert report.source is not None
    expires = image.expires_at.isoformat().replace("+00:00", "Z") if image.expires_at else None
    if as_json:
        record: dict[str, Any] = {
            "file": name,
            "host": image.host,
            "id": image.image_id,
            "viewer_url": image.viewer_url,
            "url": image.url,
            "delete_url": image.delete_url,
            "expires_at": expires,
            "sha256": report.source.sha256,
        }
        print(json.dumps(record), flush=True)
        return
    print(f"{name}: uploaded to {image.host}")
    print(f"  viewer:  {image.viewer_url}")
    print(f"  direct:  {image.url or '(held for moderation)'}")
    if image.delete_url:
        print(f"  delete:  {image.delete_url}  (private: opening it deletes the image)")
    print(f"  expires: {expires or 'never'}")
