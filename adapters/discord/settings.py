"""``/rehost settings``: a server's managers see and change its settings.

The command answers privately (ephemeral) with every value, who changed what last, and
the controls: select menus for the hosts, the default and the longest expiry, and the
switches (NSFW, language, taking down when the source is deleted); buttons open modals for
the quotas and for the server's own host (its API key is asked for, never shown: the field
is always empty). The menus and buttons are dynamic items (their custom id says which
setting), so they keep working after a restart and no view stays in memory.

Only members with Manage Server may use any of it. Discord hides the command from others
(``default_permissions``), but a stale client or a forged request can still send it, or
press a control: every handler checks the member's permissions the interaction carries.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

import discord
from discord import app_commands
from discord.ui import Button, DynamicItem, Select

from adapters.discord import errors
from adapters.discord.language import user_language
from adapters.discord.sources import PLATFORM
from bot.app import Core
from bot.i18n import ENGLISH, N_, Said, format_duration, translate
from bot.managing import MEGABYTE, MEMBER_LANGUAGE, UNSET, Managing, SettingError

log = logging.getLogger(__name__)
MAX_OPTIONS = 25  # Discord: options per select menu
REFUSED = N_("Only members with Manage Server can change the bot's settings here.")
# Labels are msgids, translated where the menu is built; the languages keep their own names.
SWITCH_OPTIONS = (
    ("nsfw=on", N_("NSFW: mark every image")),
    ("nsfw=off", N_("NSFW: do not mark")),
    ("language=en", "Language: English"),
    ("language=es", "Language: Español"),
    ("language=zh_Hans", "Language: 简体中文"),
    (f"language={MEMBER_LANGUAGE}", N_("Language: each member's own")),
    ("takedown_on_source_delete=on", N_("Deleting the source takes the rehost down")),
    ("takedown_on_source_delete=off", N_("Deleting the source keeps the rehost")),
)


def _core(interaction: discord.Interaction[Any]) -> Core:
    core = getattr(interaction.client, "core", None)
    if not isinstance(core, Core):
        raise TypeError("the client has no rehost core")
    return core


def may_manage(interaction: discord.Interaction[Any]) -> bool:
    """Whether the member may change the server's settings (the permissions Discord sent
    with this very interaction, not what the command's visibility implied)."""
    return interaction.guild_id is not None and interaction.permissions.manage_guild


async def _refuse(interaction: discord.Interaction[Any]) -> bool:
    """Refuse (privately) a member who may not manage; True when refused."""
    if may_manage(interaction):
        return False
    log.info("settings refused to user %s in guild %s", interaction.user.id, interaction.guild_id)
    await interaction.response.send_message(
        translate(user_language(interaction), REFUSED), ephemeral=True
    )
    return True


def _actor(interaction: discord.Interaction[Any]) -> tuple[str, str]:
    return str(interaction.user.id), interaction.user.name


async def settings_message(
    core: Core, guild_id: int, title: str, language: str = ENGLISH
) -> tuple[str, discord.ui.View]:
    """The settings text and its controls, in ``language`` (the manager's)."""

    def t(text: str, **params: Any) -> str:
        return translate(language, text, **params)

    managing = Managing(core, PLATFORM)
    community = str(guild_id)
    current = await managing.settings(community)
    text = await managing.describe(community, title, language)
    view = discord.ui.View(timeout=None)
    hosts = managing.host_names()
    chosen = set(current.hosts or hosts)
    view.add_item(
        SettingSelect(
            "hosts",
            t("Hosts (none chosen: all)"),
            [discord.SelectOption(label=h, value=h, default=h in chosen) for h in hosts],
            min_values=0,
            max_values=len(hosts),
        )
    )
    durations = [(d.label(), format_duration(d, language)) for d in managing.expiry_durations()]
    expiries = [*durations[: MAX_OPTIONS - 2], ("never", t("never"))]
    for name, placeholder, unset in (
        ("default_expiration", t("Default expiry"), t("Default expiry: the bot's")),
        ("max_expiration", t("Longest expiry allowed"), t("Longest expiry: any")),
    ):
        value = getattr(current, name)
        options = [discord.SelectOption(label=unset, value=UNSET, default=value is None)]
        options += [
            discord.SelectOption(label=shown, value=label, default=value == label)
            for label, shown in expiries
        ]
        view.add_item(SettingSelect(name, placeholder, options))
    view.add_item(
        SettingSelect(
            "switch",
            t("NSFW, language, takedowns"),
            [discord.SelectOption(label=t(label), value=value) for value, label in SWITCH_OPTIONS],
        )
    )
    view.add_item(SettingButton("quotas", t("Quotas…")))
    if managing.own_hosts is not None:
        view.add_item(SettingButton("own", t("Own host…")))
        if current.own_host is not None:
            view.add_item(SettingButton("ownoff", t("Remove own host"), discord.ButtonStyle.danger))
    view.stop()  # dispatched by custom id (dynamic items): discord.py need not keep it
    return text, view


def _title(interaction: discord.Interaction[Any]) -> str:
    if interaction.guild is not None:
        return interaction.guild.name
    return translate(user_language(interaction), "this server")  # not in the bot's cache


async def _show(
    interaction: discord.Interaction[Any], note: Said | SettingError | None = None
) -> None:
    """Answer a control with the settings message as it is now (edited in place), after
    ``note`` (what became of the choice) in the manager's language."""
    assert interaction.guild_id is not None
    language = user_language(interaction)
    text, view = await settings_message(
        _core(interaction), interaction.guild_id, _title(interaction), language
    )
    if note is not None:
        text = f"{note.in_language(language)}\n\n{text}"
    await interaction.response.edit_message(content=text, view=view)


class SettingSelect(DynamicItem[Select[Any]], template=r"rehost:set:(?P<name>[a-z_]{1,40})"):
    def __init__(
        self,
        name: str,
        placeholder: str = "",
        options: list[discord.SelectOption] | None = None,
        *,
        min_values: int = 1,
        max_values: int = 1,
    ) -> None:
        select: Select[Any] = Select(
            custom_id=f"rehost:set:{name}",
            placeholder=placeholder,
            options=options or [discord.SelectOption(label="-")],
            min_values=min_values,
            max_values=max(max_values, 1),
        )
        super().__init__(select)
        self.name = name

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str]
    ) -> SettingSelect:
        return cls(match["name"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        try:
            await self._chosen(interaction)
        except Exception as error:
            await errors.on_interaction_error(interaction, error, f"settings menu {self.name}")

    async def _chosen(self, interaction: discord.Interaction[Any]) -> None:
        if await _refuse(interaction):
            return
        data: Any = interaction.data or {}
        values = [str(v) for v in data.get("values", [])]
        name, value = self.name, values
        if name != "hosts":
            if not values:
                return await _show(interaction)
            if name == "switch":
                name, _, picked = values[0].partition("=")
            else:
                picked = values[0]
            value = [picked]
        try:
            await Managing(_core(interaction), PLATFORM).change(
                str(interaction.guild_id),
                *_actor(interaction),
                name,
                value if name == "hosts" else value[0],
            )
        except SettingError as error:
            return await _show(interaction, error)
        await _show(interaction, Said(N_("Saved.")))


class SettingButton(DynamicItem[Button[Any]], template=r"rehost:setb:(?P<name>[a-z]{1,20})"):
    def __init__(
        self,
        name: str,
        label: str = "",
        style: discord.ButtonStyle = discord.ButtonStyle.secondary,
    ) -> None:
        super().__init__(Button(label=label or name, style=style, custom_id=f"rehost:setb:{name}"))
        self.name = name

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str]
    ) -> SettingButton:
        return cls(match["name"])

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        try:
            await self._pressed(interaction)
        except Exception as error:
            await errors.on_interaction_error(interaction, error, f"settings button {self.name}")

    async def _pressed(self, interaction: discord.Interaction[Any]) -> None:
        if await _refuse(interaction):
            return
        core = _core(interaction)
        managing = Managing(core, PLATFORM)
        community = str(interaction.guild_id)
        if self.name == "quotas":
            current = await managing.settings(community)
            await interaction.response.send_modal(
                QuotaModal(
                    current.quota_images_per_member,
                    current.quota_bytes_per_day,
                    user_language(interaction),
                )
            )
        elif self.name == "own":
            await interaction.response.send_modal(OwnHostModal(user_language(interaction)))
        elif self.name == "ownoff":
            await managing.communities.change(
                PLATFORM, community, *_actor(interaction), own_host=None
            )
            await _show(interaction, Said(N_("Own host removed.")))


def _shown(value: int | None, scale: int = 1) -> str | None:
    return None if value is None else str(value // scale)


class QuotaModal(discord.ui.Modal, title="Quotas"):
    """Titles and labels in the manager's language (Discord: 45 characters at most)."""

    def __init__(self, images: int | None, total: int | None, language: str = ENGLISH) -> None:
        super().__init__(
            title=translate(language, "Quotas"), custom_id="rehost:setm:quotas", timeout=900
        )
        self.images: discord.ui.TextInput[Any] = discord.ui.TextInput(
            label=translate(language, "Images per member per day (empty: no limit)"),
            custom_id="quota_images_per_member",
            required=False,
            max_length=9,
            default=_shown(images),
        )
        self.total: discord.ui.TextInput[Any] = discord.ui.TextInput(
            label=translate(language, "Megabytes per day, whole server (empty: none)"),
            custom_id="quota_bytes_per_day",
            required=False,
            max_length=9,
            default=_shown(total, MEGABYTE),
        )
        self.add_item(self.images)
        self.add_item(self.total)

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        try:
            await self._submitted(interaction)
        except Exception as error:
            await errors.on_interaction_error(interaction, error, "quotas form")

    async def _submitted(self, interaction: discord.Interaction[Any]) -> None:
        if await _refuse(interaction):
            return
        managing = Managing(_core(interaction), PLATFORM)
        values = {
            "quota_images_per_member": self.images.value,
            "quota_bytes_per_day": self.total.value,
        }
        try:
            await managing.change_all(str(interaction.guild_id), *_actor(interaction), values)
        except SettingError as error:
            await interaction.response.send_message(_not_saved(interaction, error), ephemeral=True)
            return
        await interaction.response.send_message(
            translate(user_language(interaction), "Quotas saved."), ephemeral=True
        )


class OwnHostModal(discord.ui.Modal, title="Own image host"):
    """The key field starts empty, always: a key is never shown back."""

    def __init__(self, language: str = ENGLISH) -> None:
        def t(text: str) -> str:
            return translate(language, text)

        super().__init__(title=t("Own image host"), custom_id="rehost:setm:own", timeout=900)
        self.dialect: discord.ui.TextInput[Any] = discord.ui.TextInput(
            label=t("Dialect: chevereto or imgbb"), custom_id="dialect", default="chevereto"
        )
        self.endpoint: discord.ui.TextInput[Any] = discord.ui.TextInput(
            label=t("Upload endpoint (https://...)"), custom_id="endpoint", max_length=500
        )
        self.key: discord.ui.TextInput[Any] = discord.ui.TextInput(
            label=t("API key"), custom_id="api_key", max_length=200
        )
        self.add_item(self.dialect)
        self.add_item(self.endpoint)
        self.add_item(self.key)

    async def on_submit(self, interaction: discord.Interaction[Any]) -> None:
        try:
            await self._submitted(interaction)
        except Exception as error:
            await errors.on_interaction_error(interaction, error, "own host form")

    async def _submitted(self, interaction: discord.Interaction[Any]) -> None:
        if await _refuse(interaction):
            return
        managing = Managing(_core(interaction), PLATFORM)
        try:
            saved = await managing.set_own_host(
                str(interaction.guild_id),
                *_actor(interaction),
                self.dialect.value,
                self.endpoint.value,
                self.key.value,
            )
        except SettingError as error:
            text = _not_saved(interaction, error)
        else:
            text = saved.in_language(user_language(interaction))
        await interaction.response.send_message(text, ephemeral=True)


def _not_saved(interaction: discord.Interaction[Any], error: SettingError) -> str:
    """Why a form's values were refused, in the manager's language."""
    language = user_language(interaction)
    return translate(language, "Not saved: {error}", error=error.in_language(language))


class ModalKeyFilter(logging.Filter):
    """discord.py logs every gateway event at DEBUG, the own-host form's submission with
    its API key included, before the bot has read it (and added it to the redaction):
    this filter masks the key field of a submitted form in those records."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, dict) for a in record.args):
            record.args = tuple(_masked(a) if isinstance(a, dict) else a for a in record.args)
        return True


def _masked(event: dict[str, Any]) -> dict[str, Any]:
    data = event.get("d")
    if event.get("t") != "INTERACTION_CREATE" or not isinstance(data, dict):
        return event
    if data.get("type") != 5:  # only a modal submission carries typed-in values
        return event
    masked: dict[str, Any] = json.loads(json.dumps(event))
    for row in masked["d"].get("data", {}).get("components", []):
        for item in row.get("components", []):
            if item.get("custom_id") == "api_key":
                item["value"] = "***"
    return masked


logging.getLogger("discord.gateway").addFilter(ModalKeyFilter())

SETTINGS_ITEMS: tuple[type[DynamicItem[Any]], ...] = (SettingSelect, SettingButton)


def settings_command() -> app_commands.Command[Any, ..., Any]:
    @app_commands.command(name="settings", description=N_("Show and change this server's settings"))
    async def settings(interaction: discord.Interaction[Any]) -> None:
        if await _refuse(interaction):
            return
        assert interaction.guild_id is not None
        text, view = await settings_message(
            _core(interaction),
            interaction.guild_id,
            _title(interaction),
            user_language(interaction),
        )
        await interaction.response.send_message(text, view=view, ephemeral=True)

    return settings
