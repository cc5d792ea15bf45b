"""Discord texts, embeds and buttons for answers, lists and deletions.

Public texts carry viewer and direct links only (the reply plan hands them uploads without
delete links); a spoiler image gets no embed, and its name and links are hidden as a
spoiler (``||...||``). Private texts add delete links; every message carrying one is sent
with SUPPRESS_EMBEDS, and the links are written ``<url>`` as well, because Discord's
preview crawler would request a Chevereto delete link, which deletes the image. Links are
written ``[label](<url>)`` so that the only previews are the embeds the bot chooses.
Anything from elsewhere (file names, a host's error message) is escaped: no markdown, no
mentions. Every text fits Discord's 2000 characters.
"""

from __future__ import annotations

from collections.abc import Sequence

import discord
from discord.utils import escape_markdown, escape_mentions, format_dt

from adapters.discord.places import Place
from bot.presenting import ResultLine, delete_warning_for, rehosted_heading
from bot.store import UploadRecord

MAX_CONTENT = 2000
MAX_EMBEDS = 10
MAX_NAME = 80

SORRY = "Sorry, something went wrong with that. Please try again later."
ONLY_YOU = "Only you can see this."
HELP = (
    "I rehost images on a stable image host and give you links that keep working.\n"
    "- Send me an image here: you get the links and a private delete link "
    "(a message such as `1d` with it sets the expiry).\n"
    "- `/upload file:` (or `url:` with an image link) in a server posts the links there; "
    "the delete link is shown only to you.\n"
    "- Right-click a message > Apps > **Rehost images** rehosts its images and image links.\n"
    "- `/mine` lists your uploads; `delete ID` here (or `/delete`) deletes one."
)


def name(text: str) -> str:
    """A file name made safe to show: no markdown, no mentions, not too long."""
    short = text if len(text) <= MAX_NAME else text[: MAX_NAME - 1] + "…"
    return escape(short)


def link(label: str, url: str) -> str:
    return f"[{label}](<{url}>)"


def expiry(upload: UploadRecord) -> str:
    """``never expires``, or ``expires <t:UNIX:R>`` (each reader's clock and language)."""
    if upload.expires_at is None:
        return "never expires"
    return f"expires {format_dt(upload.expires_at, 'R')}"


def fit(
    head: str, blocks: Sequence[str], tail: str = "", more: str = "…and {n} more: see /mine."
) -> str:
    """``head``, as many ``blocks`` as fit, and ``tail``, within Discord's limit."""
    text = head
    for index, block in enumerate(blocks):
        more_line = "\n" + more.format(n=len(blocks) - index)
        if len(text) + 1 + len(block) + len(more_line) + len(tail) > MAX_CONTENT:
            text += more_line
            break
        text += "\n" + block
    return (text + tail)[:MAX_CONTENT]


def escape(text: str) -> str:
    """Text from elsewhere (a host's error message) made inert: no markdown, no mentions."""
    return escape_mentions(escape_markdown(text))


def _failure(line: ResultLine) -> str:
    return f"{line.number}. {name(line.name)}: {escape(line.error or 'failed')}"


def _gone(line: ResultLine, upload: UploadRecord) -> str:
    return f"{line.number}. #{upload.id} was {upload.state}."


def _title(line: ResultLine, upload: UploadRecord) -> str:
    """``**cat.png** (#12)`` for a fresh answer, ``#12`` when re-rendered from the store."""
    if line.name == f"#{upload.id}":
        return f"#{upload.id}"
    return f"**{name(line.name)}** (#{upload.id})"


def public_line(line: ResultLine) -> str:
    """A spoiler's name and links are hidden as a spoiler (``||...||``) too."""
    upload = line.upload
    if upload is None:
        return _failure(line)
    if not upload.active:
        return _gone(line, upload)
    links = link("viewer", upload.viewer_url)
    links += f" · {link('direct', upload.url)}" if upload.url else " · direct: held for moderation"
    shown = f"{_title(line, upload)} {links}"
    if line.spoiler:
        shown = f"||{shown}||"
    return f"{line.number}. {shown} · {expiry(upload)}{_note(line)}"


def _note(line: ResultLine) -> str:
    """How the image was handled, e.g. `` · converted from HEIC to JPEG``."""
    return f" · {escape_markdown(line.note)}" if line.note else ""


def mention(user_id: str | int) -> str:
    """Names a user (the bot sends with no allowed mentions: nobody is pinged)."""
    return f"<@{user_id}>"


def public_text(
    lines: Sequence[ResultLine],
    skipped: Sequence[str] = (),
    note: str = "",
    for_user: str | None = None,
) -> str:
    """The links everyone may see; ``skipped`` names attachments that are not images;
    ``for_user`` (a mention) says whose they are, when nothing else shows it."""
    blocks = [public_line(line) for line in lines]
    blocks += [f"Skipped {name(other)}: not an image." for other in skipped]
    heading = rehosted_heading(lines)
    if for_user:
        heading = f"{for_user}: {heading[0].lower()}{heading[1:]}"
    return fit(heading, blocks, note)


def public_embeds(lines: Sequence[ResultLine]) -> list[discord.Embed]:
    """One embed per live image, showing it; none for a spoiler, which stays hidden."""
    embeds = []
    for line in lines:
        upload = line.upload
        if upload is None or not upload.active or not upload.url or line.spoiler:
            continue
        title = f"{line.number}. {line.name}"[:256]
        embed = discord.Embed(title=title, url=upload.viewer_url)
        embeds.append(embed.set_image(url=upload.url))
    return embeds[:MAX_EMBEDS]


def private_line(line: ResultLine) -> str:
    upload = line.upload
    if upload is None:
        return _failure(line)
    if not upload.active:
        return _gone(line, upload)
    about = f"#{upload.id} on {upload.host}, {expiry(upload)}{_note(line)}"
    if line.name != f"#{upload.id}":
        about = f"**{name(line.name)}** ({about})"
    text = f"{line.number}. {about}: {link('viewer', upload.viewer_url)}"
    if upload.url:
        text += f" · {link('direct', upload.url)}"
    if upload.delete_url:
        text += f"\n   delete: <{upload.delete_url}>"
    elif upload.reused_from is not None:
        text += "\n   (same image as an earlier upload by someone else: no delete link)"
    return text


def private_text(
    lines: Sequence[ResultLine],
    heading: str | None = None,
    skipped: Sequence[str] = (),
    more: str = "…and {n} more: see /mine.",
) -> str:
    """Everything, delete links included. Send only in private, with SUPPRESS_EMBEDS."""
    head = heading or rehosted_heading(lines)
    warning = delete_warning_for(line.upload for line in lines)
    tail = f"\n{warning} Or use the Delete button." if warning else ""
    blocks = [private_line(line) for line in lines]
    blocks += [f"Skipped {name(other)}: not an image." for other in skipped]
    return fit(head, blocks, tail, more)


def private_heading(lines: Sequence[ResultLine], *, in_place: bool, about: str | None) -> str:
    """``Only you can see this. Rehosted:`` in place; ``Rehosted: (in #chan)`` in a DM
    about a channel (``about``: how that channel is named; empty or None: no name)."""
    heading = rehosted_heading(lines)
    if in_place:
        return f"{ONLY_YOU} {heading}"
    return f"{heading} (in {about})" if about else heading


def mine_text(uploads: Sequence[UploadRecord], lines: Sequence[ResultLine]) -> str:
    if not uploads:
        return "You have no live uploads."
    return private_text(lines, heading="Your live uploads:", more="…and {n} more.")


def dm_closed_note(user_mention: str) -> str:
    return (
        f"\n{user_mention}: I could not DM you your delete links (your DMs are closed); "
        "they wait in /mine."
    )


def dm_failed_note(user_mention: str) -> str:
    return f"\n{user_mention}: I could not send you your delete links; they wait in /mine."


DM_SENT_NOTE = "\nDelete links were sent by DM."


def confirm_text(upload: UploadRecord) -> str:
    return (
        f"Delete #{upload.id} ({link('viewer', upload.viewer_url)})? "
        "The image will be gone for everyone it was shared with."
    )


def not_yours(upload_id: int) -> str:
    return f"You have no live upload #{upload_id}; see /mine."


def where(place: Place, *, here: bool) -> str:
    """What a setting of ``place`` covers, in words."""
    mention = f"<#{place.channel_id}>"
    if place.kind == "posts":
        return f"every post of {mention}"
    if place.kind in ("thread", "post"):
        noun = "post" if place.kind == "post" else "thread"
        return f"this {noun} only" if here else f"the {noun} {mention} only"
    return f"{mention} and its threads"


def auto_text(place: Place, enabled: bool, lasting: str) -> str:
    """The answer to /rehost auto: what it now applies to, and what it leaves alone."""
    covered = where(place, here=True)
    if not enabled:
        text = f"Auto-rehost is off in {covered}."
    else:
        text = (
            f"Auto-rehost is on in {covered}: images posted there are rehosted ({lasting}). "
            "Uploaders get their delete links by DM."
        )
    if place.in_thread:
        text += f" <#{place.parent_id}> keeps its own setting."
    elif place.kind in ("channel", "posts"):
        text += " A thread set on its own keeps its setting."
    return text
