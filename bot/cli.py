"""The ``rehost`` command line: argument parsing and exit codes.

Exit codes: 0 success, 1 some work failed (each failure explained on stderr), 2 usage,
configuration or storage error. Expected failures never print a traceback: each is one
line on stderr, and this module is the one place that turns them into it.
"""

from __future__ import annotations

import argparse
import errno
import sys
import unicodedata
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.errors import ConfigError, ExpirationError, StorageError

if TYPE_CHECKING:
    from bot.config import Config

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
DEFAULT_CONFIG = Path("rehost.toml")

Handler = Callable[[argparse.Namespace], Coroutine[Any, Any, int]]


class UsageError(Exception):
    """A command-line mistake (exit 2)."""


ROLES = ("all", "discord", "telegram", "worker")


def _shard_ids(text: str) -> tuple[int, ...]:
    try:
        ids = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a list of shard numbers: {text!r}") from None
    if not ids or any(shard < 0 for shard in ids) or len(set(ids)) != len(ids):
        raise argparse.ArgumentTypeError(f"not a list of distinct shard numbers: {text!r}")
    return ids


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


class _VersionAction(argparse.Action):
    """``--version``: like argparse's own, but reads the version only when asked, so that
    building the parser (``rehost --help``) never loads package metadata."""

    def __init__(self, option_strings: Sequence[str], dest: str, **_: Any) -> None:
        super().__init__(
            option_strings, dest, nargs=0, default=argparse.SUPPRESS, help="show the version"
        )

    def __call__(self, parser: argparse.ArgumentParser, *_: Any) -> None:
        from bot.version import version

        print(f"rehost {version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="rehost", description="Rehost images on ImgBB-style and Chevereto image hosts."
    )
    parser.add_argument("--version", action=_VersionAction)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    upload = commands.add_parser("upload", help="upload image files through the configured hosts")
    upload.add_argument("files", nargs="+", type=Path, metavar="FILE")
    _config_option(upload)
    upload.add_argument("--host", help="use only this configured host")
    upload.add_argument("--expire", metavar="DURATION", help="e.g. 10m, 1h, 3d, 1mo, never")
    upload.add_argument("--json", action="store_true", help="one JSON object per file")
    upload.add_argument(
        "--owner", default="cli", help="record the uploads under this owner (default: cli)"
    )
    upload.add_argument(
        "--no-record", action="store_true", help="do not record the uploads in the database"
    )
    upload.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log retries and failover (-vv: every request)",
    )
    upload.set_defaults(handler=_lazy("bot.upload_cli", "run_upload"))

    run = commands.add_parser("run", help="run the bot (every adapter whose token is set)")
    _config_option(run)
    run.add_argument(
        "--role",
        choices=ROLES,
        default="all",
        help="run one part: the Discord gateway, Telegram intake, or a worker (default: all)",
    )
    run.add_argument(
        "--shard-ids",
        type=_shard_ids,
        metavar="0,1,...",
        help="with --role discord: the shards this process runs (needs --shard-count)",
    )
    run.add_argument(
        "--shard-count",
        type=_positive_int,
        metavar="N",
        help="with --role discord: how many shards there are in all (default: Discord's advice)",
    )
    run.set_defaults(handler=_lazy("bot.runner", "run_bot"))

    telegram = commands.add_parser("telegram", help="Telegram webhook set-up")
    telegram_commands = telegram.add_subparsers(
        dest="telegram_command", required=True, metavar="ACTION"
    )
    set_webhook = telegram_commands.add_parser(
        "set-webhook", help="register [telegram] webhook_url and its secret with Telegram"
    )
    _config_option(set_webhook)
    set_webhook.set_defaults(handler=_lazy("bot.telegram_cli", "run_set_webhook"))
    delete_webhook = telegram_commands.add_parser(
        "delete-webhook", help="remove the webhook: the bot goes back to polling"
    )
    _config_option(delete_webhook)
    delete_webhook.set_defaults(handler=_lazy("bot.telegram_cli", "run_delete_webhook"))

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

    check = commands.add_parser(
        "check", help="probe the image link of every live upload; record alive or gone"
    )
    _config_option(check)
    check.add_argument("--host", help="only this configured host's uploads")
    check.add_argument("--json", action="store_true", help="one JSON object per link")
    check.set_defaults(handler=_lazy("bot.check_cli", "run_check"))

    migrate = commands.add_parser(
        "migrate", help="move every live upload off a host onto the other configured hosts"
    )
    _config_option(migrate)
    migrate.add_argument("--from", dest="from_host", required=True, metavar="NAME")
    migrate.add_argument("--to", dest="to_host", metavar="NAME", help="only onto this host")
    migrate.add_argument("--dry-run", action="store_true", help="list what would be moved")
    migrate.add_argument("--json", action="store_true", help="one JSON object per upload")
    migrate.set_defaults(handler=_lazy("bot.migrate_cli", "run_migrate"))

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
        "-c",
        "--config",
        type=Path,
        default=None,
        help=f"configuration file (default: {DEFAULT_CONFIG} in the working directory)",
    )


def _default_config(args: argparse.Namespace) -> None:
    """Fill in ``args.config`` when ``-c`` was not given, or say how to give one."""
    if getattr(args, "config", DEFAULT_CONFIG) is not None:
        return
    if not DEFAULT_CONFIG.exists():
        raise UsageError(
            f"no configuration: there is no {DEFAULT_CONFIG} in this directory; pass -c FILE,"
            " or start from config.example.toml (copy it to rehost.toml and fill in your keys)"
        )
    args.config = DEFAULT_CONFIG


def _lazy(module: str, name: str) -> Handler:
    """Import a command's module only when it runs (keeps ``rehost --help`` fast)."""

    async def handler(args: argparse.Namespace) -> int:
        import importlib

        from bot.logsafety import configure_logging

        # Every command: REHOST_LOG_LEVEL and REHOST_LOG_FORMAT from here on. A command
        # that loads a configuration sets logging up again with its secrets and format.
        configure_logging()
        function: Handler = getattr(importlib.import_module(module), name)
        return await function(args)

    return handler


def load(args: argparse.Namespace) -> Config:
    from bot.config import load_config

    return load_config(args.config)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # Imported here, not at the top: rehost --help needs none of it.
    import asyncio
    import sqlite3

    if args.command == "emulate-host":
        return _emulate(args)
    try:
        _default_config(args)
        result: int = asyncio.run(args.handler(args))
        return result
    except ConfigError as error:
        _say(f"configuration error: {error.user_message}")
    except (UsageError, ExpirationError) as error:
        _say(str(error))
    except StorageError as error:
        _say(f"storage error: {error.user_message}")
    except sqlite3.DatabaseError as error:
        # Damage found after the database opened (a page read later): still one line.
        _say(f"storage error: {_database_name(args)}: unusable (sqlite: {error})")
    except KeyboardInterrupt:
        return 130
    except Exception as error:
        if not type(error).__module__.startswith("psycopg"):
            raise
        # The PostgreSQL server went away (or refused a statement) after it opened.
        reason = str(error).strip().splitlines()[0] if str(error).strip() else repr(error)
        _say(f"storage error: {_database_name(args)}: {reason}")
    return EXIT_USAGE


def _say(line: str) -> None:
    """One line on stderr, whatever the message holds."""
    print(f"rehost: {printable(line)}", file=sys.stderr)


_NAMED_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Bidirectional controls reorder what a terminal shows ("gnp.exe" that reads "exe.png").
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def printable(text: str) -> str:
    """``text`` shown safely on one line: control characters, line separators and bidi
    controls escaped (``\\n``, ``\\x1b``, ``\\u202e``), and bytes of a file name that are
    not UTF-8 (Python's surrogate escapes) shown as ``\\xNN``."""
    if text.isprintable():
        return text
    shown = []
    for char in text:
        code = ord(char)
        if char in _NAMED_ESCAPES:
            shown.append(_NAMED_ESCAPES[char])
        elif 0xDC80 <= code <= 0xDCFF:
            shown.append(f"\\x{code - 0xDC00:02x}")
        elif char in _BIDI or unicodedata.category(char) in ("Cc", "Cs", "Zl", "Zp"):
            shown.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            shown.append(char)
    return "".join(shown)


def _database_name(args: argparse.Namespace) -> str:
    """The database the configuration names (it loaded before the database failed)."""
    try:
        return load(args).storage.where
    except Exception:
        return "the database"


def _emulate(args: argparse.Namespace) -> int:
    from bot.logsafety import configure_logging
    from sandbox.hostemu import main as emulate

    configure_logging(secrets=args.api_keys or ())
    options = ["--host", args.host, "--port", str(args.port)]
    for key in args.api_keys or []:
        options += ["--api-key", key]
    try:
        code: int = emulate(options)
    except OSError as error:
        where = f"{args.host}:{args.port}"
        if error.errno == errno.EADDRINUSE:
            _say(f"emulate-host: port {args.port} is already in use ({where}); try --port N")
        elif error.errno == errno.EACCES:
            _say(f"emulate-host: no permission to listen on {where}; try a port above 1023")
        else:
            _say(f"emulate-host: cannot listen on {where} ({error.strerror or error})")
        return EXIT_USAGE
    return code
