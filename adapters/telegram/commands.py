"""Commands and buttons: /help, /mine, /delete, /autorehost, and the Delete buttons."""

from __future__ import annotations

from telegram import BotCommand, Message, Update, User
from telegram.constants import ChatMemberStatus, ChatType
from telegram.ext import ContextTypes

from adapters.telegram import render
from adapters.telegram.deleting import Deletions
from adapters.telegram.delivery import Delivery, with_retry
from adapters.telegram.language import group_language
from adapters.telegram.trigger import PLATFORM, topic_key, topic_of
from bot.app import Core
from bot.config import TelegramSettings
from bot.i18n import N_, negotiate, translate
from bot.presenting import chat_expiry_phrase, parse_expiry_argument

Context = ContextTypes.DEFAULT_TYPE
# Listed only when the operator allows groups their own host (``[communities]
# allow_own_host``): elsewhere it can only answer that it is not allowed. The list is sent
# at start, with the configuration read; a change to that section takes a restart anyway.
OWN_HOST = BotCommand(
    "ownhost", N_("admins, in private: /ownhost GROUP_ID: set a group's own image host")
)
COMMANDS = [
    BotCommand("upload", N_("rehost the photo this replies to (or captions)")),
    BotCommand("mine", N_("your live uploads, with delete buttons (private)")),
    BotCommand("delete", N_("delete one of your uploads: /delete ID (private)")),
    BotCommand("autorehost", N_("admins: /autorehost on|off [duration] [here: this topic only]")),
    BotCommand("nsfw", N_("admins: /nsfw on|off: mark every image from here NSFW")),
    BotCommand("takedown", N_("admins: /takedown ID, or reply to my post: take an image down")),
    BotCommand("settings", N_("admins: the group's settings (in private: choose a group)")),
    OWN_HOST,
    BotCommand("help", N_("how to use this bot")),
]


def commands_in(language: str, *, own_host: bool = False) -> list[BotCommand]:
    """The command list with its descriptions in ``language`` (for setMyCommands);
    ``own_host``: with /ownhost."""
    return [
        BotCommand(c.command, translate(language, c.description))
        for c in COMMANDS
        if own_host or c is not OWN_HOST
    ]


AUTOREHOST_USAGE = N_(
    "Usage: /autorehost on [duration] or /autorehost off; in a topic of a group with "
    "topics, add “here” to switch only that topic."
)


async def answer(message: Message, text: str) -> None:
    """Reply to a command, waiting out a flood wait (an admin's command must be answered)."""
    await with_retry(lambda: message.reply_text(text))


class Commands:
    def __init__(
        self, core: Core, settings: TelegramSettings, delivery: Delivery, deletions: Deletions
    ) -> None:
        self.core = core
        self.settings = settings
        self.delivery = delivery
        self.deletions = deletions

    async def on_help(self, update: Update, context: Context) -> None:
        if update.effective_message is not None:
            language = negotiate(
                update.effective_user.language_code if update.effective_user else None
            )
            await update.effective_message.reply_text(render.help_text(language))

    async def on_mine(self, update: Update, context: Context) -> None:
        message, user = update.effective_message, update.effective_user
        if message is None or user is None:
            return
        language = negotiate(user.language_code)
        if message.chat.type != ChatType.PRIVATE:
            await message.reply_text(translate(language, "Ask me for /mine in a private chat."))
            return
        uploads = await self.core.library.live_uploads(PLATFORM, str(user.id))
        text, keyboard = render.mine(uploads, language)
        await with_retry(
            lambda: self.delivery.send(message.chat_id, text, keyboard=keyboard, private=True)
        )

    async def on_delete(self, update: Update, context: Context) -> None:
        message, user = update.effective_message, update.effective_user
        if message is None or user is None:
            return
        language = negotiate(user.language_code)
        if message.chat.type != ChatType.PRIVATE:
            await message.reply_text(
                translate(language, "Send /delete ID to me in a private chat.")
            )
            return
        raw = (context.args or [""])[0].lstrip("#")
        if not raw.isdigit():
            await message.reply_text(
                translate(language, "Usage: /delete ID (the number shown in /mine).")
            )
            return
        await self.deletions.ask_to_confirm(message.chat_id, user.id, int(raw), language)

    async def on_nsfw(self, update: Update, context: Context) -> None:
        """``/nsfw on|off``: every image from this chat goes to the hosts marked NSFW
        (a group's admins decide; in a private chat, its user)."""
        message, user = update.effective_message, update.effective_user
        if message is None or user is None:
            return
        ours = await self._language(message, user)
        if message.chat.type != ChatType.PRIVATE:
            member = await context.bot.get_chat_member(message.chat_id, user.id)
            if member.status not in (ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.OWNER):
                await answer(message, translate(ours, "Only the group's admins can change that."))
                return
        switch = (context.args or [""])[0].lower()
        if switch not in ("on", "off"):
            await answer(message, translate(ours, "Usage: /nsfw on or /nsfw off"))
            return
        await self.core.library.set_nsfw(PLATFORM, str(message.chat_id), switch == "on")
        await answer(
            message,
            translate(
                ours, "Images rehosted here are now marked NSFW on the image hosts that support it."
            )
            if switch == "on"
            else translate(ours, "Images rehosted here are no longer marked NSFW."),
        )

    async def _language(self, message: Message, user: User) -> str:
        """An answer in the chat: the user's language in private, the group's in a group."""
        if message.chat.type == ChatType.PRIVATE:
            return negotiate(user.language_code)
        return await group_language(self.core, message.chat_id)

    async def on_autorehost(self, update: Update, context: Context) -> None:
        message, user = update.effective_message, update.effective_user
        if message is None or user is None:
            return
        ours = await self._language(message, user)
        if message.chat.type == ChatType.PRIVATE:
            await answer(
                message, translate(ours, "Use /autorehost in a group, as one of its admins.")
            )
            return
        member = await context.bot.get_chat_member(message.chat_id, user.id)
        if member.status not in (ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.OWNER):
            await answer(
                message, translate(ours, "Only the group's admins can change auto-rehost.")
            )
            return
        args = context.args or []
        switch = args[0].lower() if args else ""
        rest = [arg for arg in args[1:] if arg.lower() != "here"]
        here = len(rest) < len(args[1:])
        if switch not in ("on", "off"):
            await answer(message, translate(ours, AUTOREHOST_USAGE))
            return
        thread_id = topic_of(message)
        if here and thread_id is None:
            await answer(
                message,
                translate(
                    ours,
                    "“here” switches one topic of a group with topics: send it in that topic. "
                    "Without it, /autorehost applies to the whole group.",
                ),
            )
            return
        given, duration, error = parse_expiry_argument(" ".join(rest) or None)
        if error:
            await answer(message, error.in_language(ours) + ".")
            return
        enabled = switch == "on"
        if (
            not here
            and not enabled
            and message.chat_id in self.core.configured_auto_rehost(PLATFORM)
        ):
            await answer(
                message,
                translate(
                    ours,
                    "This group is set to auto-rehost in the bot's configuration; "
                    "ask the bot's operator to change it.",
                ),
            )
            return
        key = topic_key(message.chat_id, thread_id) if here and thread_id else str(message.chat_id)
        updated = await self.core.library.set_auto_rehost(
            PLATFORM, key, enabled, duration if given else "keep"
        )
        if enabled:
            label = updated.default_expiration
            if here and label is None:  # the topic keeps the group's expiry
                group = await self.core.library.chat_settings(PLATFORM, str(message.chat_id))
                label = group.default_expiration
            expiry = chat_expiry_phrase(label, ours)
            if here:
                text = translate(
                    ours,
                    "Auto-rehost is on in this topic: every photo and image file here is"
                    " rehosted ({expiry}).",
                    expiry=expiry,
                )
            else:
                text = translate(
                    ours,
                    "Auto-rehost is on for the whole group: every photo and image file in it is"
                    " rehosted ({expiry}).",
                    expiry=expiry,
                )
            if not await self._sees_every_message(context, message.chat_id):
                text += "\n" + translate(
                    ours,
                    "But in privacy mode I only see commands here: make me an admin of this "
                    "group (or turn privacy mode off with @BotFather) so that I see the photos.",
                )
        elif here:
            text = translate(ours, "Auto-rehost is off in this topic.")
        else:
            text = translate(ours, "Auto-rehost is off for the whole group.")
        if here:
            text += "\n" + translate(
                ours, "The rest of the group follows /autorehost without “here”."
            )
        elif message.chat.is_forum:
            text += "\n" + translate(
                ours, "Topics switched on their own (/autorehost on|off here) keep their setting."
            )
        await answer(message, text)

    @staticmethod
    async def _sees_every_message(context: Context, chat_id: int) -> bool:
        if context.bot.can_read_all_group_messages:
            return True  # privacy mode is off
        me = await context.bot.get_chat_member(chat_id, context.bot.id)
        return me.status in (ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.OWNER)

    async def on_button(self, update: Update, context: Context) -> None:
        query = update.callback_query
        if query is None or query.data is None:
            return
        kind, _, raw = query.data.partition(":")
        user_id = query.from_user.id
        language = negotiate(query.from_user.language_code)
        if not raw.isdigit() or kind not in ("del", "delok", "delno"):
            await query.answer(translate(language, "This button is no longer valid."))
            return
        upload_id = int(raw)
        chat_id = query.message.chat.id if query.message is not None else user_id
        if kind == "del":
            await query.answer()
            await self.deletions.ask_to_confirm(chat_id, user_id, upload_id, language)
        elif kind == "delno":
            await query.answer(translate(language, "Kept."))
            await query.edit_message_text(translate(language, "Kept #{id}.", id=upload_id))
        else:
            await query.answer()
            text = await self.deletions.delete(user_id, upload_id, language)
            await query.edit_message_text(
                text, parse_mode="HTML", link_preview_options=render.NO_PREVIEW
            )
