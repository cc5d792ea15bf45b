"""How a community's settings and their values are written for people, in their language.

Each setting has one label (:data:`LABELS`), the same on the settings message's value
lines and in its change log, on every platform. A value is written from what its column
stores (the change log keeps exactly that text): durations in words, switches as on/off,
host lists joined as the language joins lists, byte sizes in MB or GB, a language by its
own name, and the setting's own word for "unset" when it was cleared. A secret never
reaches this module: the change log holds only ``"set"`` for an own host
(:data:`bot.community.SECRET_SETTINGS`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from babel import Locale
from babel.core import UnknownLocaleError
from babel.lists import format_list
from babel.numbers import format_decimal

from bot.errors import ExpirationError
from bot.expiration import parse_duration
from bot.i18n import MEBIBYTE, N_, format_datetime, format_duration, format_size, locale, translate
from bot.store import from_text

LABELS: Mapping[str, str] = {
    "hosts": N_("Hosts"),
    "own_host": N_("Own host"),
    "default_expiration": N_("Default expiry"),
    "max_expiration": N_("Longest expiry"),
    "nsfw": N_("NSFW"),
    "language": N_("Language"),
    "quota_images_per_member": N_("Images per member per day"),
    "quota_bytes_per_day": N_("Total per day"),
    "takedown_on_source_delete": N_("Take down when the source is deleted"),
}
# What a setting left unset (or cleared) means, in a word.
UNSET_WORDS: Mapping[str, str] = {
    "hosts": N_("all configured hosts"),
    "own_host": N_("none"),
    "default_expiration": N_("the bot's"),
    "max_expiration": N_("any"),
    "nsfw": N_("default"),
    "language": N_("each member's own"),
    "quota_images_per_member": N_("no limit"),
    "quota_bytes_per_day": N_("no limit"),
    "takedown_on_source_delete": N_("default"),
}
SWITCHES = frozenset({"nsfw", "takedown_on_source_delete"})
EXPIRIES = frozenset({"default_expiration", "max_expiration"})
MEGABYTE = MEBIBYTE  # the quota form takes megabytes


def label(name: str, language: str) -> str:
    """The setting's label; a name that is not a setting is shown as it is."""
    return translate(language, LABELS[name]) if name in LABELS else name


def value(name: str, stored: str | None, language: str) -> str:
    """The value of setting ``name`` as its column stores it (``"1d"``, ``"1"``,
    ``"bb\\nchev"``, ``"104857600"``...), written for people; None: the setting's word for
    unset. A value this module cannot read is shown as it is stored."""
    if stored is None:
        return translate(language, UNSET_WORDS[name]) if name in UNSET_WORDS else "-"
    try:
        return _written(name, stored, language)
    except (ValueError, ExpirationError, UnknownLocaleError):
        return stored


def change_line(change: Mapping[str, Any], language: str) -> str:
    """One row of ``settings_changes``: who set which setting to what, and when."""
    moment = from_text(str(change["changed_at"]))
    return translate(
        language,
        "{who}: {setting} → {value} ({when})",
        who=change["actor_name"],
        setting=label(change["setting"], language),
        value=value(change["setting"], change["value"], language),
        when=format_datetime(moment, language) if moment else "?",
    )


def _written(name: str, stored: str, language: str) -> str:
    where = locale(language)
    if name == "hosts":
        return format_list(stored.split("\n"), locale=where)
    if name == "own_host":
        return translate(language, "set")  # the only value recorded for a secret
    if name in EXPIRIES:
        duration = parse_duration(stored)
        if duration is None:
            return translate(language, "never")
        return format_duration(duration, language)
    if name in SWITCHES:
        if stored in ("0", "False"):
            return translate(language, "off")
        return translate(language, "on")
    if name == "language":
        shown = Locale.parse(stored).display_name or stored
        return shown[:1].upper() + shown[1:]
    if name == "quota_images_per_member":
        return format_decimal(int(stored), locale=where)
    if name == "quota_bytes_per_day":
        return format_size(int(stored), language)
    return stored
