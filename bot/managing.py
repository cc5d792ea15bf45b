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

from bot.app import Core
from bot.community import Communities, CommunitySettings
from bot.errors import ExpirationError
from bot.expiration import Duration, offered_durations, parse_duration
from bot.i18n import ENGLISH, LANGUAGES, translate
from bot.linkguard import AddressGuard
from bot.ownhost import OwnHost, OwnHostError, OwnHosts, endpoint_refusal

UNSET = "default"  # a control's value that unsets a setting (the operator's choice applies)
MEMBER_LANGUAGE = "member"  # language: each member's own
SWITCHES = ("nsfw", "takedown_on_source_delete")
CHANGES_SHOWN = 5
MEGABYTE = 1024 * 1024


class SettingError(ValueError):
    """A value a manager gave that cannot be used; the message says why, for them."""


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
        parsed = self.parse(name, value)
        return await self.communities.change(
            self.platform, community_id, actor_id, actor_name, **{name: parsed}
        )

    def parse(self, name: str, value: Any) -> object:
        if name == "hosts":
            chosen = tuple(h for h in value if h in self.host_names())
            if len(chosen) != len(value):
                raise SettingError("Choose among the bot's configured hosts.")
            return chosen or None
        text = str(value).strip()
        if text == UNSET or text == "":
            return None
        if name in ("default_expiration", "max_expiration"):
            try:
                duration = parse_duration(text)
            except ExpirationError as error:
                raise SettingError(error.user_message) from None
            return "never" if duration is None else duration.label()
        if name in SWITCHES:
            if text not in ("on", "off"):
                raise SettingError("Choose on or off.")
            return text == "on"
        if name == "language":
            if text == MEMBER_LANGUAGE:
                return None
            if text not in LANGUAGES:
                raise SettingError("Choose en, es or zh_Hans.")
            return text
        if name == "quota_images_per_member":
            return _whole(text)
        if name == "quota_bytes_per_day":
            megabytes = _whole(text)
            return None if megabytes is None else megabytes * MEGABYTE
        raise SettingError(f"{name} is not a setting you can change here.")

    async def set_own_host(
        self,
        community_id: str,
        actor_id: str,
        actor_name: str,
        dialect: str,
        endpoint: str,
        api_key: str,
    ) -> str:
        """Check, seal and store a community's own host; the answer for the manager
        (raises :class:`SettingError` with why it was refused)."""
        own = self.own_hosts
        if own is None or own.sealer is None:
            raise SettingError("The bot's operator does not allow servers to bring their own host.")
        try:
            host = OwnHost(dialect, endpoint, api_key).check()
        except OwnHostError as error:
            raise SettingError(str(error)) from None
        refusal = await endpoint_refusal(
            host, AddressGuard(self.core.config.links.allowed_networks)
        )
        if refusal is not None:
            raise SettingError(refusal)
        sealed = own.sealer.seal(host)
        await self.communities.change(
            self.platform, community_id, actor_id, actor_name, own_host=sealed
        )
        return f"Own host set: {host.shown}. Images posted here now go there first."

    async def describe(self, community_id: str, title: str, language: str = ENGLISH) -> str:
        """The settings message: every value, then who changed what last."""
        settings = await self.settings(community_id)
        lines = [translate(language, "Settings of {title}:", title=title)]
        for label, value in self._values(settings, language):
            lines.append(f"• {label}: {value}")
        changes = await self.communities.changes(self.platform, community_id, CHANGES_SHOWN)
        if changes:
            lines.append(translate(language, "Last changes:"))
            for change in changes:
                shown = change["value"] if change["value"] is not None else UNSET
                lines.append(
                    f"• {change['actor_name']}: {change['setting']} → {shown}"
                    f" ({str(change['changed_at'])[:16]})"
                )
        return "\n".join(lines)

    def _values(self, settings: CommunitySettings, language: str) -> list[tuple[str, str]]:
        def t(text: str, **params: Any) -> str:
            return translate(language, text, **params)

        def expiry(label: str | None, unset: str) -> str:
            if label is None:
                return unset
            duration = parse_duration(label) if label != "never" else None
            return duration.describe() if duration is not None else t("never")

        def switch(value: bool | None) -> str:
            return t("default") if value is None else t("on") if value else t("off")

        def number(value: int | None, scale: int = 1, unit: str = "") -> str:
            return t("no limit") if value is None else f"{value // scale}{unit}"

        operator = self.core.rehost.default_expiration
        own = self.own_hosts
        if own is None:
            own_text = t("not allowed by the operator")
        elif settings.own_host is None:
            own_text = t("none")
        else:
            opened = own.sealer.open(settings.own_host) if own.sealer else None
            own_text = opened.shown if opened is not None else t("set, but unreadable")
        hosts = ", ".join(settings.hosts) if settings.hosts else t("all configured hosts")
        return [
            (t("Hosts"), hosts),
            (t("Own host"), own_text),
            (
                t("Default expiry"),
                expiry(
                    settings.default_expiration,
                    t("the bot's ({duration})", duration=operator.describe())
                    if operator
                    else t("never"),
                ),
            ),
            (t("Longest expiry"), expiry(settings.max_expiration, t("any"))),
            (t("NSFW"), switch(settings.nsfw)),
            (t("Language"), settings.language or t("each member's own")),
            (t("Images per member per day"), number(settings.quota_images_per_member)),
            (t("Total per day"), number(settings.quota_bytes_per_day, MEGABYTE, " MB")),
            (t("Take down when the source is deleted"), switch(settings.takedown_on_source_delete)),
        ]


def _whole(text: str) -> int | None:
    try:
        number = int(text)
    except ValueError:
        raise SettingError(f"{text[:20]!r} is not a whole number.") from None
    if number < 0:
        raise SettingError("Give 0 or more (empty: no limit).")
    return number
