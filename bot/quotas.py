"""A community's daily quotas: images per member, and bytes for the whole community.

A community (a Discord server, a Telegram group; see :mod:`bot.community`) may set
``quota_images_per_member`` and ``quota_bytes_per_day``. "Per day" is a rolling 24-hour
window, not a calendar day: a quota frees up when the oldest image it counts is 24 hours
old, so nobody gains a double allowance around midnight, and the reply can say exactly
when that is.

Both are kept in the database, like the rate limit (:mod:`bot.ratelimit`), so they hold
across every process sharing the work, and are checked inside the transaction that
records the jobs, under a lock on the community (SQLite's write lock; an advisory lock on
PostgreSQL): two processes admitting the same community's images at once cannot both take
the last image of a quota.

- Images: the member's jobs in the community counted in the window (``jobs.counted_at``;
  refused jobs are never counted), through the index on
  ``jobs (platform, community_id, owner_id, counted_at)``.
- Bytes: the quota counts what was uploaded (``uploads.size`` of the community's uploads
  made in the window; an image the bot already had, reused without uploading, costs
  nothing). An image's size is known only once it is downloaded, so it is checked twice:
  at admission new images are refused once the community is at or over its quota, and
  before each upload (:func:`bytes_refusal`) an image that would take it past the quota
  is refused. Only uploads running at that same moment can together pass it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime

from bot.community import Communities
from bot.database import Database
from bot.said import N_, Said, Size, said_n
from bot.store import from_text, to_text

WINDOW = 24 * 3600.0  # seconds: "per day" is the last 24 hours


@dataclass(frozen=True)
class QuotaGrant:
    granted: int  # how many of the images asked for may go ahead
    refusal: Said | None = None  # the answer for each image refused (None: all granted)
    reason: str = ""  # which quota refused them: quota_images or quota_bytes (a metric label)


async def take(
    db: Database,
    platform: str,
    community_id: str | None,
    owner_id: str,
    wanted: int,
    now: float,
) -> QuotaGrant:
    """Inside a transaction: how many of ``wanted`` images this member may rehost now in
    this community. The caller records the granted jobs with ``counted_at = now`` before it
    commits (so the next admission, in any process, counts them)."""
    if community_id is None or wanted <= 0:
        return QuotaGrant(wanted)  # a private chat: no community, no quota
    settings = await Communities(db).settings(platform, community_id)
    images, size = settings.quota_images_per_member, settings.quota_bytes_per_day
    if images is None and size is None:
        return QuotaGrant(wanted)
    await db.lock_key(f"quota {platform} {community_id}")
    server = platform == "discord"
    if size is not None:
        # At admission the images' sizes are unknown: refused once at or over the quota.
        over, frees_at = await _bytes_over(db, platform, community_id, size, 1, now)
        if over:
            return QuotaGrant(0, _bytes_refusal(platform, size, frees_at, now), "quota_bytes")
    if images is None:
        return QuotaGrant(wanted)
    # One aggregate row, however many jobs are in the window (the quota caps the walk).
    row = await db.fetchrow(
        "select count(*) as counted, min(counted_at) as oldest from (select counted_at"
        " from jobs where platform = ? and community_id = ? and owner_id = ?"
        " and counted_at > ? order by counted_at limit ?) as recent",
        (platform, community_id, owner_id, now - WINDOW, max(images, 0)),
    )
    counted = int(row["counted"]) if row is not None else 0
    granted = max(0, min(wanted, images - counted))
    if granted == wanted:
        return QuotaGrant(granted)
    oldest = row["oldest"] if row is not None else None
    # The oldest image counted frees its slot first (one of this batch's, if none was).
    first = float(oldest) if oldest is not None else now
    frees = first + WINDOW if images > 0 else None  # a quota of 0 never frees up
    what = (
        said_n(
            "this server's daily quota of {n} image per member",
            "this server's daily quota of {n} images per member",
            images,
        )
        if server
        else said_n(
            "this group's daily quota of {n} image per member",
            "this group's daily quota of {n} images per member",
            images,
        )
    )
    return QuotaGrant(granted, refusal(what, platform, frees, now), "quota_images")


async def bytes_refusal(
    db: Database, platform: str, community_id: str | None, quota: int | None, size: int, now: float
) -> Said | None:
    """Before an upload, its size known: the refusal when ``size`` more bytes would take
    the community's uploads of the window past its bytes quota (None: it fits). Not under
    the community's lock (an upload takes too long to hold it), so uploads running at the
    same moment may together pass the quota by what they upload at once."""
    if community_id is None or quota is None:
        return None
    if size > quota:  # it would never fit: say so rather than when the quota frees up
        return Said(
            N_("the file is {size}, more than {what}"),
            {"size": Size(size), "what": _bytes_quota(platform, quota)},
        )
    over, frees_at = await _bytes_over(db, platform, community_id, quota, size, now)
    return _bytes_refusal(platform, quota, frees_at, now) if over else None


async def _bytes_over(
    db: Database, platform: str, community_id: str, quota: int, adding: int, now: float
) -> tuple[bool, float | None]:
    """Whether the community's uploads of the window, plus ``adding`` bytes, pass
    ``quota``, and if so when enough of them leave the window for ``adding`` to fit (None:
    never, as with a quota of 0 or ``adding`` over the quota by itself)."""
    since = to_text(datetime.fromtimestamp(now - WINDOW, UTC))
    where = "from uploads where platform = ? and community_id = ? and created_at > ?"
    params = (platform, community_id, since)
    total = int(await db.fetchval(f"select coalesce(sum(size), 0) as total {where}", params))
    if total + adding <= quota:
        return False, None  # the usual case: one row back, not the day's uploads
    if adding > quota:
        return True, None
    rows = await db.fetch(f"select size, created_at {where} order by created_at", params)
    total = sum(int(row["size"] or 0) for row in rows)  # uploads may have finished since
    for row in rows:  # oldest first: each leaves the window 24 hours after it was made
        total -= int(row["size"] or 0)
        if total + adding <= quota:
            made = from_text(row["created_at"])
            return True, made.timestamp() + WINDOW if made is not None else now
    return True, None


def _bytes_refusal(platform: str, quota: int, frees_at: float | None, now: float) -> Said:
    return refusal(_bytes_quota(platform, quota), platform, frees_at, now)


def _bytes_quota(platform: str, quota: int) -> Said:
    return Said(
        N_("this server's daily quota of {size}")
        if platform == "discord"
        else N_("this group's daily quota of {size}"),
        {"size": Size(quota)},
    )


def refusal(what: Said, platform: str, frees_at: float | None, now: float) -> Said:
    """``<what> is used up; it frees up in 3 h 12 min (at 17:45 UTC)``. On Discord the
    relative part is a Discord timestamp, which each reader's client renders (and keeps
    current) in their own language and time zone."""
    if frees_at is None:
        return Said(N_("{what} is used up"), {"what": what})
    at = math.ceil(frees_at / 60) * 60  # to the minute, never before it frees
    clock = datetime.fromtimestamp(at, UTC).strftime("%H:%M")
    if platform == "discord":
        return Said(
            N_("{what} is used up; it frees up {when} (at {clock} UTC)"),
            {"what": what, "when": f"<t:{at}:R>", "clock": clock},
        )
    return Said(
        N_("{what} is used up; it frees up in {wait} (at {clock} UTC)"),
        {"what": what, "wait": wait_phrase(frees_at - now), "clock": clock},
    )


def wait_phrase(seconds: float) -> str:
    """``3 h 12 min``, ``22 h``, ``45 min``, ``1 min`` (at least a minute, rounded up;
    the unit symbols read the same in every language the bot speaks)."""
    minutes = max(1, math.ceil(seconds / 60))
    hours, minutes = divmod(minutes, 60)
    parts = ([f"{hours} h"] if hours else []) + ([f"{minutes} min"] if minutes else [])
    return " ".join(parts)
