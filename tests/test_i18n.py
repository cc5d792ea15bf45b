"""The catalogues: every text the source marks for translation is in every catalogue,
translated, with the same placeholders; and the language helpers pick the right one.

Extraction runs in-process over bot/ and adapters/ with bot.i18n's KEYWORDS, as
``pybabel extract -F babel.cfg`` does (see babel.cfg).
"""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

import pytest
from babel.messages.catalog import Catalog, Message
from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from bot import errors, i18n
from bot.errors import CoolingDown, ExpirationError, HostLimit, HostUnavailable
from bot.expiration import parse_duration
from bot.fetch import WEB_PAGE
from bot.i18n import N_, Said
from bot.presenting import ResultLine, error_text, rehosted_heading
from bot.ratelimit import Grant, RateLimit
from bot.uploader import UploadOutcome
from bot.worker import GENERIC_FAILURE


def failed(failures: list[errors.HostError]) -> UploadOutcome:
    return UploadOutcome(image=None, failures=failures)


ROOT = Path(__file__).resolve().parent.parent
SOURCES = ("bot", "adapters")
TRANSLATED = [language for language in i18n.LANGUAGES if language != i18n.ENGLISH]


def extracted() -> dict[str, tuple[str, ...]]:
    """msgid -> its ids (singular, plural), as pybabel extract finds them."""
    found: dict[str, tuple[str, ...]] = {}
    for folder in SOURCES:
        for _, _, message, _, _ in extract_from_dir(
            str(ROOT / folder), [("**.py", "python")], keywords=i18n.KEYWORDS
        ):
            ids = (message,) if isinstance(message, str) else tuple(m for m in message if m)
            found[ids[0]] = ids
    return found


def catalogue(language: str) -> Catalog:
    path = i18n.LOCALES / language / "LC_MESSAGES" / f"{i18n.DOMAIN}.po"
    with path.open("rb") as handle:
        return read_po(handle, locale=language, domain=i18n.DOMAIN)


def strings(message: Message) -> list[str]:
    value = message.string
    return [value] if isinstance(value, str) else list(value or ())


def test_the_source_marks_messages_and_the_template_holds_them_all() -> None:
    messages = extracted()
    assert "Nothing was rehosted." in messages
    assert messages["Rehosted {n} image:"] == ("Rehosted {n} image:", "Rehosted {n} images:")
    with (i18n.LOCALES / f"{i18n.DOMAIN}.pot").open("rb") as handle:
        template = {m.id if isinstance(m.id, str) else m.id[0] for m in read_po(handle) if m.id}
    assert set(messages) - template == set(), "re-run pybabel extract (see babel.cfg)"


@pytest.mark.parametrize("language", TRANSLATED)
def test_every_message_is_translated_with_the_same_placeholders(language: str) -> None:
    messages = extracted()
    catalog = catalogue(language)
    missing, untranslated, mismatched = [], [], []
    for msgid, ids in messages.items():
        entry = catalog.get(msgid if len(ids) == 1 else ids)
        if entry is None:
            missing.append(msgid)
            continue
        forms = strings(entry)
        if entry.fuzzy or not forms or not all(forms):
            untranslated.append(msgid)
            continue
        expected = set().union(*(i18n.placeholders(text) for text in ids))
        if any(i18n.placeholders(form) - expected for form in forms) or not any(
            i18n.placeholders(form) >= i18n.placeholders(ids[0]) for form in forms
        ):
            mismatched.append(msgid)
    assert (missing, untranslated, mismatched) == ([], [], [])


def test_messages_given_to_the_translation_functions_are_plain_literals() -> None:
    """An f-string as a msgid cannot be extracted: its text would never reach a
    catalogue; nor a variable given to N_ or ntranslate."""
    wrong = []
    for folder in SOURCES:
        for path in (ROOT / folder).rglob("*.py"):
            if path == ROOT / "bot" / "said.py":
                continue  # where a message's msgids are passed on, once marked
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call):
                    continue
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                if name == "translate" and len(node.args) >= 2:
                    # A name is fine here (a text marked with N_ where it is defined).
                    if isinstance(node.args[1], (ast.JoinedStr, ast.BinOp)):
                        wrong.append(f"{path.relative_to(ROOT)}:{node.lineno}")
                    continue
                if name not in ("ntranslate", "N_", "said_n"):
                    continue
                positions = i18n.KEYWORDS[name] or (1,)
                for position in positions:
                    if len(node.args) >= position:
                        argument = node.args[position - 1]
                        if not (
                            isinstance(argument, ast.Constant) and isinstance(argument.value, str)
                        ):
                            wrong.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert wrong == []


def test_a_platform_code_picks_a_catalogue() -> None:
    assert i18n.negotiate("es-ES") == "es"
    assert i18n.negotiate("es-419") == "es"
    assert i18n.negotiate("zh-CN") == i18n.negotiate("zh-TW") == "zh_Hans"
    assert i18n.negotiate("zh-hans") == "zh_Hans"
    assert i18n.negotiate("fr") == i18n.negotiate(None) == i18n.negotiate("") == "en"
    assert i18n.negotiate("zh_Hans") == "zh_Hans"


def test_plurals_dates_and_durations_follow_the_language() -> None:
    lines = [ResultLine(n, f"{n}.png") for n in (1, 2, 3)]
    done = [ResultLine(n, f"{n}.png", upload=object()) for n in (1, 2)]  # type: ignore[arg-type]
    assert rehosted_heading(lines, "es") == "No se realojó nada."
    assert rehosted_heading([*done, lines[2]], "en") == "Rehosted 2 images:"
    assert rehosted_heading([*done, lines[2]], "es") == "2 imágenes realojadas:"
    assert rehosted_heading([*done, lines[2]], "zh_Hans") == "已转存 2 张图片："
    assert rehosted_heading([done[0], lines[2]], "es") == "1 imagen realojada:"
    moment = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)
    assert i18n.format_datetime(moment, "es") == "25 nov 2026 10:00 UTC"
    assert i18n.format_datetime(moment, "zh_Hans") == "2026年11月25日 10:00 UTC"
    duration = parse_duration("3d")
    assert duration is not None
    assert i18n.format_duration(duration, "es") == "3 días"
    assert i18n.format_duration(duration, "en") == duration.describe() == "3 days"


def test_a_catalogue_without_its_compiled_file_is_compiled_in_memory() -> None:
    for language in TRANSLATED:
        compiled = i18n.LOCALES / language / "LC_MESSAGES" / f"{i18n.DOMAIN}.mo"
        assert not compiled.exists() or compiled.stat().st_size > 0
    assert i18n.translate("es", "Only you can see this.") == "Solo tú puedes ver esto."
    assert i18n.translate("zh_Hans", "Only you can see this.") == "仅你可见。"
    assert i18n.translate("en", "Only you can see this.") == "Only you can see this."


def test_a_failure_recorded_by_the_core_is_shown_in_the_readers_language() -> None:
    """A failure is kept as its msgid (alone, or with its parameters as JSON); a row
    written before failures carried parameters is its own msgid."""
    assert error_text(WEB_PAGE, "es") == "ese enlace es una página web, no una imagen"
    assert error_text(GENERIC_FAILURE, "zh_Hans") == "转存这张图片时出了问题"
    assert error_text(WEB_PAGE, "en") == WEB_PAGE
    assert error_text("the host said no", "es") == "the host said no"  # not catalogued
    assert error_text(None, "es") == "falló"


def test_a_failure_with_numbers_and_names_is_kept_and_written_in_each_language() -> None:
    over = failed(
        [
            HostLimit("zg", Said(N_("the file is too large for {host}"), {"host": "zg"})),
            HostUnavailable(
                "chev",
                Said(
                    N_("{host} is having trouble (HTTP {status})"), {"host": "chev", "status": 503}
                ),
            ),
        ]
    ).reason()
    kept = Said.from_text(over.to_text())
    assert kept == over
    assert str(kept) == "the file is too large for zg; chev is having trouble (HTTP 503)"
    assert error_text(over.to_text(), "es") == (
        "el archivo es demasiado grande para zg; chev tiene problemas (HTTP 503)"
    )
    assert error_text(kept, "zh_Hans") == "该文件对 zg 来说太大；chev 出现故障（HTTP 503）"
    resting = failed([CoolingDown("zg", 170.0)]).reason()
    assert error_text(resting.to_text(), "es").endswith("vuelve a intentarlo en 3 minutos")
    assert str(resting).endswith("try again in 3 minutes")
    refused = Said.from_text(RateLimit(limit=1, window=60.0).refusal(Grant(0, 30.0)).to_text())
    assert refused.in_language("es") == (
        "has realojado 1 imagen hace poco; vuelve a intentarlo en 1 minuto"
    )
    with pytest.raises(ExpirationError) as raised:
        parse_duration("soon")
    assert raised.value.said.in_language("es").startswith("'soon' no es una duración")
    assert raised.value.user_message.startswith("'soon' is not a duration")


def test_user_facing_errors_are_never_made_from_finished_text() -> None:
    """What the core tells a user is a msgid with parameters (Said), never an f-string:
    an f-string's words would reach every reader in English."""
    carriers = {"Said", "FetchProblem", "SourceUnavailable", "ConversionError", "ExpirationError"}
    carriers |= {cls.__name__ for cls in _subclasses(errors.HostError)}
    wrong = []
    for folder in SOURCES:
        for path in (ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name):
                    continue
                if node.func.id in carriers and any(
                    isinstance(argument, (ast.JoinedStr, ast.BinOp)) for argument in node.args
                ):
                    wrong.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert wrong == []


def _subclasses(cls: type) -> set[type]:
    found = set(cls.__subclasses__())
    return found.union(*(_subclasses(sub) for sub in found)) | {cls}
