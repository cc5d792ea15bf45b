"""Delete buttons, with a confirm step, that keep working after a restart.

The buttons are :class:`discord.ui.DynamicItem` s: the upload id lives in the custom id
(``rehost:del:12``), so a press after a restart still reaches the bot and no view has to
stay in memory: the views sent are stopped first, so discord.py does not keep them. Only
the owner can delete: the handler checks who pressed; failures go to the adapter's one
error handler (:mod:`adapters.discord.errors`).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any, Protocol, runtime_checkable

import discord
from discord.ui import Button, DynamicItem

from adapters.discord import errors
from bot.i18n import ENGLISH, negotiate, translate
from bot.presenting import ResultLine

log = logging.getLogger(__name__)
MAX_BUTTONS = 25  # Discord: five rows of five


@runtime_checkable
class DeleteHandler(Protocol):
    """What the client does when a delete button is pressed."""

    async def ask_to_confirm(self, interaction: discord.Interaction[Any], upload_id: int) -> None:
        """Answer with a private Yes / Cancel question, or a refusal."""

    async def confirm_delete(self, interaction: discord.Interaction[Any], upload_id: int) -> None:
        """Delete (for the owner only) and say how it went."""


def _handler(interaction: discord.Interaction[Any]) -> DeleteHandler:
    client = interaction.client
    if not isinstance(client, DeleteHandler):
        raise TypeError("the client cannot handle delete buttons")
    return client


class DeleteButton(DynamicItem[Button[Any]], template=r"rehost:del:(?P<id>\d{1,18})"):
    def __init__(self, upload_id: int, label: str = "Delete") -> None:
        button: Button[Any] = Button(
            label=label, style=discord.ButtonStyle.secondary, custom_id=f"rehost:del:{upload_id}"
        )
        super().__init__(button)
        self.upload_id = upload_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str]
    ) -> DeleteButton:
        return cls(int(match["id"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        try:
            await _handler(interaction).ask_to_confirm(interaction, self.upload_id)
        except Exception as error:
            await errors.on_interaction_error(interaction, error, f"delete button {self.upload_id}")


class ConfirmDeleteButton(DynamicItem[Button[Any]], template=r"rehost:delok:(?P<id>\d{1,18})"):
    def __init__(self, upload_id: int, language: str = ENGLISH) -> None:
        button: Button[Any] = Button(
            label=translate(language, "Yes, delete"),
            style=discord.ButtonStyle.danger,
            custom_id=f"rehost:delok:{upload_id}",
        )
        super().__init__(button)
        self.upload_id = upload_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str]
    ) -> ConfirmDeleteButton:
        return cls(int(match["id"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        try:
            await _handler(interaction).confirm_delete(interaction, self.upload_id)
        except Exception as error:
            await errors.on_interaction_error(
                interaction, error, f"confirm delete {self.upload_id}"
            )


class CancelDeleteButton(DynamicItem[Button[Any]], template=r"rehost:delno:(?P<id>\d{1,18})"):
    def __init__(self, upload_id: int, language: str = ENGLISH) -> None:
        button: Button[Any] = Button(
            label=translate(language, "Cancel"),
            style=discord.ButtonStyle.secondary,
            custom_id=f"rehost:delno:{upload_id}",
        )
        super().__init__(button)
        self.upload_id = upload_id

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str]
    ) -> CancelDeleteButton:
        return cls(int(match["id"]))

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        language = negotiate(str(interaction.locale))
        kept = translate(language, "Kept #{id}.", id=self.upload_id)
        await interaction.response.edit_message(content=kept, view=None)


@runtime_checkable
class TakedownHandler(Protocol):
    """What the client does when a moderator presses "Take down" on a public post."""

    async def take_down_post(self, interaction: discord.Interaction[Any]) -> None:
        """Take down what the post shows (moderators only), or refuse."""


class TakeDownButton(DynamicItem[Button[Any]], template=r"rehost:takedown"):
    """On every public post, for everyone to see: the handler checks the permission of
    whoever pressed it (the post's uploads are found from the message it is on)."""

    def __init__(self, language: str = ENGLISH) -> None:
        button: Button[Any] = Button(
            label=translate(language, "Take down"),
            style=discord.ButtonStyle.secondary,
            custom_id="rehost:takedown",
        )
        super().__init__(button)

    @classmethod
    async def from_custom_id(
        cls, interaction: discord.Interaction[Any], item: discord.ui.Item[Any], match: re.Match[str]
    ) -> TakeDownButton:
        return cls()

    async def callback(self, interaction: discord.Interaction[Any]) -> None:
        client = interaction.client
        try:
            if not isinstance(client, TakedownHandler):
                raise TypeError("the client cannot handle take-down buttons")
            await client.take_down_post(interaction)
        except Exception as error:
            await errors.on_interaction_error(interaction, error, "take-down button")


DYNAMIC_ITEMS: tuple[type[DynamicItem[Any]], ...] = (
    DeleteButton,
    ConfirmDeleteButton,
    CancelDeleteButton,
    TakeDownButton,
)


def delete_buttons(lines: Sequence[ResultLine], language: str = ENGLISH) -> discord.ui.View | None:
    """A Delete button per live upload (``None`` when there is none)."""
    live = [line.upload for line in lines if line.upload and line.upload.active]
    if not live:
        return None
    view = discord.ui.View(timeout=None)
    for upload in live[:MAX_BUTTONS]:
        view.add_item(DeleteButton(upload.id, translate(language, "Delete #{id}", id=upload.id)))
    return _unstored(view)


def public_buttons(lines: Sequence[ResultLine], language: str = ENGLISH) -> discord.ui.View | None:
    """A public post's buttons: Delete (for the owner) per live upload, and one "Take
    down" for the server's moderators (``None`` when nothing is live)."""
    live = [line.upload for line in lines if line.upload and line.upload.active]
    if not live:
        return None
    view = discord.ui.View(timeout=None)
    for upload in live[: MAX_BUTTONS - 1]:
        view.add_item(DeleteButton(upload.id, translate(language, "Delete #{id}", id=upload.id)))
    view.add_item(TakeDownButton(language))
    return _unstored(view)


def confirm_buttons(upload_id: int, language: str = ENGLISH) -> discord.ui.View:
    view = discord.ui.View(timeout=None)
    view.add_item(ConfirmDeleteButton(upload_id, language))
    view.add_item(CancelDeleteButton(upload_id, language))
    return _unstored(view)


def _unstored(view: discord.ui.View) -> discord.ui.View:
    """A view discord.py will not keep after sending (it stores only unfinished ones):
    its buttons are dynamic items, dispatched by their custom ids."""
    view.stop()
    return view
