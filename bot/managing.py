"""What a community's managers see and change, the same on every platform.

The adapters draw the controls (Discord select menus and modals, Telegram inline
keyboards) and check who may use them; this module reads the values the controls carry
(``"on"``, ``"1d"``, ``"default"``...), checks them, changes them through
:meth:`bot.community.Communities.change` (so each change is recorded with who made it),
and writes the settings message. An own host's API key goes into the sealed record and
nowhere else: it is never part of a text made here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bot import settingtexts
from bot.app import Core
from bot.community import SETTINGS, Communities, CommunitySettings
from bot.errors import ExpirationError, RehostError
from bot.expiration import Duration, offered_durations, parse_duration
from bot.i18n import ENGLISH, LANGUAGES, N_, Said, format_duration, translate
from bot.linkguard import AddressGuard
from bot.ownhost import OwnHost, OwnHostError, OwnHosts, endpoint_refusal
from bot.store import now_utc

UNSET = "default"  # a control's value that unsets a setting (the operator's choice applies)
MEMBER_LANGUAGE = "member"  # language: each member's own
SWITCHES = ("nsfw", "takedown_on_source_delete")
CHANGES_SHOWN = 5
MEGABYTE = settingtexts.MEGABYTE
LARGEST_QUOTA = 1_000_000  # images, or megabytes (~1 TB): far beyond a day of any server


class SettingError(RehostError, ValueError):
    """A value a manager gave that cannot be used. ``said`` says why, as a msgid and its
    parameters: :meth:`in_language` for the manager, ``str()`` in English."""

    def __init__(self, message: str | Said, **params: object) -> None:
        super().__init__(message if isinstance(message, Said) else Said(message, params))

    def in_language(self, language: str) -> str:
        return self.said.in_language(language)


@dataclass(frozen=True)
class Managing:
    """Community settings as one platform's managers see them."""

    core: Core
    platform: str

    @property
    def communities(self) -> Communities:
        return Communities(self.core.store.db)

    @property
    def own_hosts(self) -> OwnHosts | None:
        own = self.core.rehost.rehoster.own_hosts
        return own if own is not None and own.allowed else None

    def host_names(self) -> list[str]:
        """The operator's configured hosts, in order."""
        return list(self.core.config.upload.hosts)

    def expiry_durations(self) -> list[Duration]:
        """The expiries every configured host honours exactly (for the menus)."""
        dialects = {host.dialect for host in self.core.config.ordered_hosts()}
        return offered_durations(dialects)

    async def settings(self, community_id: str) -> CommunitySettings:
        return await self.communities.settings(self.platform, community_id)

    async def change(
        self, community_id: str, actor_id: str, actor_name: str, name: str, value: Any
    ) -> CommunitySettings:
        """Set ``name`` from what a control carried (raises :class:`SettingError`)."""
        return await self.change_all(community_id, actor_id, actor_name, {name: value})

    async def change_all(
        self, community_id: str, actor_id: str, actor_name: str, values: dict[str, Any]
    ) -> CommunitySettings:
        """Set several settings from one form (the quotas): all of them, or, when one
        cannot be used, none (raises :class:`SettingError`)."""
        parsed = {name: self.parse(name, value) for name, value in values.items()}
        for name in ("default_expiration", "max_expiration"):
            if parsed.get(name) is not None:
                await self._within_longest(community_id, name, str(parsed[name]))
        return await self.communities.change(
            self.platform, community_id, actor_id, actor_name, **parsed
        )

    async def _within_longest(self, community_id: str, name: str, label: str) -> None:
        """Refuse a default expiry longer than the longest allowed (set either way):
        every upload would be cut to the longest, with a note saying so."""
        current = await self.settings(community_id)
        default, longest = (
            (label, current.max_expiration)
            if name == "default_expiration"
            else (current.default_expiration, label)
        )
        if default is None or longest is None:
            return
        default_duration, longest_duration = parse_duration(default), parse_duration(longest)
        if longest_duration is None:  # the longest allowed is "never": anything goes
            return
        start = now_utc()
        if default_duration is not None and (
            default_duration.after(start) <= longest_duration.after(start)
        ):
            return
        raise SettingError(
            N_(
                "The default expiry ({default}) cannot be longer than the longest allowed"
                " ({longest})."
            ),
            default=default_duration if default_duration is not None else Said(N_("never")),
            longest=longest_duration,
        )

    def parse(self, name: str, value: Any) -> object:
        if name == "hosts":
            chosen = tuple(h for h in value if h in self.host_names())
            if len(chosen) != len(value):
                raise SettingError(N_("Choose among the bot's configured hosts."))
            return chosen or None
        text = str(value).strip()
        if text == UNSET or text == "":
            return None
        if name in ("default_expiration", "max_expiration"):
            try:
                duration = parse_duration(text)
            except ExpirationError as error:
                raise SettingError(error.said) from None
            return "never" if duration is None else duration.label()
        if name in SWITCHES:
            if text not in ("on", "off"):
                raise SettingError(N_("Choose on or off."))
            return text == "on"
        if name == "language":
            if text == MEMBER_LANGUAGE:
                return None
            if text not in LANGUAGES:
                raise SettingError(N_("Choose en, es or zh_Hans."))
            return text
        if name == "quota_images_per_member":
            return _whole(text)
        if name == "quota_bytes_per_day":
            megabytes = _whole(text)
            return None if megabytes is None else megabytes * MEGABYTE
        raise SettingError(N_("{setting} is not a setting you can change here."), setting=name[:40])

    async def set_own_host(
        self,
        community_id: str,
        actor_id: str,
        actor_name: str,
        dialect: str,
        endpoint: str,
        api_key: str,
    ) -> Said:
        """Check, seal and store a community's own host; the answer for the manager
        (raises :class:`SettingError` with why it was refused)."""
        own = self.own_hosts
        if own is None or own.sealer is None:
            raise SettingError(
                N_("The bot's operator does not allow servers to bring their own host.")
            )
        try:
            host = OwnHost(dialect, endpoint, api_key).check()
        except OwnHostError as error:
            raise SettingError(error.said) from None
        refusal = await endpoint_refusal(
            host, AddressGuard(self.core.config.links.allowed_networks)
        )
        if refusal is not None:
            raise SettingError(refusal)
        sealed = own.sealer.seal(host)
        await self.communities.change(
            self.platform, community_id, actor_id, actor_name, own_host=sealed
        )
        return Said(
            N_("Own host set: {host}. Images posted here now go there first."),
            {"host": host.shown},
        )

    async def describe(self, community_id: str, title: str, language: str = ENGLISH) -> str:
        """The settings message: every value, then who changed what last (each setting
        under its one label, :mod:`bot.settingtexts`, in both)."""
        settings = await self.settings(community_id)
        lines = [translate(language, "Settings of {title}:", title=title)]
        for name, shown in self._values(settings, language):
            setting = settingtexts.label(name, language)
            lines.append(
                "• " + translate(language, "{setting}: {value}", setting=setting, value=shown)
            )
        changes = await self.communities.changes(self.platform, community_id, CHANGES_SHOWN)
        if changes:
            lines.append(translate(language, "Last changes:"))
            lines += ["• " + settingtexts.change_line(change, language) for change in changes]
        return "\n".join(lines)

    def _values(self, settings: CommunitySettings, language: str) -> list[tuple[str, str]]:
        """(setting, its value written for people), in the order shown."""
        shown = {
            name: settingtexts.value(name, _stored(settings.column(name)), language)
            for name in SETTINGS
        }
        own = self.own_hosts
        if own is None:
            shown["own_host"] = translate(language, "not allowed by the operator")
        elif settings.own_host is not None:
            opened = own.sealer.open(settings.own_host) if own.sealer else None
            shown["own_host"] = (
                opened.shown.in_language(language)
                if opened is not None
                else translate(language, "set, but unreadable")
            )
        operator = self.core.rehost.default_expiration
        if settings.default_expiration is None:
            shown["default_expiration"] = (
                translate(
                    language,
                    "the bot's ({duration})",
                    duration=format_duration(operator, language),
                )
                if operator
                else translate(language, "never")
            )
        return list(shown.items())


def _stored(column: object) -> str | None:
    """A setting's column value as the change log stores it."""
    return None if column is None else str(column)


def _whole(text: str) -> int | None:
    try:
        number = int(text)
    except ValueError:
        raise SettingError(N_("{text} is not a whole number."), text=repr(text[:20])) from None
    if not 0 <= number <= LARGEST_QUOTA:
        raise SettingError(N_("Give a whole number from 0 to {largest}."), largest=LARGEST_QUOTA)
    return number
