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
from adapters.discord.language import server_language, user_language
from adapters.discord.links import message_links
from adapters.discord.places import AutoTarget, AutoTargetTransformer, Expiry, Place, place_of
from adapters.discord.settings import settings_command
from adapters.discord.sources import PLATFORM, attachments_of
from adapters.discord.views import delete_buttons
from bot.expiration import Duration
from bot.i18n import ENGLISH, N_, translate
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
    return [*choices[: MAX_CHOICES - 1], app_commands.Choice(name=N_("never"), value="never")]


def _expiry(choice: app_commands.Choice[str] | None) -> Expiry:
    given, duration, error = parse_expiry_argument(choice.value if choice else None)
    if error:  # not one of our choices: use the default
        return False, None
    return given, duration


def upload_problem(
    file: discord.Attachment | None,
    url: str | None,
    links: Sequence[str],
    language: str = ENGLISH,
) -> str | None:
    """What is wrong with how /upload was asked (neither a file nor a link, or a link that
    is not one), in one plain sentence; ``None`` when nothing is."""
    if file is None and not url:
        return translate(language, "Give /upload a file, or a url: a link to an image.")
    if url and not links:
        usage = translate(language, LINK_USAGE)
        return translate(language, "That url is not a web link. {usage}", usage=usage)
    return None


def build_commands(
    client: RehostClient,
) -> list[app_commands.Command[Any, ..., Any] | app_commands.ContextMenu | app_commands.Group]:
    choices = expiry_choices(client.expiry_choices)
    # A channel's setting can name a duration; without one the bot's default applies.
    channel_choices = expiry_choices(client.expiry_choices)

    @app_commands.command(name="upload", description=N_("Rehost an image and get stable links"))
    @app_commands.describe(
        file=N_("The image to rehost"),
        url=N_("Or a link to an image (http:// or https://)"),
        expire=N_("When the image expires (default: this channel's setting or the bot's)"),
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
        problem = upload_problem(file, url, links, user_language(interaction))
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

    @app_commands.command(name="mine", description=N_("Your live uploads, with delete buttons"))
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=False)
    async def mine(interaction: Interaction) -> None:
        uploads = await client.core.library.live_uploads(PLATFORM, str(interaction.user.id))
        lines = upload_lines(uploads)
        language = user_language(interaction)
        await interaction.response.send_message(
            render.mine_text(uploads, lines, language),
            ephemeral=True,
            suppress_embeds=True,
            view=delete_buttons(lines, language) or discord.utils.MISSING,
        )

    @app_commands.command(name="delete", description=N_("Delete one of your uploads"))
    @app_commands.describe(upload_id=N_("The number shown in /mine"))
    @app_commands.rename(upload_id="id")
    @app_commands.allowed_contexts(guilds=True, dms=True, private_channels=False)
    async def delete(interaction: Interaction, upload_id: app_commands.Range[int, 1]) -> None:
        text, view = await client.deletions.confirm_prompt(
            interaction.user.id, upload_id, user_language(interaction)
        )
        await interaction.response.send_message(
            text, ephemeral=True, suppress_embeds=True, view=view or discord.utils.MISSING
        )

    # Shown to moderators (Manage Messages), for `takedown`: Discord gives subcommands no
    # permissions of their own, so the others check Manage Server on every use.
    settings = app_commands.Group(
        name="rehost",
        description=N_("Server settings of the rehost bot"),
        guild_only=True,
        default_permissions=discord.Permissions(manage_messages=True),
    )

    @settings.command(name="auto", description=N_("Rehost every image posted in this channel"))
    @app_commands.checks.has_permissions(manage_guild=True)
    @app_commands.describe(
        state=N_("on or off"),
        expire=N_("When images rehosted here expire"),
        channel=N_("Where (default: here); a forum or media channel means all its posts"),
    )
    @app_commands.choices(
        state=[
            app_commands.Choice(name=N_("on"), value="on"),
            app_commands.Choice(name=N_("off"), value="off"),
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
            mine = user_language(interaction)
            named = (
                f"<#{place.channel_id}>" if channel is not None else translate(mine, "This channel")
            )
            await interaction.response.send_message(
                translate(
                    mine,
                    "{channel} auto-rehosts because of the bot's configuration; "
                    "ask the bot's operator to change it.",
                    channel=named,
                ),
                ephemeral=True,
            )
            return
        given, duration = _expiry(expire)
        updated = await client.core.library.set_auto_rehost(
            PLATFORM, str(place.channel_id), enabled, duration if given else "keep"
        )
        # Everyone in the channel sees the answer: in the server's language.
        ours = await server_language(client.core, interaction.guild_id, interaction.guild_locale)
        lasting = chat_expiry_phrase(updated.default_expiration, ours)
        text = render.auto_text(place, enabled, lasting, ours)
        if place.in_thread and channel is None:
            parent = f"<#{place.parent_id}>"
            text += "\n" + translate(
                ours, "For all of {channel}, add `channel:` {channel}.", channel=parent
            )
        if enabled and not client.message_content:
            text += "\n" + translate(
                ours,
                "But Discord does not let the bot read messages here: its operator must "
                "enable the Message Content intent.",
            )
        await interaction.response.send_message(text)

    @settings.command(name="nsfw", description=N_("Mark every image rehosted here as NSFW"))
    @app_commands.checks.has_permissions(manage_guild=True)
    @app_commands.describe(state=N_("on or off"))
    @app_commands.choices(
        state=[
            app_commands.Choice(name=N_("on"), value="on"),
            app_commands.Choice(name=N_("off"), value="off"),
        ]
    )
    async def nsfw(interaction: Interaction, state: app_commands.Choice[str]) -> None:
        on = state.value == "on"
        where = str(interaction.channel_id or 0)
        await client.core.library.set_nsfw(PLATFORM, where, on)
        ours = await server_language(client.core, interaction.guild_id, interaction.guild_locale)
        await interaction.response.send_message(
            translate(
                ours,
                "Images rehosted here are now marked NSFW on the image hosts that support it.",
            )
            if on
            else translate(ours, "Images rehosted here are no longer marked NSFW.")
        )

    @settings.command(
        name="takedown", description=N_("Moderators: take down an upload posted here")
    )
    @app_commands.describe(upload_id=N_("The upload's number (#12 in the bot's post)"))
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
