"""Moderators on Telegram: a group's admins take down uploads posted in the group.

``/takedown ID``, ``/takedown`` in reply to the bot's post, or the "Take down" button on
the bot's public post (every member sees it: who pressed it is checked, and anyone but an
admin gets an alert). Admins are asked with getChatAdministrators and remembered briefly,
so a burst of presses costs one request; each answer also tells the private /settings
picker which groups to offer the presser (see :mod:`bot.communityadmins`). An upload is
the group's when it was posted in this very chat. The rest is :mod:`bot.moderation`'s.

Telegram does not tell bots about deleted messages, so ``takedown_on_source_delete`` has
no effect here.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from telegram import Bot, Chat, Message, Update, User
from telegram.constants import ChatType
from telegram.error import TelegramError
from telegram.ext import ContextTypes

from adapters.telegram.delivery import Delivery, with_retry
from adapters.telegram.language import group_language
from adapters.telegram.trigger import PLATFORM
from bot.app import Core
from bot.i18n import ENGLISH, N_, negotiate, translate
from bot.moderation import Community, Moderator, Takedown

Context = ContextTypes.DEFAULT_TYPE
ADMINS_FOR = 60.0  # seconds a group's admin list is trusted
NOT_AN_ADMIN = N_("Only the group's admins can take uploads down.")
USAGE = N_("Usage: /takedown ID, or reply /takedown to my post.")


class Admins:
    """Who administers a group, asked at most once a minute per group."""

    def __init__(self, ttl: float = ADMINS_FOR) -> None:
        self.ttl = ttl
        self._known: dict[int, tuple[float, frozenset[int]]] = {}

    async def includes(self, bot: Bot, chat_id: int, user_id: int) -> bool:
        now = time.monotonic()
        known = self._known.get(chat_id)
        if known is None or now - known[0] > self.ttl:
            members = await bot.get_chat_administrators(chat_id)
            known = (now, frozenset(member.user.id for member in members))
            self._known[chat_id] = known
        return user_id in known[1]


class GroupTakedowns:
    def __init__(self, core: Core, delivery: Delivery) -> None:
        self.core = core
        self.delivery = delivery
        self.admins = Admins()

    async def on_command(self, update: Update, context: Context) -> None:
        """``/takedown ID`` or ``/takedown`` in reply to the bot's post."""
        message, user = update.effective_message, update.effective_user
        if message is None or user is None:
            return
        if message.chat.type not in (ChatType.GROUP, ChatType.SUPERGROUP):
            mine = negotiate(user.language_code)
            await _reply(
                message, translate(mine, "Use /takedown in the group the image was posted in.")
            )
            return
        ours = await group_language(self.core, message.chat_id)  # the group reads the answer
        # An admin posting anonymously writes as the group itself.
        anonymous = message.sender_chat is not None and message.sender_chat.id == message.chat_id
        if not anonymous and not await self._admin(context.bot, message.chat, user):
            await _reply(message, translate(ours, NOT_AN_ADMIN))
            return
        raw = (context.args or [""])[0].lstrip("#")
        replied = message.reply_to_message
        if raw.isdigit():
            upload_ids = [int(raw)]
        elif replied is not None and replied.from_user is not None and replied.from_user.is_bot:
            uploads = await self.core.library.uploads_in_message(
                PLATFORM, str(message.chat_id), str(replied.message_id)
            )
            upload_ids = [upload.id for upload in uploads if upload.active]
            if not upload_ids:
                await _reply(message, translate(ours, "That post shows nothing to take down."))
                return
        else:
            await _reply(message, translate(ours, USAGE))
            return
        results = await self._take_down(message.chat, user, upload_ids)
        await _reply(message, _summary(results, ours))

    async def on_button(self, update: Update, context: Context) -> None:
        """The "Take down" button (``td:ID``) on the bot's public post."""
        query = update.callback_query
        if query is None or query.data is None:
            return
        upload_id = int(query.data.partition(":")[2])
        message = query.message
        mine = negotiate(query.from_user.language_code)  # only the presser sees the answer
        if message is None or not isinstance(message, Message):
            await query.answer(translate(mine, "This button is no longer valid."))
            return
        if not await self._admin(context.bot, message.chat, query.from_user):
            await query.answer(translate(mine, NOT_AN_ADMIN), show_alert=True)
            return
        [result] = await self._take_down(message.chat, query.from_user, [upload_id])
        await query.answer(result.message_in(mine), show_alert=not result.taken_down)

    async def _admin(self, bot: Bot, chat: Chat, user: User) -> bool:
        try:
            admin = await self.admins.includes(bot, chat.id, user.id)
        except TelegramError:
            return False  # not known to be one: refused
        seen = self.core.community_admins
        if admin:
            await seen.seen(PLATFORM, chat.id, user.id, chat.title or str(chat.id))
        else:
            await seen.gone(PLATFORM, chat.id, user.id)
        return admin

    async def _take_down(self, chat: Chat, user: User, upload_ids: Sequence[int]) -> list[Takedown]:
        group = str(chat.id)

        async def holds(chat_id: str) -> bool:
            return chat_id == group

        community = Community(PLATFORM, group, holds, chat.title or "")
        moderator = Moderator(str(user.id), user.full_name)
        return await self.core.moderation.take_down_each(
            upload_ids, moderator, community, self.delivery.refresh
        )


async def _reply(message: Message, text: str) -> None:
    await with_retry(lambda: message.reply_text(text))


def _summary(results: Sequence[Takedown], language: str = ENGLISH) -> str:
    return "\n".join(result.message_in(language) for result in results)
