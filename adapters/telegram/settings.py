"""``/settings``: a group's admins see and change its settings with an inline keyboard.

In a group, ``/settings`` (admins only, checked with getChatMember) answers with every
value, who changed what last, and buttons: switches (NSFW, language, taking down when the
source is deleted) and menus for the hosts and the expiries. Every press is checked again
(anyone in the group can press a button): only the group's admins change anything.

In a private chat, ``/settings`` offers the groups where the bot has seen the user as an
admin (kept in the database: see :mod:`bot.communityadmins`), or ``/settings GROUP_ID``
opens one directly; the same keyboard then works there, each press checked as above.
Quotas are numbers: ``/settings quota IMAGES MEGABYTES``. A group's own image host is
set only in private, with ``/ownhost GROUP_ID DIALECT ENDPOINT API_KEY``
(``/ownhost GROUP_ID off`` removes it): the message holding the key is deleted as soon as
it is read, and the key is never shown back. Sent in a group by mistake, it is deleted
there too, and nothing is saved.
"""

from __future__ import annotations

import logging
from typing import Any

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Message, Update
from telegram.constants import ChatMemberStatus, ChatType
from telegram.error import BadRequest, ChatMigrated, Forbidden, TelegramError
from telegram.ext import ContextTypes

from adapters.telegram.delivery import with_retry
from adapters.telegram.language import group_language
from adapters.telegram.trigger import PLATFORM
from bot.app import Core
from bot.i18n import ENGLISH, N_, format_duration, negotiate, translate
from bot.managing import MEMBER_LANGUAGE, UNSET, Managing, SettingError

log = logging.getLogger(__name__)
Context = ContextTypes.DEFAULT_TYPE
PREFIX = "set"  # callback data: set:CHAT:ACTION
ADMINS = (ChatMemberStatus.ADMINISTRATOR, ChatMemberStatus.OWNER)
REFUSED = N_("Only the group's admins can change its settings.")
OWNHOST_USAGE = N_(
    "Usage, in a private chat with me: /ownhost GROUP_ID chevereto|imgbb ENDPOINT API_KEY,"
    " or /ownhost GROUP_ID off"
)
QUOTA_USAGE = N_(
    "Usage: /settings quota IMAGES_PER_MEMBER MEGABYTES_PER_DAY (0 or more; - for none)"
)
LANGUAGE_BUTTONS = (("en", "English"), ("es", "Español"), ("zh_Hans", "简体中文"))


def _switch(value: bool | None) -> str:
    return "on" if value else "off"


class GroupSettings:
    def __init__(self, core: Core) -> None:
        self.core = core
        self.managing = Managing(core, PLATFORM)
        self.admins = core.community_admins

    async def is_admin(self, context: Context, chat_id: int, user_id: int) -> bool:
        """Whether ``user_id`` administers ``chat_id`` now. A definite no (a plain member,
        or a chat the bot cannot see any more) also stops the picker offering the group to
        them; a failure to ask (a timeout, a flood wait) only refuses this once."""
        try:
            member = await context.bot.get_chat_member(chat_id, user_id)
        except (BadRequest, Forbidden, ChatMigrated):
            await self.admins.gone(PLATFORM, chat_id, user_id)
            return False
        except TelegramError:
            return False
        if member.status in ADMINS:
            return True
        await self.admins.gone(PLATFORM, chat_id, user_id)
        return False

    # --- /settings ------------------------------------------------------------------------

    async def on_command(self, update: Update, context: Context) -> None:
        message, user = update.effective_message, update.effective_user
        if message is None or user is None:
            return
        args = list(context.args or [])
        if message.chat.type == ChatType.PRIVATE:
            if args and args[0].lstrip("-").isdigit():
                chat_id = int(args.pop(0))
            else:
                await self._pick(message, user.id, negotiate(user.language_code))
                return
        else:
            chat_id = message.chat_id
        private = message.chat.type == ChatType.PRIVATE
        language = await self._language(private, user, chat_id)
        if not await self.is_admin(context, chat_id, user.id):
            await _reply(message, translate(language, REFUSED))
            return
        title = await self._title(context, chat_id)
        await self.admins.seen(PLATFORM, chat_id, user.id, title)
        if args and args[0].lower() == "quota":
            await self._quota(message, chat_id, user, args[1:], language)
            return
        text, keyboard = await self.view(chat_id, title, language=language)
        await with_retry(lambda: message.reply_text(text, reply_markup=keyboard))

    async def _language(self, private: bool, user: Any, chat_id: int) -> str:
        """Where the settings show: the user's language in private, the group's in it."""
        if private:
            return negotiate(getattr(user, "language_code", None))
        return await group_language(self.core, chat_id)

    async def _pick(self, message: Message, user_id: int, language: str = ENGLISH) -> None:
        known = await self.admins.of(PLATFORM, user_id)
        if not known:
            await _reply(
                message,
                translate(
                    language,
                    "Send /settings in a group where you are an admin, or /settings GROUP_ID here.",
                ),
            )
            return
        # Opening one checks again that the user administers it (on_button).
        rows = [
            [InlineKeyboardButton(group.title, callback_data=f"{PREFIX}:{group.community_id}:open")]
            for group in known
        ]
        await with_retry(
            lambda: message.reply_text(
                translate(language, "Which group?"), reply_markup=InlineKeyboardMarkup(rows)
            )
        )

    async def _quota(
        self, message: Message, chat_id: int, user: Any, args: list[str], language: str
    ) -> None:
        if len(args) != 2:
            await _reply(message, translate(language, QUOTA_USAGE))
            return
        names = ("quota_images_per_member", "quota_bytes_per_day")
        values = {name: UNSET if raw == "-" else raw for name, raw in zip(names, args, strict=True)}
        try:
            await self.managing.change_all(str(chat_id), str(user.id), _name(user), values)
        except SettingError as error:
            why = error.in_language(language)
            await _reply(message, translate(language, "Not saved: {error}", error=why))
            return
        await _reply(message, translate(language, "Quotas saved."))

    async def _title(self, context: Context, chat_id: int) -> str:
        try:
            chat = await context.bot.get_chat(chat_id)
        except TelegramError:
            return str(chat_id)
        return chat.title or str(chat_id)

    async def view(
        self, chat_id: int, title: str, menu: str = "", *, language: str = ENGLISH
    ) -> tuple[str, InlineKeyboardMarkup]:
        """The settings text and its keyboard (``menu``: "hosts", "default_expiration" or
        "max_expiration" show that menu's choices instead of the main buttons)."""
        community = str(chat_id)
        settings = await self.managing.settings(community)
        text = await self.managing.describe(community, title, language)

        def t(text: str, **params: Any) -> str:
            return translate(language, text, **params)

        def button(label: str, action: str) -> InlineKeyboardButton:
            return InlineKeyboardButton(label, callback_data=f"{PREFIX}:{chat_id}:{action}")

        rows: list[list[InlineKeyboardButton]] = []
        if menu == "hosts":
            chosen = settings.hosts or ()
            for name in self.managing.host_names():
                mark = "✓ " if name in chosen else ""
                rows.append([button(f"{mark}{name}", f"h={name}")])
            rows.append([button(t("All hosts"), "h=*"), button(t("Back"), "open")])
        elif menu in ("default_expiration", "max_expiration"):
            code = "d" if menu == "default_expiration" else "x"
            durations = [
                (d.label(), format_duration(d, language)) for d in self.managing.expiry_durations()
            ]
            choices = [*durations, ("never", t("never"))]
            row: list[InlineKeyboardButton] = []
            for label, shown in choices:
                row.append(button(shown, f"{code}={label}"))
                if len(row) == 3:
                    rows.append(row)
                    row = []
            if row:
                rows.append(row)
            rows.append([button(t("The bot's") if code == "d" else t("Any"), f"{code}={UNSET}"),
                         button(t("Back"), "open")])  # fmt: skip
        else:
            takedown = settings.takedown_on_source_delete
            rows.append(
                [
                    button(
                        t("NSFW: {state}", state=t(_switch(settings.nsfw))),
                        f"nsfw={_switch(not settings.nsfw)}",
                    ),
                    button(
                        t("Take down on source delete: {state}", state=t(_switch(takedown))),
                        f"takedown_on_source_delete={_switch(not takedown)}",
                    ),
                ]
            )
            rows.append(
                [button(shown, f"language={code}") for code, shown in LANGUAGE_BUTTONS]
                + [button(t("Each member's"), f"language={MEMBER_LANGUAGE}")]
            )
            rows.append([
                button(t("Hosts…"), "m=hosts"),
                button(t("Default expiry…"), "m=default_expiration"),
                button(t("Longest expiry…"), "m=max_expiration"),
            ])  # fmt: skip
        return text, InlineKeyboardMarkup(rows)

    # --- the buttons ----------------------------------------------------------------------

    async def on_button(self, update: Update, context: Context) -> None:
        query = update.callback_query
        if query is None or query.data is None:
            return
        _, raw_chat, action = query.data.split(":", 2)
        chat_id, user = int(raw_chat), query.from_user
        shown_in = query.message.chat if query.message is not None else None
        private = shown_in is None or shown_in.type == ChatType.PRIVATE
        language = await self._language(private, user, chat_id)
        if not await self.is_admin(context, chat_id, user.id):
            log.info("settings refused to user %s in chat %s", user.id, chat_id)
            # The alert shows to the presser alone: in their language.
            await query.answer(translate(negotiate(user.language_code), REFUSED), show_alert=True)
            return
        title = await self._title(context, chat_id)
        await self.admins.seen(PLATFORM, chat_id, user.id, title)
        community = str(chat_id)
        menu, note = "", ""
        name, _, value = action.partition("=")
        try:
            if name == "m":
                menu = value
            elif name == "h":
                current = (await self.managing.settings(community)).hosts or ()
                if value == "*":
                    chosen: list[str] = []
                elif value in current:
                    chosen = [h for h in current if h != value]
                else:
                    chosen = [h for h in self.managing.host_names() if h in (*current, value)]
                await self.managing.change(community, str(user.id), _name(user), "hosts", chosen)
                menu = "hosts"
            elif name in ("d", "x"):
                setting = "default_expiration" if name == "d" else "max_expiration"
                await self.managing.change(community, str(user.id), _name(user), setting, value)
            elif name != "open":
                await self.managing.change(community, str(user.id), _name(user), name, value)
        except SettingError as error:
            note = error.in_language(negotiate(user.language_code))  # shown to the presser
        await query.answer(note or None)
        text, keyboard = await self.view(chat_id, title, menu, language=language)
        if query.message is not None:
            await with_retry(lambda: query.edit_message_text(text, reply_markup=keyboard))

    # --- /ownhost -------------------------------------------------------------------------

    async def on_own_host(self, update: Update, context: Context) -> None:
        message, user = update.effective_message, update.effective_user
        if message is None or user is None:
            return
        args = list(context.args or [])
        if len(args) >= 3 or message.chat.type != ChatType.PRIVATE:
            await _forget(message)  # it may hold a key: no longer on the chat
        mine = negotiate(user.language_code)
        if message.chat.type != ChatType.PRIVATE:
            ours = await group_language(self.core, message.chat_id)
            deleted = translate(ours, "Deleted: send /ownhost to me in private.")
            await _reply_in(context, message.chat_id, deleted)
            return
        if len(args) not in (2, 4) or not args[0].lstrip("-").isdigit():
            await _reply_in(context, message.chat_id, translate(mine, OWNHOST_USAGE))
            return
        chat_id = int(args[0])
        if not await self.is_admin(context, chat_id, user.id):
            await _reply_in(context, message.chat_id, translate(mine, REFUSED))
            return
        community = str(chat_id)
        try:
            if len(args) == 2:
                if args[1].lower() != "off":
                    raise SettingError(OWNHOST_USAGE)
                await self.managing.communities.change(
                    PLATFORM, community, str(user.id), _name(user), own_host=None
                )
                text = translate(mine, "Own host removed.")
            else:
                dialect, endpoint, key = args[1:]
                saved = await self.managing.set_own_host(
                    community, str(user.id), _name(user), dialect, endpoint, key
                )
                text = saved.in_language(mine)
        except SettingError as error:
            text = translate(mine, "Not saved: {error}", error=error.in_language(mine))
        await _reply_in(context, message.chat_id, text)


def _name(user: Any) -> str:
    return str(user.username or user.full_name or user.id)


async def _reply(message: Message, text: str) -> None:
    await with_retry(lambda: message.reply_text(text))


async def _reply_in(context: Context, chat_id: int, text: str) -> None:
    """Not a reply: the message it would answer may be deleted."""
    await with_retry(lambda: context.bot.send_message(chat_id, text))


async def _forget(message: Message) -> None:
    try:
        await message.delete()
    except TelegramError as error:
        log.warning("could not delete a message holding an API key: %s", error)


class OwnHostLogFilter(logging.Filter):
    """python-telegram-bot logs the updates it fetches and processes at DEBUG, an
    /ownhost message (with its API key) included, before the bot has read it: such
    values are left out of those records."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(_holds_key(a) for a in record.args):
            record.args = tuple(
                "<updates holding an /ownhost message>" if _holds_key(a) else a for a in record.args
            )
        return True


def _holds_key(value: object) -> bool:
    if isinstance(value, str | int | float | None):
        return False
    return "/ownhost" in repr(value)


for _name_of_logger in ("telegram.ext.Application", "telegram.ext.ExtBot", "telegram.Bot"):
    logging.getLogger(_name_of_logger).addFilter(OwnHostLogFilter())
