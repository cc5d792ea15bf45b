"""Application commands: /upload, "Rehost images", /mine, /delete, /rehost auto and
/rehost backfill (:mod:`adapters.discord.backfill`).

The commands that rehost only record the request (see
:meth:`~adapters.discord.intake.Intake.rehost_for_interaction`): they defer at once,
publicly ("thinking"), and the answer comes through the outbox, which edits that response
with the public links and only then sends the delete links in an ephemeral follow-up.
Failures go to the adapter's one error handler (:mod:`adapters.discord.errors`).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import discord
from discord import app_commands

from adapters.discord import errors, render
from adapters.discord.backfill import backfill_command
from adapters.discord.client import RehostClient
from adapters.discord.links import message_links
from adapters.discord.places import AutoTarget, AutoTargetTransformer, Expiry, Place, place_of
from adapters.discord.settings import settings_command
from adapters.discord.sources import PLATFORM, attachments_of
from adapters.discord.views import delete_buttons
from bot.expiration import Duration
from bot.links import LINK_USAGE, find_links, link_sources
from bot.presenting import chat_expiry_phrase, parse_expiry_argument, upload_lines

log = logging.getLogger(__name__)
Interaction = discord.Interaction[RehostClient]
MAX_CHOICES = 25  # Discord's limit per option
MAX_URL = 2000  # a longer "link" is not one


def expiry_choices(
    durations: Sequence[Duration], *, never: bool = True
) -> list[app_commands.Choice[str]]:
    """What the configured hosts all honour exactly (then "never")."""
    choices = [app_commands.Choice(name=d.describe(), value=d.label()) for d in durations]
    if not never:
        return choices[:MAX_CHOICES]
    return [*choices[: MAX_CHOICES - 1], app_commands.Choice(name="never", value="never")]


def _expiry(choice: app_commands.Choice[str] | None) -> Expiry:
    given, duration, error = parse_expiry_argument(choice.value if choice else None)
    if error:  # not one of our choices: use the default
        return False, None
    return given, duration


def upload_problem(
    file: discord.Attachment | None, url: str | None, links: Sequence[str]
) -> str | None:
    """What is wrong with how /upload was asked (neither a file nor a link, or a link that
    is not one), in one plain sentence; ``None`` when nothing is."""
    if file is None and not url:
        return "Give /upload a file, or a url: a link to an image."
    if url and not links:
        return f"That url is not a web link. {LINK_USAGE}"
    return None


def build_commands(
    client: RehostClient,
) -> list[app_commands.Command[Any, ..., Any] | app_commands.ContextMenu | app_commands.Group]:
    choices = expiry_choices(client.expiry_choices)
    # A channel's setting can name a duration; without one the bot's default applies.
    channel_choices = expiry_choices(client.expiry_choices)

    @app_commands.command(name="upload", description="Rehost an image and get stable links")
    @app_commands.describe(
        file="The image to rehost",
        url="Or a link to an image (http:// or https://)",
        expire="When the image expires (default: this channel's setting or the bot's)",
    )
    @app_commands.choices(expire=choices)
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=False)
    async def upload(
        interaction: Interaction,
        file: discord.Attachment | None = None,
        url: app_commands.Range[str, 1, MAX_URL] | None = None,
        expire: app_commands.Choice[str] | None = None,
    ) -> None:
        links = find_links(url)
        problem = upload_problem(file, url, links)
        if problem is not None:
            await interaction.response.send_message(problem, ephemeral=True)
            return
        await client.intake.rehost_for_interaction(
            interaction, [file] if file else [], _expiry(expire), links=link_sources(links)
        )

    @app_commands.context_menu(name="Rehost images")
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=False)
    async def rehost_images(interaction: Interaction, message: discord.Message) -> None:
        await client.intake.rehost_for_interaction(
            interaction,
            attachments_of(message),
            (False, None),
            message.id,
            links=link_sources(message_links(message, bot_user=client.user)),
        )

    @app_commands.command(name="mine", description="Your live uploads, with delete buttons")
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=False)
    async def mine(interaction: Interaction) -> None:
        uploads = await client.core.library.live_uploads(PLATFORM, str(interaction.user.id))
        lines = upload_lines(uploads)
        await interaction.response.send_message(
            render.mine_text(uploads, lines),
            ephemeral=True,
            suppress_embeds=True,
            view=delete_buttons(lines) or discord.utils.MISSING,
        )

    @app_commands.command(name="delete", description="Delete one of your uploads")
    @app_commands.describe(upload_id="The number shown in /mine")
    @app_commands.rename(upload_id="id")
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=False)
    async def delete(interaction: Interaction, upload_id: app_commands.Range[int, 1]) -> None:
        text, view = await client.deletions.confirm_prompt(interaction.user.id, upload_id)
        await interaction.response.send_message(
            text, ephemeral=True, suppress_embeds=True, view=view or discord.utils.MISSING
        )

    settings = app_commands.Group(
        name="rehost",
        description="Server settings of the rehost bot",
        guild_only=True,
        default_permissions=discord.Permissions(manage_guild=True),
    )

    @settings.command(name="auto", description="Rehost every image posted in this channel")
    @app_commands.describe(
        state="on or off",
        expire="When images rehosted here expire",
        channel="Where (default: here); a forum or media channel means all its posts",
    )
    @app_commands.choices(
        state=[
            app_commands.Choice(name="on", value="on"),
            app_commands.Choice(name="off", value="off"),
        ],
        expire=channel_choices,
    )
    async def auto(
        interaction: Interaction,
        state: app_commands.Choice[str],
        expire: app_commands.Choice[str] | None = None,
        channel: app_commands.Transform[AutoTarget, AutoTargetTransformer] | None = None,
    ) -> None:
        places = client.intake.places
        if channel is not None:
            place = places.of_option(channel)
        else:
            place = place_of(interaction.channel) or Place(interaction.channel_id or 0)
        enabled = state.value == "on"
        if not enabled and place.channel_id in client.core.configured_auto_rehost(PLATFORM):
            named = f"<#{place.channel_id}>" if channel is not None else "This channel"
            await interaction.response.send_message(
                f"{named} auto-rehosts because of the bot's configuration; "
                "ask the bot's operator to change it.",
                ephemeral=True,
            )
            return
        given, duration = _expiry(expire)
        updated = await client.core.library.set_auto_rehost(
            PLATFORM, str(place.channel_id), enabled, duration if given else "keep"
        )
        text = render.auto_text(place, enabled, chat_expiry_phrase(updated.default_expiration))
        if place.in_thread and channel is None:
            text += f"\nFor all of <#{place.parent_id}>, add `channel:` <#{place.parent_id}>."
        if enabled and not client.message_content:
            text += (
                "\nBut Discord does not let the bot read messages here: its operator must "
                "enable the Message Content intent."
            )
        await interaction.response.send_message(text)

    @settings.command(name="nsfw", description="Mark every image rehosted here as NSFW")
    @app_commands.describe(state="on or off")
    @app_commands.choices(
        state=[
            app_commands.Choice(name="on", value="on"),
            app_commands.Choice(name="off", value="off"),
        ]
    )
    async def nsfw(interaction: Interaction, state: app_commands.Choice[str]) -> None:
        on = state.value == "on"
        where = str(interaction.channel_id or 0)
        await client.core.library.set_nsfw(PLATFORM, where, on)
        await interaction.response.send_message(
            "Images rehosted here are now marked NSFW on the image hosts that support it."
            if on
            else "Images rehosted here are no longer marked NSFW."
        )

    @settings.command(name="takedown", description="Moderators: take down an upload posted here")
    @app_commands.describe(upload_id="The upload's number (#12 in the bot's post)")
    @app_commands.rename(upload_id="id")
    async def takedown(interaction: Interaction, upload_id: app_commands.Range[int, 1]) -> None:
        await client.takedowns.by_id(interaction, upload_id)

    @app_commands.context_menu(name="Take down")
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_messages=True)
    async def take_down_post(interaction: Interaction, message: discord.Message) -> None:
        await client.takedowns.post(interaction, message)

    settings.add_command(settings_command())
    settings.add_command(
        backfill_command(client.core, client.intake.places, lambda: client.wake_backfills())
    )
    return [upload, rehost_images, mine, delete, settings, take_down_post]


def register(client: RehostClient) -> None:
    tree = client.tree
    for command in build_commands(client):
        tree.add_command(command)
    tree.error(errors.on_command_error)
