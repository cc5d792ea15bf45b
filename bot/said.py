"""A message made where its reader's language is not known yet (the core), kept as its
msgid and parameters and written out in each reader's language later (see
:mod:`bot.i18n`). Apart from :mod:`bot.i18n` so that :mod:`bot.errors` can carry one
without loading Babel (the command line starts without it)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.expiration import Duration

ENGLISH = "en"  # the language of the msgids


class Size(int):
    """A parameter that is a size in bytes: written as the reader's language writes sizes
    (:func:`bot.i18n.format_size`)."""


def N_(message: str) -> str:
    """Marks a module-level text for extraction; translate it where it is shown."""
    return message


@dataclass(frozen=True)
class Said:
    """A message made where the reader's language is not known (the core): its msgid and
    parameters, written out in each reader's language later. A parameter that is itself
    a :class:`Said` is translated too, a datetime is written as the language writes
    dates; ``str()`` is the English text."""

    message: str
    # Values: text, numbers, a Size, a datetime, a timedelta or a bot.expiration.Duration
    # (written as the language writes sizes, dates and durations), a list (written as the
    # language lists things) or another Said (translated too).
    params: Mapping[str, object] = field(default_factory=dict)
    plural: str | None = None  # the plural msgid, chosen by the ``n`` parameter

    def in_language(self, language: str) -> str:
        values = {name: _written(value, language) for name, value in self.params.items()}
        if language == ENGLISH:  # the msgid itself: no catalogue to load
            text = self.message
            if self.plural is not None and values.get("n") != 1:
                text = self.plural
            return text.format(**values) if values else text
        from bot.i18n import ntranslate, translate

        if self.plural is not None:
            n = int(str(values.pop("n")))
            return ntranslate(language, self.message, self.plural, n, **values)
        return translate(language, self.message, **values)

    def __str__(self) -> str:
        return self.in_language(ENGLISH)

    def to_text(self) -> str:
        """The form kept in the database (a job's error or note, a queued answer): the
        msgid alone when there are no parameters, else JSON; :meth:`from_text` reads it."""
        if not self.params and self.plural is None:
            return self.message
        return json.dumps(_stored(self))

    @classmethod
    def from_text(cls, text: str) -> Said:
        """A message as :meth:`to_text` kept it. Text that is not such JSON (a row written
        before messages carried parameters) is its own msgid, shown as it is."""
        if text.startswith('{"' + _SAID):
            with contextlib.suppress(ValueError, TypeError, KeyError):
                return _said_from(json.loads(text))
        return cls(text)


_SAID = "said"  # the JSON key of a stored message; a stored datetime is {"at": ISO}


def said_n(singular: str, plural: str, n: int, **params: object) -> Said:
    """A message with a count: ``singular`` or ``plural`` (or more forms, in languages
    that have them) for ``n``, which fills ``{n}``."""
    return Said(singular, {"n": n, **params}, plural)


def _stored(message: Said) -> dict[str, object]:
    data: dict[str, object] = {_SAID: message.message, "params": _stored_params(message.params)}
    if message.plural is not None:
        data["plural"] = message.plural
    return data


def _stored_params(params: Mapping[str, object]) -> dict[str, object]:
    stored: dict[str, object] = {}
    for name, value in params.items():
        if isinstance(value, Said):
            stored[name] = _stored(value)
        elif isinstance(value, Size):
            stored[name] = {"bytes": int(value)}
        elif isinstance(value, timedelta):
            stored[name] = {"seconds": value.total_seconds()}
        elif isinstance(value, _duration_type()):
            stored[name] = {"months": value.months, "duration_seconds": value.seconds}
        elif isinstance(value, datetime):
            stored[name] = {"at": value.isoformat()}
        elif isinstance(value, (list, tuple)):
            stored[name] = [str(item) for item in value]
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            stored[name] = value
        else:
            stored[name] = str(value)
    return stored


def _said_from(data: Mapping[str, Any]) -> Said:
    params: dict[str, object] = {}
    for name, value in dict(data.get("params") or {}).items():
        if isinstance(value, dict) and _SAID in value:
            params[name] = _said_from(value)
        elif isinstance(value, dict) and "at" in value:
            params[name] = datetime.fromisoformat(value["at"])
        elif isinstance(value, dict) and "bytes" in value:
            params[name] = Size(int(value["bytes"]))
        elif isinstance(value, dict) and "seconds" in value:
            params[name] = timedelta(seconds=float(value["seconds"]))
        elif isinstance(value, dict) and "months" in value:
            params[name] = _duration_type()(int(value["months"]), int(value["duration_seconds"]))
        else:
            params[name] = value
    plural = data.get("plural")
    return Said(str(data[_SAID]), params, str(plural) if plural is not None else None)


def said(text: str | Said) -> Said:
    """``text`` as a :class:`Said` (a plain string is its own msgid)."""
    return text if isinstance(text, Said) else Said(text)


def stored(message: Said | None) -> str | None:
    """:meth:`Said.to_text`, keeping None."""
    return None if message is None else message.to_text()


def from_stored(text: str | None) -> Said | None:
    """:meth:`Said.from_text`, keeping None and an empty text as None."""
    return Said.from_text(text) if text else None


def joined(parts: Sequence[Said]) -> Said:
    """Several messages as one, ``first; second; third``, each translated on its own."""
    if len(parts) == 1:
        return parts[0]
    return Said(N_("{first}; {rest}"), {"first": parts[0], "rest": joined(parts[1:])})


def _written(value: object, language: str) -> object:
    if isinstance(value, Said):
        return value.in_language(language)
    if isinstance(value, Size):
        from bot.i18n import format_size

        return format_size(value, language)
    if isinstance(value, (list, tuple)):
        return _listed([str(_written(item, language)) for item in value], language)
    if isinstance(value, datetime):
        from bot.i18n import format_datetime

        return format_datetime(value, language)
    if isinstance(value, timedelta):
        from bot.i18n import format_timedelta

        return format_timedelta(value, language)
    if isinstance(value, _duration_type()):
        if language == ENGLISH:
            return value.describe()
        from bot.i18n import format_duration

        return format_duration(value, language)
    return value


def _duration_type() -> type[Duration]:
    from bot.expiration import Duration  # which imports this module, through bot.errors

    return Duration


def _listed(items: list[str], language: str) -> str:
    """``JPEG, PNG and GIF`` / ``JPEG, PNG y GIF`` / ``JPEG、PNG和GIF``."""
    if language == ENGLISH or len(items) < 2:  # as bot.media.format_list writes it
        return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]
    from babel.lists import format_list

    return format_list(items, locale=language)
