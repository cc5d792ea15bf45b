"""Delivery: outbox rows become Discord messages.

The core's reply plan says what is said and to whom; this module says it on Discord:

- PUBLIC, answering a command: the command's deferred "thinking" response is edited into
  the answer, through the interaction's webhook. Its token works for 15 minutes after
  the interaction; when it has expired or has less than :data:`TOKEN_MARGIN` left, or
  Discord refuses the edit (401 code 50027, or any other refusal), the answer goes to the
  channel as an ordinary message naming the user (a reply to the source message when
  there is one), and a "thinking" response still there is removed if Discord allows it.
- PRIVATE, in place (a command's delete links): an ephemeral follow-up, but only when the
  original response holds the public answer, since the first follow-up after a deferral
  takes the "thinking" message's place, public, whatever its flags. Otherwise, by DM.
- PRIVATE, by DM (auto-rehost): to the owner's DMs. Closed DMs (403, code 50007) make the
  row "unreachable"; the public answer then says the links wait in /mine (a command's
  answer, already sent, gets that line as a message of its own).
- PRIVATE, in a DM with the bot (images sent to it): a reply there.
- PUBLIC, in a channel (auto-rehost): a reply to the source message, with a line saying
  where the delete links went.

A reply whose source message was deleted meanwhile (50035) is sent again as a plain
message naming the user. Every message carrying a delete link is sent with
SUPPRESS_EMBEDS. Channel and DM messages carry the row's nonce, and discord.py sends
``enforce_nonce`` with every nonce, so sending a row again after a crash returns the
message made the first time instead of a second one. Webhook messages have no nonce:
editing the original response again changes nothing; an ephemeral follow-up sent again
after a crash between sending it and recording it shows twice, to its owner only.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, cast

import discord

from adapters.discord import errors, render
from adapters.discord.intake import InteractionRef
from adapters.discord.sources import PLATFORM
from adapters.discord.views import delete_buttons, public_buttons
from bot import metrics
from bot.app import Core
from bot.i18n import languages_of, negotiate
from bot.outbox import OutboxRow
from bot.presenting import ResultLine
from bot.replyplan import lines, uploads_of
from bot.sending import Delivered
from bot.states import Visibility
from bot.store import BotMessage

log = logging.getLogger(__name__)

# An interaction token with less than this left is not used for the public answer: the
# delete links must follow it through the same token.
TOKEN_MARGIN = 60.0
Refresh = Callable[[Sequence[BotMessage]], Awaitable[None]]
CANNOT_DM = 50007  # Discord: "Cannot send messages to this user"
# Discord's answers to a spent interaction token: "Invalid Webhook Token", "Unknown Webhook".
TOKEN_REFUSED = (50027, 10015)
# discord.py puts a webhook message id into the request path as it is: this is Discord's
# name for an interaction's original response.
ORIGINAL: Final = cast(int, "@original")


def source_gone(error: discord.HTTPException) -> bool:
    """Whether a reply failed because the message it answers no longer exists."""
    return error.code == 50035 and "message_reference" in error.text


class Delivery:
    def __init__(
        self,
        client: discord.Client,
        core: Core,
        *,
        clock: Callable[[], float] = time.time,
        token_margin: float = TOKEN_MARGIN,
        refresh: Refresh | None = None,
    ) -> None:
        self.client = client
        self.core = core
        self._clock = clock
        self.token_margin = token_margin
        self.refresh = refresh  # re-renders bot posts from the store (see deleting.py)

    async def deliver(self, row: OutboxRow) -> Delivered:
        """Send one outbox row; how it went, for the outbox sender to record."""
        try:
            return await self._deliver(row)
        except Exception as error:
            return errors.delivery_outcome(row, error)

    async def _deliver(self, row: OutboxRow) -> Delivered:
        message = row.message
        if message.refresh_message_id is not None and message.chat_id is not None:
            # Its uploads changed (moved to another host): re-render it from the store.
            if self.refresh is not None:
                post = BotMessage(
                    0, PLATFORM, message.chat_id, message.refresh_message_id, message.visibility
                )
                await self.refresh([post])
            return Delivered.sent(message.chat_id, message.refresh_message_id)
        batch = await self.core.rehost.queue.batch(row.batch)
        if batch is not None and batch.context.get("backfill") is not None:
            # A backfilled message is answered by its backfill's summary, not on its own.
            return Delivered("sent")
        command = InteractionRef.from_context(batch.context) if batch is not None else None
        about = batch.chat_title if batch is not None else None
        # The owner reads the private part in their language, the chat the public one.
        mine, ours = languages_of(batch.context if batch is not None else None)
        if batch is None and message.language:  # a notice from the core
            mine = ours = negotiate(message.language)
        records = await uploads_of(message, self.core.library.upload)
        shown = lines(message, records.get)
        if message.visibility is Visibility.PUBLIC:
            if command is not None:
                return await self._public_for_command(row, shown, command, ours, mine)
            return await self._public_in_channel(row, shown, ours, mine)
        if message.in_place:
            if command is None:  # nothing to show it in place with: the owner's DMs
                return await self._private_by_dm(row, shown, about, mine)
            return await self._private_in_place(row, shown, command, about, mine)
        if message.chat_id is None:
            return await self._private_by_dm(row, shown, message.about_chat, mine)
        return await self._private_in_chat(row, shown, mine)

    # --- public ----------------------------------------------------------------------------

    async def _public_in_channel(
        self, row: OutboxRow, shown: list[ResultLine], language: str, owners: str
    ) -> Delivered:
        """``language``: the chat's; ``owners``: the owner's (a line addressed to them)."""
        message = row.message
        note = (
            await self._where_private_went(row, owners) if message.tells_where_private_went else ""
        )
        assert message.chat_id is not None, "a public message goes to a chat"
        channel_id = int(message.chat_id)
        sent = await self._send(
            row,
            channel_id,
            lambda named: render.public_text(
                shown,
                message.skipped,
                note,
                for_user=render.mention(message.owner_id) if named else None,
                language=language,
            ),
            embeds=render.public_embeds(shown),
            view=public_buttons(shown, language),
            private=False,
        )
        return Delivered.sent(str(channel_id), str(sent.id))

    async def _public_for_command(
        self,
        row: OutboxRow,
        shown: list[ResultLine],
        command: InteractionRef,
        language: str,
        owners: str,
    ) -> Delivered:
        message = row.message
        if not command.usable(self._clock(), self.token_margin):
            metrics.EXPIRED_TOKENS.inc()  # answered in the channel, below
        else:
            try:
                original = await self._webhook(command).edit_message(
                    ORIGINAL,
                    content=render.public_text(shown, message.skipped, language=language),
                    embeds=render.public_embeds(shown),
                    view=public_buttons(shown, language),
                )
            except discord.HTTPException as error:
                if error.status >= 500 or error.status == 429:
                    raise
                log.info(
                    "could not edit the response to interaction %s (HTTP %s, code %s); "
                    "answering in the channel",
                    command.interaction_id,
                    error.status,
                    error.code,
                )
                if error.code in TOKEN_REFUSED:
                    metrics.EXPIRED_TOKENS.inc()
            else:
                return Delivered.sent(str(command.channel_id), str(original.id))
        # The token is (nearly) spent: an ordinary message, which needs no token.
        sent = await self._send(
            row,
            command.channel_id,
            lambda named: render.public_text(
                shown, message.skipped, for_user=render.mention(message.owner_id), language=language
            ),
            embeds=render.public_embeds(shown),
            view=public_buttons(shown, language),
            private=False,
        )
        await self._clear_thinking(command)
        return Delivered.sent(str(command.channel_id), str(sent.id))

    async def _clear_thinking(self, command: InteractionRef) -> None:
        """Remove a "thinking" response the answer did not go into, while Discord still
        takes the token."""
        if not command.usable(self._clock()):
            return
        try:
            await self._webhook(command).delete_message(ORIGINAL)
        except discord.HTTPException as error:
            log.debug("the original response stays (HTTP %s, code %s)", error.status, error.code)

    async def _where_private_went(self, row: OutboxRow, language: str) -> str:
        outcome = await self.core.rehost.outbox.private_outcome(row.batch)
        owner = render.mention(row.message.owner_id)
        if outcome == "sent":
            return render.dm_sent_note(language)
        if outcome == "unreachable":
            return render.dm_closed_note(owner, language)
        return render.dm_failed_note(owner, language)

    # --- private ---------------------------------------------------------------------------

    async def _private_in_place(
        self,
        row: OutboxRow,
        shown: list[ResultLine],
        command: InteractionRef,
        about: str | None,
        language: str,
    ) -> Delivered:
        if command.usable(self._clock()):
            webhook = self._webhook(command)
            try:
                original = await webhook.fetch_message(ORIGINAL)
                if not original.flags.loading:  # it holds the public answer
                    await webhook.send(
                        render.private_text(
                            shown,
                            heading=render.private_heading(
                                shown, in_place=True, about=None, language=language
                            ),
                            language=language,
                        ),
                        ephemeral=True,
                        suppress_embeds=True,
                        view=delete_buttons(shown, language) or discord.utils.MISSING,
                        wait=True,
                    )
                    # Ephemeral: nothing the bot could edit later, so nothing to remember.
                    return Delivered("sent")
            except discord.HTTPException as error:
                if error.status >= 500 or error.status == 429:
                    raise
                log.info(
                    "no follow-up to interaction %s (HTTP %s, code %s); delete links by DM",
                    command.interaction_id,
                    error.status,
                    error.code,
                )
        return await self._private_by_dm(row, shown, about, language, tell_in=command.channel_id)

    async def _private_by_dm(
        self,
        row: OutboxRow,
        shown: list[ResultLine],
        about: str | None,
        language: str,
        *,
        tell_in: int | None = None,
    ) -> Delivered:
        """To the owner's DMs. ``tell_in``: a channel to say so in if their DMs are closed
        (when the public answer, already sent, could not say it)."""
        owner_id = row.message.owner_id
        heading = render.private_heading(shown, in_place=False, about=about, language=language)
        note = row.message.note_in(language)
        if note:
            heading = discord.utils.escape_markdown(note)
        text = render.private_text(shown, heading=heading, language=language)
        try:
            channel = await self.client.create_dm(discord.Object(int(owner_id)))
            sent = await channel.send(
                text,
                suppress_embeds=True,
                view=delete_buttons(shown, language) or discord.utils.MISSING,
                nonce=row.nonce,
            )
        except discord.Forbidden as error:
            if error.code != CANNOT_DM:
                raise
            log.info("cannot DM user %s their delete links (DMs closed)", owner_id)
            if tell_in is not None:
                await self.client.get_partial_messageable(tell_in).send(
                    render.dm_closed_note(render.mention(owner_id), language).strip(),
                    nonce=row.nonce,
                )
            return Delivered("unreachable")
        return Delivered.sent(str(channel.id), str(sent.id))

    async def _private_in_chat(
        self, row: OutboxRow, shown: list[ResultLine], language: str
    ) -> Delivered:
        """The owner's DM with the bot, where they sent the images."""
        message = row.message
        assert message.chat_id is not None
        text = render.private_text(shown, skipped=message.skipped, language=language)
        try:
            sent = await self._send(
                row,
                int(message.chat_id),
                lambda named: text,
                embeds=[],
                view=delete_buttons(shown, language),
                private=True,
            )
        except discord.Forbidden as error:
            if error.code != CANNOT_DM:
                raise
            log.info("cannot answer user %s in their DMs (DMs closed)", message.owner_id)
            return Delivered("unreachable")
        return Delivered.sent(message.chat_id, str(sent.id))

    # --- sending ---------------------------------------------------------------------------

    async def _send(
        self,
        row: OutboxRow,
        channel_id: int,
        text: Callable[[bool], str],
        *,
        embeds: Sequence[discord.Embed],
        view: discord.ui.View | None,
        private: bool,
    ) -> discord.Message:
        """Send to a channel (or DM channel) with the row's nonce: as a reply to the row's
        source message if it has one; if that message is gone, a plain message
        (``text(True)``, which names the user)."""
        channel = self.client.get_partial_messageable(channel_id)
        reply_to = row.message.reply_to
        if reply_to is not None:
            source = discord.MessageReference(message_id=int(reply_to), channel_id=channel_id)
            try:
                return await channel.send(
                    text(False),
                    embeds=list(embeds),
                    view=view or discord.utils.MISSING,
                    suppress_embeds=private,
                    nonce=row.nonce,
                    reference=source,
                    mention_author=False,
                )
            except discord.HTTPException as error:
                if not source_gone(error):
                    raise
                log.info("message %s was deleted; answering it without a reply", reply_to)
        return await channel.send(
            text(True),
            embeds=list(embeds),
            view=view or discord.utils.MISSING,
            suppress_embeds=private,
            nonce=row.nonce,
        )

    def _webhook(self, command: InteractionRef) -> discord.Webhook:
        webhook = discord.Webhook.partial(command.application_id, command.token, client=self.client)
        # An interaction's webhook is an application webhook, the only kind that may send
        # ephemeral messages (discord.py's Interaction.followup builds it the same way).
        webhook.type = discord.WebhookType.application
        return webhook
