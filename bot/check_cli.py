"""``rehost check``: probe the image link of every live upload and record alive or gone."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable

from bot.cli import EXIT_FAILED, EXIT_OK, printable
from bot.config import load_config
from bot.httpclient import new_http_client
from bot.linkcheck import GONE, Finding, LinkChecker
from bot.logsafety import configure_logging
from bot.store import Store


async def run_check(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    configure_logging(secrets=config.secrets(), format=config.logging.format)
    if args.host is not None and args.host not in config.hosts:
        known = ", ".join(config.hosts) or "none"
        print(f"rehost: no host named {args.host!r} (configured: {known})", file=sys.stderr)
        return 2
    async with Store.opened(config.storage.target) as store, new_http_client() as http:
        checker = LinkChecker(store, http)
        findings = await checker.run(args.host, _printer(args.json))
    gone = [f for f in findings if f.state == GONE]
    if not args.json:
        alive = sum(1 for f in findings if f.state == "alive")
        print(f"checked {len(findings)} links: {alive} alive, {len(gone)} gone", file=sys.stderr)
    return EXIT_FAILED if gone else EXIT_OK


def _printer(as_json: bool) -> Callable[[Finding], None]:
    def show(finding: Finding) -> None:
        ids = ", ".join(f"#{i}" for i in finding.upload_ids)
        if as_json:
            print(json.dumps({**finding.__dict__, "upload_ids": list(finding.upload_ids)}))
        elif finding.state != "alive":
            print(printable(f"{finding.state:<7} {finding.host:<12} {ids} {finding.url}"))

    return show
