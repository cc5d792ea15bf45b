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
from bot.i18n import ENGLISH, N_, translate
from bot.presenting import (
    ResultLine,
    delete_warning_for,
    error_text,
    note_text,
    rehosted_heading,
)
from bot.store import UploadRecord

MAX_CONTENT = 2000
MAX_EMBEDS = 10
MAX_NAME = 80

SORRY = N_("Sorry, something went wrong with that. Please try again later.")
ONLY_YOU = N_("Only you can see this.")
MORE = N_("…and {n} more: see /mine.")
HELP = N_(
    "I rehost images on a stable image host and give you links that keep working.\n"
    "- Send me an image here: you get the links and a private delete link "
    "(a message such as `1d` with it sets the expiry).\n"
    "- `/upload file:` (or `url:` with an image link) in a server posts the links there; "
    "the delete link is shown only to you.\n"
    "- Right-click a message > Apps > **Rehost images** rehosts its images and image links.\n"
    "- `/mine` lists your uploads; `delete ID` here (or `/delete`) deletes one."
)


def help_text(language: str = ENGLISH) -> str:
    return translate(language, HELP)


def name(text: str) -> str:
    """A file name made safe to show: no markdown, no mentions, not too long."""
    short = text if len(text) <= MAX_NAME else text[: MAX_NAME - 1] + "…"
    return escape(short)


def link(label: str, url: str) -> str:
    return f"[{label}](<{url}>)"


def expiry(upload: UploadRecord, language: str = ENGLISH) -> str:
    """``never expires``, or ``expires <t:UNIX:R>`` (each reader's clock and language)."""
    if upload.expires_at is None:
        return translate(language, "never expires")
    return translate(language, "expires {when}", when=format_dt(upload.expires_at, "R"))


def fit(head: str, blocks: Sequence[str], tail: str = "", more: str = MORE) -> str:
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


def _failure(line: ResultLine, language: str) -> str:
    return f"{line.number}. {name(line.name)}: {escape(error_text(line.error, language))}"


STATES = {
    "deleted": N_("#{id} was deleted."),
    "expired": N_("#{id} was expired."),
    "failed": N_("#{id} was failed."),
}


def _gone(line: ResultLine, upload: UploadRecord, language: str) -> str:
    said = STATES.get(upload.state)
    if said is None:
        return f"{line.number}. #{upload.id} was {upload.state}."
    return f"{line.number}. {translate(language, said, id=upload.id)}"


def _title(line: ResultLine, upload: UploadRecord) -> str:
    """``**cat.png** (#12)`` for a fresh answer, ``#12`` when re-rendered from the store."""
    if line.name == f"#{upload.id}":
        return f"#{upload.id}"
    return f"**{name(line.name)}** (#{upload.id})"


def public_line(line: ResultLine, language: str = ENGLISH) -> str:
    """A spoiler's name and links are hidden as a spoiler (``||...||``) too."""
    upload = line.upload
    if upload is None:
        return _failure(line, language)
    if not upload.active:
        return _gone(line, upload, language)
    links = link(translate(language, "viewer"), upload.viewer_url)
    if upload.url:
        links += " · " + link(translate(language, "direct"), upload.url)
    else:
        links += " · " + translate(language, "direct: held for moderation")
    shown = f"{_title(line, upload)} {links}"
    if line.spoiler:
        shown = f"||{shown}||"
    return f"{line.number}. {shown} · {expiry(upload, language)}{_note(line, language)}"


def _note(line: ResultLine, language: str) -> str:
    """How the image was handled, e.g. `` · converted from HEIC to JPEG``."""
    note = note_text(line.note, language)
    return f" · {escape_markdown(note)}" if note else ""


def mention(user_id: str | int) -> str:
    """Names a user (the bot sends with no allowed mentions: nobody is pinged)."""
    return f"<@{user_id}>"


def public_text(
    lines: Sequence[ResultLine],
    skipped: Sequence[str] = (),
    note: str = "",
    for_user: str | None = None,
    language: str = ENGLISH,
) -> str:
    """The links everyone may see; ``skipped`` names attachments that are not images;
    ``for_user`` (a mention) says whose they are, when nothing else shows it."""
    blocks = [public_line(line, language) for line in lines]
    blocks += [_skipped(other, language) for other in skipped]
    heading = rehosted_heading(lines, language)
    if for_user:
        heading = f"{for_user}: {heading[0].lower()}{heading[1:]}"
    return fit(heading, blocks, note, translate(language, MORE))


def _skipped(other: str, language: str) -> str:
    return translate(language, "Skipped {name}: not an image.", name=name(other))


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


def private_line(line: ResultLine, language: str = ENGLISH) -> str:
    upload = line.upload
    if upload is None:
        return _failure(line, language)
    if not upload.active:
        return _gone(line, upload, language)
    about = translate(
        language,
        "#{id} on {host}, {expiry}",
        id=upload.id,
        host=upload.host,
        expiry=expiry(upload, language),
    )
    about += _note(line, language)
    if line.name != f"#{upload.id}":
        about = f"**{name(line.name)}** ({about})"
    viewer, direct = translate(language, "viewer"), translate(language, "direct")
    text = f"{line.number}. {about}: {link(viewer, upload.viewer_url)}"
    if upload.url:
        text += f" · {link(direct, upload.url)}"
    if upload.delete_url:
        text += "\n   " + translate(language, "delete: <{url}>", url=upload.delete_url)
    elif upload.reused_from is not None:
        text += "\n   " + translate(
            language, "(same image as an earlier upload by someone else: no delete link)"
        )
    return text


def private_text(
    lines: Sequence[ResultLine],
    heading: str | None = None,
    skipped: Sequence[str] = (),
    more: str = MORE,
    language: str = ENGLISH,
) -> str:
    """Everything, delete links included. Send only in private, with SUPPRESS_EMBEDS."""
    head = heading or rehosted_heading(lines, language)
    warning = delete_warning_for((line.upload for line in lines), language)
    tail = (
        "\n" + translate(language, "{warning} Or use the Delete button.", warning=warning)
        if warning
        else ""
    )
    blocks = [private_line(line, language) for line in lines]
    blocks += [_skipped(other, language) for other in skipped]
    return fit(head, blocks, tail, translate(language, more))


def private_heading(
    lines: Sequence[ResultLine],
    *,
    in_place: bool,
    about: str | None,
    language: str = ENGLISH,
) -> str:
    """``Only you can see this. Rehosted:`` in place; ``Rehosted: (in #chan)`` in a DM
    about a channel (``about``: how that channel is named; empty or None: no name)."""
    heading = rehosted_heading(lines, language)
    if in_place:
        return f"{translate(language, ONLY_YOU)} {heading}"
    if about:
        return translate(language, "{heading} (in {place})", heading=heading, place=about)
    return heading


def mine_text(
    uploads: Sequence[UploadRecord], lines: Sequence[ResultLine], language: str = ENGLISH
) -> str:
    if not uploads:
        return translate(language, "You have no live uploads.")
    return private_text(
        lines,
        heading=translate(language, "Your live uploads:"),
        more=N_("…and {n} more."),
        language=language,
    )


def dm_closed_note(user_mention: str, language: str = ENGLISH) -> str:
    return "\n" + translate(
        language,
        "{user}: I could not DM you your delete links (your DMs are closed); they wait in /mine.",
        user=user_mention,
    )


def dm_failed_note(user_mention: str, language: str = ENGLISH) -> str:
    return "\n" + translate(
        language,
        "{user}: I could not send you your delete links; they wait in /mine.",
        user=user_mention,
    )


DM_SENT_NOTE = "\nDelete links were sent by DM."


def dm_sent_note(language: str = ENGLISH) -> str:
    return "\n" + translate(language, "Delete links were sent by DM.")


def confirm_text(upload: UploadRecord, language: str = ENGLISH) -> str:
    return translate(
        language,
        "Delete #{id} ({viewer})? The image will be gone for everyone it was shared with.",
        id=upload.id,
        viewer=link(translate(language, "viewer"), upload.viewer_url),
    )


def not_yours(upload_id: int, language: str = ENGLISH) -> str:
    return translate(language, "You have no live upload #{id}; see /mine.", id=upload_id)


def where(place: Place, *, here: bool, language: str = ENGLISH) -> str:
    """What a setting of ``place`` covers, in words."""
    mention = f"<#{place.channel_id}>"
    if place.kind == "posts":
        return translate(language, "every post of {channel}", channel=mention)
    if place.kind == "post":
        if here:
            return translate(language, "this post only")
        return translate(language, "the post {channel} only", channel=mention)
    if place.kind == "thread":
        if here:
            return translate(language, "this thread only")
        return translate(language, "the thread {channel} only", channel=mention)
    return translate(language, "{channel} and its threads", channel=mention)


def auto_text(place: Place, enabled: bool, lasting: str, language: str = ENGLISH) -> str:
    """The answer to /rehost auto: what it now applies to, and what it leaves alone."""
    covered = where(place, here=True, language=language)
    if not enabled:
        text = translate(language, "Auto-rehost is off in {place}.", place=covered)
    else:
        text = translate(
            language,
            "Auto-rehost is on in {place}: images posted there are rehosted ({lasting}). "
            "Uploaders get their delete links by DM.",
            place=covered,
            lasting=lasting,
        )
    if place.in_thread:
        parent = f"<#{place.parent_id}>"
        text += " " + translate(language, "{channel} keeps its own setting.", channel=parent)
    elif place.kind in ("channel", "posts"):
        text += " " + translate(language, "A thread set on its own keeps its setting.")
    return text
