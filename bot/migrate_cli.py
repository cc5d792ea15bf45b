"""``rehost migrate --from NAME``: move every live upload off a host (see bot.migrate)."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import AsyncIterator

from tqdm import tqdm

from bot.cli import EXIT_FAILED, EXIT_OK, UsageError, printable
from bot.config import Config, load_config
from bot.cooldowns import Cooldowns
from bot.fetch import Fetcher
from bot.hosts.factory import build_client
from bot.httpclient import new_http_client
from bot.linkguard import AddressGuard, new_link_client
from bot.logsafety import configure_logging
from bot.migrate import Migrator, Moved
from bot.requests import Resolver
from bot.store import Store
from bot.uploader import RetryPolicy, Uploader


async def run_migrate(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    configure_logging(secrets=config.secrets(), format=config.logging.format)
    targets = _targets(config, args.from_host, args.to_host)
    guard = AddressGuard(config.links.allowed_networks)
    async with (
        Store.opened(config.storage.target) as store,
        new_http_client() as http,
        new_link_client(guard) as links,
        _chat_resolvers(config) as resolvers,
    ):
        upload = config.upload
        uploader = Uploader(
            [build_client(config.hosts[n], http, upload.host_time_budget) for n in targets],
            RetryPolicy(upload.retry_attempts, upload.retry_backoff),
            cooldowns=Cooldowns(store),
        )
        fetcher = Fetcher(http, max_bytes=uploader.largest_accepted(), links=links)
        migrator = Migrator(store, uploader, fetcher, http, resolvers)
        pending = len(await migrator.to_move(args.from_host))
        bar = tqdm(
            total=pending,
            unit="image",
            desc=f"moving off {args.from_host}",
            disable=args.json or not sys.stderr.isatty(),
        )
        with bar:
            results = await migrator.run(
                args.from_host,
                targets,
                dry_run=args.dry_run,
                progress=lambda moved: _show(moved, args.json, bar),
            )
    failed = [moved for moved in results if not moved.ok and not args.dry_run]
    if not args.json:
        done = sum(1 for moved in results if moved.ok)
        print(f"moved {done} of {len(results)} uploads off {args.from_host}", file=sys.stderr)
    return EXIT_FAILED if failed else EXIT_OK


def _targets(config: Config, from_host: str, to_host: str | None) -> list[str]:
    if from_host not in config.hosts:
        raise UsageError(f"--from: no host named {from_host!r} (configured: {_names(config)})")
    if to_host is not None:
        if to_host not in config.hosts or to_host == from_host:
            raise UsageError(f"--to: {to_host!r} is not another configured host")
        return [to_host]
    targets = [name for name in config.upload.hosts if name != from_host]
    if not targets:
        raise UsageError("no other host to move to: add one to upload.hosts, or pass --to")
    return targets


def _names(config: Config) -> str:
    return ", ".join(config.hosts) or "none"


def _show(moved: Moved, as_json: bool, bar: tqdm) -> None:  # type: ignore[type-arg]
    if as_json:
        print(json.dumps(moved.__dict__), flush=True)
        return
    bar.update(1)
    if moved.problem and not moved.ok:
        bar.write(printable(f"#{moved.upload_id}: {moved.problem}"), file=sys.stderr)


@contextlib.asynccontextmanager
async def _chat_resolvers(config: Config) -> AsyncIterator[dict[str, Resolver]]:
    """Where an image no longer on its host can still be had: the chat it came from."""
    resolvers: dict[str, Resolver] = {}
    if config.telegram is None:
        yield resolvers
        return
    from adapters.telegram.request import new_bot
    from adapters.telegram.sources import make_resolver

    settings = config.telegram
    # At a self-hosted Bot API server when base_url and base_file_url are set.
    async with new_bot(settings) as bot:
        resolvers["telegram"] = make_resolver(bot, settings.max_download_bytes)
        yield resolvers
