"""The Discord adapter's one error handler.

Every failure of the adapter ends here, whatever raised it:

- a command (the command tree's error handler, :func:`on_command_error`) or a button
  (:func:`on_interaction_error`): checks that failed get a plain sentence; anything else
  is logged with its context and the user is told only that something went wrong, in the
  least surprising place (:func:`tell`);
- a gateway event such as a message (the client's ``on_error``, :func:`on_event_error`):
  logged, and the author gets a short reply;
- delivering an outbox row (:func:`delivery_outcome`): the failure becomes what the
  outbox sender should do (wait, retry, give up). Nothing is ever said in a chat about a
  failed delivery: the sender tries again, and a chat that is rate limited is not posted
  into.

Exception texts go to the log, never to a chat.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import aiohttp
import discord
from discord import app_commands

from adapters.discord.render import SORRY
from bot.i18n import ENGLISH, N_, negotiate, translate
from bot.outbox import OutboxRow
from bot.sending import Delivered

log = logging.getLogger(__name__)
ANSWERED = "rehost_answered"
DEFAULT_RATE_LIMIT_WAIT = 60.0  # seconds, when a 429 says nothing


# --- interactions ----------------------------------------------------------------------------


def mark_answered(interaction: discord.Interaction[Any]) -> None:
    """Note that the deferred "thinking" message was replaced by the real answer."""
    interaction.extras[ANSWERED] = True


async def on_command_error(
    interaction: discord.Interaction[Any], error: app_commands.AppCommandError
) -> None:
    """The command tree's error handler."""
    if isinstance(error, app_commands.NoPrivateMessage):
        text = N_("Use this command in a server.")
    elif isinstance(error, app_commands.MissingPermissions):
        text = N_("You need the Manage Server permission for that.")
    elif isinstance(error, app_commands.CommandNotFound | app_commands.CommandSignatureMismatch):
        text = N_("This command has changed; please try again in a minute.")
    elif isinstance(error, app_commands.CheckFailure):
        text = N_("You cannot use this command here.")
    else:
        cause = error.original if isinstance(error, app_commands.CommandInvokeError) else error
        name = interaction.command.name if interaction.command else "?"
        await on_interaction_error(interaction, cause, f"command {name!r}")
        return
    await tell(interaction, text)


async def on_interaction_error(
    interaction: discord.Interaction[Any], error: BaseException, what: str
) -> None:
    """An unexpected failure while answering ``interaction`` (a command, a button)."""
    log.error(
        "%s failed for user %s in channel %s",
        what,
        interaction.user.id,
        interaction.channel_id,
        exc_info=error,
    )
    await tell(interaction, SORRY)


async def tell(interaction: discord.Interaction[Any], text: str) -> None:
    """Say ``text`` in the least surprising place.

    Not acknowledged yet: a private answer. Deferred but not answered: edit the "thinking"
    message (a follow-up would take its place anyway, public or not, as it was deferred).
    Already answered: a private follow-up, leaving the answer as it is. In the user's
    language: ``text`` is an English message of the catalogues (or already translated).
    """
    text = translate(negotiate(str(interaction.locale)), text)
    try:
        if not interaction.response.is_done():
            await interaction.response.send_message(text, ephemeral=True)
        elif interaction.extras.get(ANSWERED):
            await interaction.followup.send(text, ephemeral=True)
        else:
            await interaction.edit_original_response(content=text, embeds=[], view=None)
    except discord.HTTPException as error:
        log.warning(
            "could not tell user %s that something failed (HTTP %s, code %s)",
            interaction.user.id,
            error.status,
            error.code,
        )


# --- gateway events --------------------------------------------------------------------------


async def on_event_error(client: discord.Client, event: str, *args: Any) -> None:
    """The client's ``on_error``: called inside the ``except`` of a failed event handler."""
    message = args[0] if args and isinstance(args[0], discord.Message) else None
    if message is None:
        log.exception("handling the %s event failed", event)
        return
    log.exception("handling message %s in channel %s failed", message.id, message.channel.id)
    if client.is_closed():
        return
    # In the server's Discord language: not its setting, as the database may be what failed.
    language = negotiate(str(message.guild.preferred_locale)) if message.guild else ENGLISH
    try:
        await message.reply(translate(language, SORRY), mention_author=False)
    except discord.HTTPException as error:
        log.warning("could not tell the user that something failed (HTTP %s)", error.status)


# --- delivery --------------------------------------------------------------------------------


def delivery_outcome(row: OutboxRow, error: BaseException) -> Delivered:
    """What the outbox sender should do after ``error`` while delivering ``row``."""
    if isinstance(error, discord.RateLimited):
        return Delivered.wait(error.retry_after)
    if isinstance(error, discord.HTTPException):
        reason = f"HTTP {error.status}, code {error.code}"
        if error.status == 429:  # not retried by discord.py (no Via header: Cloudflare)
            return Delivered.wait(_retry_after(error))
        if error.status >= 500:
            return Delivered("retry", reason=reason)
        log.warning("Discord refused outbox row %d for %s: %s", row.id, row.target, reason)
        return Delivered("failed", reason=reason)
    if isinstance(error, aiohttp.ClientError | OSError | asyncio.TimeoutError):
        log.info("delivering outbox row %d failed for now: %r", row.id, error)
        return Delivered("retry", reason=type(error).__name__)
    log.error("delivering outbox row %d to %s failed", row.id, row.target, exc_info=error)
    return Delivered("retry", reason="unexpected error")


def _retry_after(error: discord.HTTPException) -> float:
    headers = getattr(error.response, "headers", None) or {}
    try:
        return float(headers.get("Retry-After", DEFAULT_RATE_LIMIT_WAIT))
    except (TypeError, ValueError):
        return DEFAULT_RATE_LIMIT_WAIT
