"""Durations users type, and how each dialect is asked for them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.errors import ExpirationError
from bot.expiration import (
    CHEVERETO_INTERVALS,
    IMGBB_MAX_SECONDS,
    Duration,
    add_months,
    chevereto_interval,
    imgbb_seconds,
    offered_durations,
    parse_duration,
)

NOW = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
instants = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2090, 1, 1), timezones=st.just(UTC)
)
durations = st.one_of(
    st.builds(Duration, seconds=st.integers(1, 400 * 86400)),
    st.builds(Duration, months=st.integers(1, 36)),
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("never", None),
        ("NEVER", None),
        ("0", None),
        ("90s", Duration(seconds=90)),
        ("10m", Duration(seconds=600)),
        ("1h", Duration(seconds=3600)),
        (" 3d ", Duration(seconds=3 * 86400)),
        ("2w", Duration(seconds=14 * 86400)),
        ("1mo", Duration(months=1)),
        ("6 months", Duration(months=6)),
        ("1y", Duration(months=12)),
    ],
)
def test_parse_duration_accepts_what_users_type(text: str, expected: Duration | None) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "soon", "5", "-5m", "3x", "1.5h", "11y", "m5", "0m", "0 d"])
def test_parse_duration_explains_bad_input(text: str) -> None:
    with pytest.raises(ExpirationError) as caught:
        parse_duration(text)
    assert "10m" in caught.value.user_message or "10 years" in caught.value.user_message


@given(st.integers(1, 120), st.sampled_from(["s", "m", "h", "d", "w", "mo"]))
def test_label_round_trips(count: int, unit: str) -> None:
    duration = parse_duration(f"{count}{unit}")
    assert duration is not None
    assert parse_duration(duration.label()) == duration


def test_months_are_calendar_months() -> None:
    assert add_months(NOW, 1) == datetime(2026, 2, 28, 12, 0, tzinfo=UTC)
    assert add_months(NOW, 13) == datetime(2027, 2, 28, 12, 0, tzinfo=UTC)
    assert Duration(months=12).after(datetime(2024, 2, 29, tzinfo=UTC)).day == 28


@given(durations, instants)
def test_chevereto_gets_the_longest_list_value_not_longer_than_asked(
    duration: Duration, now: datetime
) -> None:
    try:
        value, effective = chevereto_interval(duration, now)
    except ExpirationError:
        # Only a request shorter than the shortest interval is refused.
        assert duration.after(now) < now + timedelta(minutes=5)
        return
    table = dict(CHEVERETO_INTERVALS)
    assert table[value] == effective
    assert effective.after(now) <= duration.after(now)
    longer = [d for d in table.values() if d.after(now) > effective.after(now)]
    assert all(d.after(now) > duration.after(now) for d in longer)


def test_chevereto_examples() -> None:
    assert chevereto_interval(Duration(seconds=600), NOW)[0] == "PT5M"
    assert chevereto_interval(Duration(seconds=3600), NOW)[0] == "PT1H"
    assert chevereto_interval(Duration(seconds=10 * 86400), NOW)[0] == "P1W"
    assert chevereto_interval(Duration(months=1), NOW)[0] == "P1M"
    assert chevereto_interval(Duration(months=60), NOW)[0] == "P1Y"
    with pytest.raises(ExpirationError, match="5 minutes"):
        chevereto_interval(Duration(seconds=60), NOW)


@given(durations, instants)
def test_imgbb_seconds_are_exact_or_refused(duration: Duration, now: datetime) -> None:
    seconds = duration.total_seconds(now)
    if 60 <= seconds <= IMGBB_MAX_SECONDS:
        assert imgbb_seconds(duration, now) == seconds
    else:
        with pytest.raises(ExpirationError, match=r"1 minute|180 days"):
            imgbb_seconds(duration, now)


@given(instants)
def test_offered_durations_are_honoured_exactly_by_both_dialects(now: datetime) -> None:
    for duration in offered_durations({"imgbb", "chevereto"}):
        assert chevereto_interval(duration, now)[1] == duration
        assert imgbb_seconds(duration, now) == duration.total_seconds(now)
    assert len(offered_durations({"chevereto"})) <= 25  # fits a Discord choice list
