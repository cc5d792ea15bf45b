"""The bot's languages: gettext catalogues (Babel), plurals, dates.

Every text a user sees is written in English in the source, as the message id, with
``{name}`` placeholders, and goes through :func:`translate` (or :func:`ntranslate` for a
count) with the language of whoever reads it. Strings defined at module level are marked
with :func:`N_` and translated where they are shown. ``pybabel extract`` (keywords in
:data:`KEYWORDS`; setup in README) finds them all; tests/test_i18n.py fails when a
catalogue misses one.

The catalogues are ``bot/locales/<language>/LC_MESSAGES/rehost.po``. Their compiled
``.mo`` files are made when the wheel is built (setup.py) and never committed; without one
(a checkout, an editable install) the ``.po`` is compiled in memory at first use. English
needs no catalogue: the message ids are English.
"""

from __future__ import annotations

import functools
import gettext
import io
import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from babel import Locale
from babel.dates import format_date
from babel.dates import format_timedelta as babel_format_timedelta
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.numbers import format_decimal
from babel.support import Translations
from babel.units import format_unit

# Re-exported: the message type and its helpers are part of this module's interface.
from bot.said import ENGLISH as ENGLISH
from bot.said import N_ as N_
from bot.said import Said as Said
from bot.said import Size as Size
from bot.said import from_stored as from_stored
from bot.said import joined as joined
from bot.said import said as said
from bot.said import said_n as said_n
from bot.said import stored as stored

if TYPE_CHECKING:
    from bot.expiration import Duration

DOMAIN = "rehost"
LOCALES = Path(__file__).parent / "locales"
LANGUAGES = (ENGLISH, "es", "zh_Hans")  # complete catalogues, English first
# For pybabel extract and the catalogue test: function name -> which arguments are text.
KEYWORDS: dict[str, tuple[int, ...] | None] = {
    "translate": (2,),
    "ntranslate": (2, 3),
    "N_": None,
    "said_n": (1, 2),
    "t": (1,),  # a local translate() with the language bound (bot/managing.py)
}
_PLACEHOLDER = re.compile(r"\{(\w*)[^{}]*\}")


def negotiate(code: str | None) -> str:
    """The catalogue for a platform's language code: Discord ``es-ES`` -> ``es``,
    ``zh-CN``/``zh-TW`` -> ``zh_Hans``, Telegram ``zh-hans`` -> ``zh_Hans``; a language
    without a catalogue (or none) -> English. A catalogue name is returned as it is."""
    if not code:
        return ENGLISH
    if code in LANGUAGES:
        return code
    primary = code.replace("_", "-").split("-")[0].lower()
    if primary == "zh":
        return "zh_Hans"  # the one Chinese catalogue: simplified is better than English
    return primary if primary in LANGUAGES else ENGLISH


@functools.cache
def translations(language: str) -> gettext.NullTranslations:
    """The catalogue of ``language`` (cached): its ``.mo`` when built, else its ``.po``
    compiled in memory; English (or a missing catalogue) is the message ids themselves."""
    if language == ENGLISH:
        return gettext.NullTranslations()
    folder = LOCALES / language / "LC_MESSAGES"
    compiled = folder / f"{DOMAIN}.mo"
    source = folder / f"{DOMAIN}.po"
    if compiled.exists() and (
        not source.exists() or compiled.stat().st_mtime >= source.stat().st_mtime
    ):
        with compiled.open("rb") as handle:
            return Translations(handle, DOMAIN)
    if not source.exists():
        return gettext.NullTranslations()
    with source.open("rb") as handle:
        catalog = read_po(handle, locale=language, domain=DOMAIN)
    buffer = io.BytesIO()
    write_mo(buffer, catalog)
    buffer.seek(0)
    return Translations(buffer, DOMAIN)


def iso639_1(language: str) -> str:
    """A catalogue's two-letter language (Telegram's setMyCommands language_code)."""
    return language.split("_")[0]


def translate(language: str, message: str, **params: Any) -> str:
    """``message`` (English, the msgid) in ``language``, its ``{name}``s filled in."""
    text = translations(language).gettext(message)
    return text.format(**params) if params else text


def ntranslate(language: str, singular: str, plural: str, n: int, **params: Any) -> str:
    """The form of ``singular``/``plural`` for ``n`` in ``language``; ``{n}`` is ``n``."""
    return translations(language).ngettext(singular, plural, n).format(n=n, **params)


def placeholders(text: str) -> set[str]:
    """The ``{name}`` placeholders of a text (for checking a translation keeps them)."""
    return set(_PLACEHOLDER.findall(text))


def locale(language: str) -> Locale:
    return Locale.parse(language)


def format_datetime(moment: datetime, language: str) -> str:
    """A date and time (UTC, to the minute) as ``language`` writes them: ``Nov 25, 2026
    10:00 UTC``, ``25 nov 2026 10:00 UTC``, ``2026年11月25日 10:00 UTC``."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    where = locale(language)
    return f"{format_date(moment, 'medium', locale=where)} {moment:%H:%M} UTC"


def format_timedelta(delta: timedelta, language: str) -> str:
    """A duration in words in ``language``, e.g. ``3 days`` / ``3 días`` / ``3天``."""
    return babel_format_timedelta(delta, threshold=1.0, locale=locale(language))


KIBIBYTE, MEBIBYTE, GIBIBYTE = 1 << 10, 1 << 20, 1 << 30


def format_size(size: int, language: str) -> str:
    """A size in bytes as ``language`` writes it, in binary multiples as hosts state their
    limits and the quota form takes megabytes: whole gigabytes when it is some (``2 GB``),
    else megabytes or kilobytes to one decimal (``1.5 MB``, ``1,5 MB``), else bytes."""
    where = locale(language)
    if size >= GIBIBYTE and size % GIBIBYTE == 0:
        return format_unit(size // GIBIBYTE, "digital-gigabyte", length="short", locale=where)
    for scale, unit in ((MEBIBYTE, "digital-megabyte"), (KIBIBYTE, "digital-kilobyte")):
        if size >= scale:
            count = round(size / scale, 1)
            shown: int | float = int(count) if count == int(count) else count
            return format_unit(shown, unit, length="short", locale=where)
    return f"{format_decimal(size, locale=where)} B"


_UNITS = {
    "s": ("second", 1),
    "m": ("minute", 60),
    "h": ("hour", 3600),
    "d": ("day", 86400),
    "w": ("week", 604800),
}


def format_duration(duration: Duration, language: str) -> str:
    """A stored expiry such as ``3d`` or ``1mo`` in words of ``language`` (``3 días``,
    ``1个月``), in the unit it was given in, as :meth:`Duration.describe` does in English."""
    where = locale(language)
    if duration.months and not duration.seconds:
        years, months = divmod(duration.months, 12)
        if not months:
            return format_unit(years, "duration-year", length="long", locale=where)
        return format_unit(duration.months, "duration-month", length="long", locale=where)
    if not duration.months:
        for unit, size in sorted(_UNITS.values(), key=lambda item: -item[1]):
            if duration.seconds % size == 0:
                count = duration.seconds // size
                return format_unit(count, f"duration-{unit}", length="long", locale=where)
    return duration.describe()


# Where a batch's context (adapters put it there at intake) keeps who reads its answer.
OWNER_LANGUAGE = "language"  # the owner's: private and ephemeral replies
PUBLIC_LANGUAGE = "public_language"  # the chat's: public posts


def context_languages(owner: str | None, public: str | None) -> dict[str, str]:
    """The batch context entries naming the owner's and the public post's language."""
    return {OWNER_LANGUAGE: negotiate(owner), PUBLIC_LANGUAGE: negotiate(public)}


def languages_of(context: Mapping[str, Any] | None) -> tuple[str, str]:
    """``(owner's language, public language)`` from a batch context; English if unset."""
    context = context or {}
    return negotiate(context.get(OWNER_LANGUAGE)), negotiate(context.get(PUBLIC_LANGUAGE))
