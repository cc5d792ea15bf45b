"""The ``rehost`` command line: argument parsing and exit codes.

Exit codes: 0 success, 1 some work failed (each failure explained on stderr), 2 usage or
configuration error. Expected failures never print a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from bot.config import Config, load_config
from bot.errors import ConfigError, ExpirationError

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


class UsageError(Exception):
    """A command-line mistake (exit 2)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rehost", description="Rehost images on ImgBB-style and Chevereto image hosts."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    upload = commands.add_parser("upload", help="upload image files through the configured hosts")
    upload.add_argument("files", nargs="+", type=Path, metavar="FILE")
    _config_option(upload)
    upload.add_argument("--host", help="use only this configured host")
    upload.add_argument("--expire", metavar="DURATION", help="e.g. 10m, 1h, 3d, 1mo, never")
    upload.add_argument("--json", action="store_true", help="one JSON object per file")
    upload.set_defaults(handler=_lazy("bot.upload_cli", "run_upload"))

    run = commands.add_parser("run", help="run the bot (every adapter whose token is set)")
    _config_option(run)
    run.set_defaults(handler=_lazy("bot.runner", "run_bot"))

    history = commands.add_parser("history", help="list recorded uploads, newest first")
    _config_option(history)
    history.add_argument("--owner", help="only this owner's uploads (platform user id)")
    history.add_argument("--limit", type=int, default=100)
    history.add_argument("--json", action="store_true", help="one JSON object per upload")
    history.set_defaults(handler=_lazy("bot.admin_cli", "run_history"))

    delete = commands.add_parser("delete", help="delete an upload by its id (as the operator)")
    _config_option(delete)
    delete.add_argument("id", type=int)
    delete.set_defaults(handler=_lazy("bot.admin_cli", "run_delete"))

    stats = commands.add_parser("stats", help="uploads, bytes, dedup hits and failures per host")
    _config_option(stats)
    stats.add_argument("--json", action="store_true")
    stats.set_defaults(handler=_lazy("bot.admin_cli", "run_stats"))

    emulate = commands.add_parser(
        "emulate-host", help="serve a local emulator of both host dialects (for trying configs)"
    )
    emulate.add_argument("--port", type=int, default=8089)
    emulate.add_argument("--host", default="127.0.0.1")
    emulate.add_argument("--api-key", action="append", dest="api_keys", metavar="KEY")
    emulate.set_defaults(handler=None)
    return parser


def _config_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-c", "--config", type=Path, default=Path("rehost.toml"), help="configuration file"
    )


def _lazy(module: str, name: str) -> Handler:
    """Import a command's module only when it runs (keeps ``rehost --help`` fast)."""

    async def handler(args: argparse.Namespace) -> int:
        import importlib

        function: Handler = getattr(importlib.import_module(module), name)
        return await function(args)

    return handler


def load(args: argparse.Namespace) -> Config:
    return load_config(args.config)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command == "emulate-host":
        from sandbox.hostemu import main as emulate

        options = ["--host", args.host, "--port", str(args.port)]
        for key in args.api_keys or []:
            options += ["--api-key", key]
        code: int = emulate(options)
        return code
    try:
        result: int = asyncio.run(args.handler(args))
        return result
    except ConfigError as error:
        print(f"rehost: configuration error: {error.user_message}", file=sys.stderr)
    except (UsageError, ExpirationError) as error:
        print(f"rehost: {error}", file=sys.stderr)
    except KeyboardInterrupt:
        return 130
    return EXIT_USAGE
