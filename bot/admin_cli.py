"""Operator commands over the database: ``rehost history``, ``rehost delete``, ``rehost stats``."""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from bot.cli import EXIT_FAILED, EXIT_OK, printable
from bot.config import load_config
from bot.deletion import DeleteStatus, delete_as_operator
from bot.httpclient import new_http_client
from bot.logsafety import configure_logging
from bot.media import human_size
from bot.store import Store, UploadRecord, to_text


def _record(upload: UploadRecord) -> dict[str, Any]:
    return {
        "id": upload.id,
        "platform": upload.platform,
        "chat_id": upload.chat_id,
        "owner_id": upload.owner_id,
        "host": upload.host,
        "viewer_url": upload.viewer_url,
        "url": upload.url,
        "size": upload.size,
        "sha256": upload.sha256,
        "state": upload.state,
        "created_at": to_text(upload.created_at),
        "expires_at": to_text(upload.expires_at),
        "reused_from": upload.reused_from,
        # ImgBB-style: when the owner was given the delete link to open (still active).
        "delete_link_handed_over_at": to_text(upload.delete_handed_at),
    }


async def run_history(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    configure_logging(secrets=config.secrets(), format=config.logging.format)
    async with Store.opened(config.storage.target) as store:
        uploads = await store.history(owner_id=args.owner, limit=args.limit)
    for upload in uploads:
        if args.json:
            print(json.dumps(_record(upload)))
        else:
            expires = to_text(upload.expires_at) or "never"
            line = (
                f"#{upload.id:<6} {upload.state:<8} {upload.platform}:{upload.owner_id:<20} "
                f"{upload.host:<12} {upload.viewer_url}  expires {expires}"
            )
            if upload.state == "active" and upload.delete_handed_at is not None:
                line += f"  delete link handed over {to_text(upload.delete_handed_at)}"
            print(printable(line))
    if not uploads and not args.json:
        print("no uploads recorded")
    return EXIT_OK


async def run_delete(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    configure_logging(secrets=config.secrets(), format=config.logging.format)
    async with Store.opened(config.storage.target) as store, new_http_client() as http:
        result = await delete_as_operator(store, http, args.id)
    print(result.message)
    if result.status is DeleteStatus.OPEN_LINK and result.delete_url:
        print(f"open to confirm: {result.delete_url}")
    ok = result.removed or result.status is DeleteStatus.OPEN_LINK
    if not ok:
        print(f"rehost: upload #{args.id} was not deleted", file=sys.stderr)
    return EXIT_OK if ok else EXIT_FAILED


async def run_stats(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    configure_logging(secrets=config.secrets(), format=config.logging.format)
    async with Store.opened(config.storage.target) as store:
        stats = await store.stats()
    if args.json:
        print(json.dumps(stats))
        return EXIT_OK
    print(f"uploads:    {stats['uploads']} ({human_size(stats['bytes'])})")
    print(f"dedup hits: {stats['dedup_hits']}")
    print(f"failures:   {stats['failures']}")
    for state, count in sorted(stats["states"].items()):
        print(f"  {state}: {count}")
    if stats["delete_links_handed_over"]:
        print(f"  active with the delete link handed over: {stats['delete_links_handed_over']}")
    for host, numbers in stats["hosts"].items():
        print(f"{host:<20} {numbers['uploads']} uploads, {human_size(numbers['bytes'])}")
    for host, gone in stats["gone_before_expiry"].items():
        print(f"{host:<20} {gone} images gone before their expiry (rehost check)")
    for host, cooling in stats["cooldowns"].items():
        left = max(0, round(cooling["until"] - time.time()))
        print(f"{host:<20} resting {left} s after rate limiting: {cooling['reason']}")
    return EXIT_OK
