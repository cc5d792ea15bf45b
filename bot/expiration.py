"""Expiry durations: what users type, and what each host dialect can be asked for.

Users write ``never`` or a number and a unit (``90s``, ``10m``, ``1h``, ``3d``, ``2w``,
``1mo``, ``1y``). Months and years are calendar months, as Chevereto's ISO-8601 intervals
are, so a duration is kept as (months, seconds) and only turned into an instant against a
start time.

ImgBB-style hosts take whole seconds from 60 to 15552000 (180 days). Chevereto knows a fixed
list of intervals and silently ignores anything else, so we only ever send a list value: the
longest one that is not longer than what was asked, and we report that effective expiry.
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.errors import ExpirationError
from bot.said import N_, Said, said_n


@dataclass(frozen=True, order=False)
class Duration:
    """A span of calendar months plus seconds, e.g. 1mo = (1, 0), 3d = (0, 259200)."""

    months: int = 0
    seconds: int = 0

    def after(self, start: datetime) -> datetime:
        """The instant this long after ``start`` (months first, as ISO 8601 does)."""
        return add_months(start, self.months) + timedelta(seconds=self.seconds)

    def total_seconds(self, start: datetime) -> int:
        """Length in seconds when counted from ``start``."""
        return int((self.after(start) - start).total_seconds())

    def label(self) -> str:
        """A short human form, e.g. ``3d`` or ``1mo``; the inverse of :func:`parse_duration`."""
        if self.months and not self.seconds:
            if self.months % 12 == 0:
                return f"{self.months // 12}y"
            return f"{self.months}mo"
        if not self.months:
            for unit, size in reversed(_SECOND_UNITS):
                if self.seconds % size == 0:
                    return f"{self.seconds // size}{unit}"
        return f"{self.months}mo+{self.seconds}s"

    def describe(self) -> str:
        """A human phrase, e.g. ``3 days`` or ``1 month``."""
        if self.months and not self.seconds:
            years, months = divmod(self.months, 12)
            if not months:
                return _plural(years, "year")
            return _plural(self.months, "month")
        if not self.months:
            for unit, size in reversed(_SECOND_UNITS):
                if self.seconds % size == 0:
                    return _plural(self.seconds // size, _UNIT_WORDS[unit])
        return self.label()


_SECOND_UNITS: tuple[tuple[str, int], ...] = (
    ("s", 1),
    ("m", 60),
    ("h", 3600),
    ("d", 86400),
    ("w", 604800),
)
_UNIT_WORDS = {"s": "second", "m": "minute", "h": "hour", "d": "day", "w": "week"}
_UNIT_ALIASES = {
    "s": "s", "sec": "s", "secs": "s", "second": "s", "seconds": "s",
    "m": "m", "min": "m", "mins": "m", "minute": "m", "minutes": "m",
    "h": "h", "hr": "h", "hrs": "h", "hour": "h", "hours": "h",
    "d": "d", "day": "d", "days": "d",
    "w": "w", "wk": "w", "week": "w", "weeks": "w",
    "mo": "mo", "mon": "mo", "month": "mo", "months": "mo",
    "y": "y", "yr": "y", "year": "y", "years": "y",
}  # fmt: skip
_NEVER = {"never", "none", "off", "forever", "0"}
_DURATION_RE = re.compile(r"^\s*(\d{1,6})\s*([a-z]+)\s*$")
# Ten years is far beyond what any host keeps; refuse silly input before doing arithmetic.
MAX_MONTHS = 120


def _plural(count: int, word: str) -> str:
    return f"{count} {word}" if count == 1 else f"{count} {word}s"


def add_months(start: datetime, months: int) -> datetime:
    """``start`` moved by whole calendar months, clamping the day (Jan 31 + 1mo = Feb 28/29)."""
    if not months:
        return start
    index = start.month - 1 + months
    year, month = start.year + index // 12, index % 12 + 1
    day = min(start.day, calendar.monthrange(year, month)[1])
    return start.replace(year=year, month=month, day=day)


def parse_duration(text: str) -> Duration | None:
    """Parse what a user typed. ``None`` means never expire (``never``, or a bare ``0``).
    A zero duration with a unit (``0m``) is refused: say ``never`` to mean never.

    Raises :class:`ExpirationError` with a plain explanation for anything else.
    """
    cleaned = text.strip().lower()
    if cleaned in _NEVER:
        return None
    match = _DURATION_RE.match(cleaned)
    unit = _UNIT_ALIASES.get(match.group(2)) if match else None
    if match is None or unit is None:
        raise ExpirationError(
            Said(
                N_(
                    "'{text}' is not a duration: use a number and a unit, "
                    "e.g. 10m, 1h, 3d, 2w, 1mo, 1y, or 'never'"
                ),
                {"text": text.strip()[:40]},
            )
        )
    count = int(match.group(1))
    if count == 0:
        # "0m" reads as "at once" as much as "never": refuse to guess.
        raise ExpirationError(
            Said(
                N_(
                    "'{text}' is zero: give a positive duration such as 10m, "
                    "or say 'never' to mean never"
                ),
                {"text": text.strip()[:40]},
            )
        )
    if unit == "mo":
        duration = Duration(months=count)
    elif unit == "y":
        duration = Duration(months=12 * count)
    else:
        duration = Duration(seconds=count * dict(_SECOND_UNITS)[unit])
    if duration.months > MAX_MONTHS or duration.seconds > MAX_MONTHS * 31 * 86400:
        raise ExpirationError(N_("durations longer than 10 years are not supported; use 'never'"))
    return duration


# --- ImgBB dialect -------------------------------------------------------------------------

IMGBB_MIN_SECONDS = 60
IMGBB_MAX_SECONDS = 15_552_000  # 180 days


def imgbb_seconds(duration: Duration, now: datetime) -> int:
    """The ``expiration`` value for an ImgBB-style host, or an error a user can act on."""
    seconds = duration.total_seconds(now)
    if seconds < IMGBB_MIN_SECONDS:
        raise ExpirationError(N_("this host cannot expire images sooner than 1 minute"))
    if seconds > IMGBB_MAX_SECONDS:
        raise ExpirationError(N_("this host keeps expiring images at most 180 days"))
    return seconds


# --- Chevereto dialect ---------------------------------------------------------------------

CHEVERETO_INTERVALS: tuple[tuple[str, Duration], ...] = (
    ("PT5M", Duration(seconds=300)),
    ("PT15M", Duration(seconds=900)),
    ("PT30M", Duration(seconds=1800)),
    ("PT1H", Duration(seconds=3600)),
    ("PT3H", Duration(seconds=3 * 3600)),
    ("PT6H", Duration(seconds=6 * 3600)),
    ("PT12H", Duration(seconds=12 * 3600)),
    ("P1D", Duration(seconds=86400)),
    ("P2D", Duration(seconds=2 * 86400)),
    ("P3D", Duration(seconds=3 * 86400)),
    ("P4D", Duration(seconds=4 * 86400)),
    ("P5D", Duration(seconds=5 * 86400)),
    ("P6D", Duration(seconds=6 * 86400)),
    ("P1W", Duration(seconds=7 * 86400)),
    ("P2W", Duration(seconds=14 * 86400)),
    ("P3W", Duration(seconds=21 * 86400)),
    ("P1M", Duration(months=1)),
    ("P2M", Duration(months=2)),
    ("P3M", Duration(months=3)),
    ("P4M", Duration(months=4)),
    ("P5M", Duration(months=5)),
    ("P6M", Duration(months=6)),
    ("P1Y", Duration(months=12)),
)


def chevereto_interval(duration: Duration, now: datetime) -> tuple[str, Duration]:
    """The longest interval on Chevereto's list that is not longer than ``duration``.

    Returns the wire value and the duration it stands for (the effective expiry).
    """
    wanted = duration.after(now)
    best: tuple[str, Duration] | None = None
    for value, interval in CHEVERETO_INTERVALS:
        if interval.after(now) <= wanted:
            best = (value, interval)
    if best is None:
        raise ExpirationError(N_("this host cannot expire images sooner than 5 minutes"))
    return best


def offered_durations(dialects: set[str]) -> list[Duration]:
    """Durations every given dialect honours exactly, shortest first (for menus).

    Chevereto's list is the narrower one; ImgBB-style hosts take it too up to 180 days.
    """
    choices = [interval for _, interval in CHEVERETO_INTERVALS]
    if "imgbb" in dialects:
        # Measured conservatively: a 6-month span can exceed 180 days.
        choices = [d for d in choices if d.months < 6]
    return choices


def minutes_phrase(seconds: float) -> Said:
    """``1 minute`` or ``N minutes`` (at least one): how long until something may be tried."""
    return said_n("{n} minute", "{n} minutes", max(1, round(seconds / 60)))
