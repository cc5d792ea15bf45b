"""``rehost telegram set-webhook`` and ``rehost telegram delete-webhook``.

``set-webhook`` registers ``[telegram] webhook_url``, the secret token and the updates the
bot handles with Telegram, once for every process that serves that URL; from then on
Telegram POSTs updates there and refuses ``getUpdates``. ``delete-webhook`` removes it
(updates not yet delivered are kept) so that the bot can poll again.

Neither ever prints the secret or the token. python-telegram-bot is imported only when a
command runs (``rehost --help`` stays fast).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from bot.cli import EXIT_FAILED, EXIT_OK, UsageError, printable
from bot.config import TelegramSettings, load_config
from bot.errors import ConfigError
from bot.logsafety import Redactor, configure_logging

if TYPE_CHECKING:
    from telegram import Bot

NO_TELEGRAM = "there is no Telegram bot to set up: set [telegram] token (or REHOST_TELEGRAM_TOKEN)"


async def run_set_webhook(args: argparse.Namespace) -> int:
    settings, redact = _settings(args)
    if settings.mode != "webhook":
        raise ConfigError(
            "telegram.mode",
            f'is "{settings.mode}": set mode = "webhook" (with webhook_listen, webhook_url'
            " and webhook_secret) to receive updates through a webhook",
        )
    url, secret = settings.webhook_url, settings.webhook_secret
    assert url is not None and secret is not None  # the configuration requires them

    async def register(bot: Bot) -> None:
        from adapters.telegram.polling import ALLOWED_UPDATES

        await bot.set_webhook(url, secret_token=secret, allowed_updates=ALLOWED_UPDATES)
        print(printable(f"webhook set: Telegram now sends updates to {url}"))

    return await _with_bot(settings, redact, "set the webhook", register)


async def run_delete_webhook(args: argparse.Namespace) -> int:
    settings, redact = _settings(args)

    async def delete(bot: Bot) -> None:
        await bot.delete_webhook(drop_pending_updates=False)
        print("webhook deleted: the bot gets its updates by polling again")

    return await _with_bot(settings, redact, "delete the webhook", delete)


def _settings(args: argparse.Namespace) -> tuple[TelegramSettings, Redactor]:
    config = load_config(args.config)
    redact = configure_logging(secrets=config.secrets(), format=config.logging.format)
    # At DEBUG, python-telegram-bot logs each call's parameters, the secret token among
    # them (which the redactor may not catch: Telegram takes one character).
    bot_log = logging.getLogger("telegram.Bot")
    bot_log.setLevel(max(bot_log.getEffectiveLevel(), logging.INFO))
    if config.telegram is None:
        raise UsageError(NO_TELEGRAM)
    return config.telegram, redact


async def _with_bot(
    settings: TelegramSettings,
    redact: Redactor,
    doing: str,
    action: Callable[[Bot], Awaitable[None]],
) -> int:
    from telegram.error import BadRequest, InvalidToken, NetworkError, TelegramError

    from adapters.telegram.delivery import with_retry
    from adapters.telegram.request import new_bot

    bot = new_bot(settings)  # at a self-hosted Bot API server if base_url is set
    try:
        async with bot:  # getMe: a wrong token is found here
            await with_retry(lambda: action(bot))
    except InvalidToken:
        return _failed(redact, f"could not {doing}: Telegram did not accept the bot token")
    except BadRequest as error:  # a NetworkError to python-telegram-bot
        return _failed(redact, f"could not {doing}: Telegram said: {error.message}")
    except NetworkError as error:  # TimedOut too
        return _failed(redact, f"could not {doing}: Telegram could not be reached ({error})")
    except TelegramError as error:
        return _failed(redact, f"could not {doing}: Telegram said: {error.message}")
    return EXIT_OK


def _failed(redact: Redactor, line: str) -> int:
    print(f"rehost: {printable(redact(line))}", file=sys.stderr)
    return EXIT_FAILED
