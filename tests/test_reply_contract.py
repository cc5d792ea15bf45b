"""The core's reply contract and its queue, without any platform.

- The delete-link rule, tested once here for every platform: whatever the batch, a public
  message never carries a delete link, and a private one goes only to the owner, without
  link previews.
- Jobs are claimed fairly across owners; an event recorded twice is recorded once; an
  album's items gather until someone asks for them.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from bot.i18n import translate
from bot.intake import Intake
from bot.queue import Batch, JobQueue
from bot.ratelimit import RateLimit
from bot.replyplan import PlannedMessage, ReplyItem, lines, moved_notice, plan_reply
from bot.requests import RehostRequest, SourceRef
from bot.states import Visibility
from bot.store import Store, UploadRecord

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def upload(upload_id: int, delete_url: str | None) -> UploadRecord:
    return UploadRecord(
        id=upload_id, platform="p", chat_id="c", message_id="m", owner_id="ann",
        sha256="0" * 64, size=1, mime="image/png", host="chev", dialect="chevereto",
        host_image_id="x", viewer_url=f"https://h/{upload_id}", url=f"https://h/{upload_id}.png",
        delete_url=delete_url, expires_at=None, created_at=NOW, state="active",
    )  # fmt: skip


batches = st.builds(
    Batch,
    id=st.just("b"),
    platform=st.just("p"),
    chat_id=st.sampled_from(["ann", "-100", "555"]),
    owner_id=st.just("ann"),
    owner_name=st.text(max_size=5),
    message_id=st.one_of(st.none(), st.just("9")),
    chat_title=st.one_of(st.none(), st.text(max_size=5)),
    private_in_place=st.booleans(),
    context=st.just({}),
    skipped=st.just(()),
    answer=st.just("outbox"),
    state=st.just("open"),
)
items = st.lists(
    st.builds(
        ReplyItem,
        name=st.text(min_size=1, max_size=5),
        upload_id=st.one_of(st.none(), st.integers(1, 5)),
        error=st.one_of(st.none(), st.just("refused")),
    ),
    min_size=1,
    max_size=5,
)


@given(batches, items, st.sets(st.integers(1, 5)))
def test_no_plan_puts_a_delete_link_in_public_or_a_preview_in_private(
    batch: Batch, shown: list[ReplyItem], with_delete: set[int]
) -> None:
    records = {
        i: upload(i, f"https://h/delete/{i}" if i in with_delete else None) for i in range(6)
    }
    has_delete = any(i.upload_id in with_delete for i in shown)
    plan = plan_reply(batch, shown, has_delete)
    for message in plan:
        rendered = lines(message, records.get)
        if message.visibility is Visibility.PUBLIC:
            assert message.chat_id == batch.chat_id and message.previews
            assert all(line.upload is None or line.upload.delete_url is None for line in rendered)
        else:
            assert not message.previews
            # Only the owner: their private chat, their DMs, or in place for them alone.
            assert (
                message.chat_id is None
                or (batch.private_chat and message.chat_id == batch.chat_id)
                or message.in_place
            )
    visibilities = [m.visibility for m in plan]
    if batch.private_chat:
        assert visibilities == [Visibility.PRIVATE]
    elif not has_delete:
        assert visibilities == [Visibility.PUBLIC]
    elif batch.private_in_place:  # the platform needs the public answer first
        assert visibilities == [Visibility.PUBLIC, Visibility.PRIVATE]
    else:  # the DM first, so the public post can say whether it arrived
        assert visibilities == [Visibility.PRIVATE, Visibility.PUBLIC]
        assert plan[1].tells_where_private_went


async def make_intake(storage: Path | str, limit: int = 100) -> tuple[Store, JobQueue, Intake]:
    store = await Store.open(storage)
    queue = JobQueue(store)
    return store, queue, Intake(store, queue, RateLimit(limit, 600.0), None)


def request(owner: str, count: int, key: str | None = None, **extra: object) -> RehostRequest:
    sources = [SourceRef(f"{owner}-{i}.png", url=f"http://x/{owner}/{i}") for i in range(count)]
    return RehostRequest("p", f"chat-{owner}", owner, sources, key=key, **extra)  # type: ignore[arg-type]


async def test_claims_take_turns_across_owners(storage: Path | str) -> None:
    store, queue, intake = await make_intake(storage)
    await intake.submit(request("ann", 30))
    first = await queue.claim("w", ["p"], 30.0, 4)
    assert {job.owner_id for job in first} == {"ann"}
    await intake.submit(request("bob", 1))
    [next_job] = await queue.claim("w", ["p"], 30.0, 1, running=[job.id for job in first])
    assert next_job.owner_id == "bob", "Bob's one image does not wait behind Ann's 26"
    await store.close()


async def test_an_event_recorded_twice_is_recorded_once(storage: Path | str) -> None:
    store, queue, intake = await make_intake(storage)
    await intake.submit(request("ann", 2, key="p:chat:7"))
    await intake.submit(request("ann", 2, key="p:chat:7"))
    assert len(await queue.results("p:chat:7")) == 2
    await store.close()


async def test_an_album_is_held_until_asked_for_then_gathered_into_one_batch(
    storage: Path | str,
) -> None:
    store, queue, intake = await make_intake(storage)
    album = "p:chat:album:1"

    def item(message_id: int, **extra: object) -> RehostRequest:
        source = SourceRef(f"{message_id}.png", url="http://x", item_key=str(message_id))
        return RehostRequest("p", "-100", "ann", [source], key=album, chat_title="G", **extra)  # type: ignore[arg-type]

    await intake.submit(item(1, gather=30.0), wanted=False)
    await intake.submit(item(2, gather=30.0), wanted=False)
    assert await queue.claim("w", ["p"], 30.0, 10) == [], "nobody asked for it (yet)"
    await intake.submit(item(3, gather=0.0))  # the /upload caption
    assert await queue.claim("w", ["p"], 30.0, 10) == [], "it is still gathering"
    await store.db.execute("update batches set ready_at = 0 where id = ?", (album,))
    claimed = await queue.claim("w", ["p"], 30.0, 10)
    assert sorted(job.source["item_key"] for job in claimed) == ["1", "2", "3"]
    await store.close()


async def test_an_album_nobody_asks_for_is_dropped(storage: Path | str) -> None:
    store, queue, intake = await make_intake(storage)
    source = SourceRef("1.png", url="http://x", item_key="1")
    await intake.submit(
        RehostRequest("p", "-100", "ann", [source], key="a", chat_title="G"), wanted=False
    )
    assert await queue.drop_unwanted() == 1
    batch = await queue.batch("a")
    assert batch is not None and batch.state == "dropped"
    assert await queue.complete_batches(["p"]) == []
    await store.close()


async def test_a_batch_refused_whole_by_the_rate_limit_is_still_answered(
    storage: Path | str,
) -> None:
    store, queue, intake = await make_intake(storage, limit=1)
    await intake.submit(request("ann", 1))
    refused = await intake.submit(request("ann", 2))
    assert await queue.claim("w", ["p"], 30.0, 10, running=[]) != []
    assert refused in await queue.complete_batches(["p"])
    rows = await queue.results(refused)
    assert all(row["error"] and "try again" in row["error"] for row in rows)
    await store.close()


async def test_batch_round_trips_through_its_row(storage: Path | str) -> None:
    store, queue, intake = await make_intake(storage)
    key = await intake.submit(request("ann", 1, key="k", owner_name="Ann", chat_title="G"))
    batch = await queue.batch(key)
    assert batch is not None
    assert dataclasses.astuple(batch)[:7] == ("k", "p", "chat-ann", "ann", "Ann", None, "G")
    await store.close()


async def test_the_inbox_records_an_update_once_and_forgets_it_once_handled(
    storage: Path | str,
) -> None:
    from bot.inbox import Inbox

    store = await Store.open(storage)
    inbox = Inbox(store)
    assert await inbox.record("p", [(1, {"n": 1}), (2, {"n": 2})]) == [1, 2]
    assert await inbox.record("p", [(1, {"n": 1})]) == [], "delivered again: not new"
    await inbox.handled("p", 1)
    assert await inbox.unhandled("p") == [(2, {"n": 2})]
    assert await inbox.prune("9999-12-31T00:00:00Z") == 1, "only handled updates are pruned"
    await store.close()


def test_a_notice_keeps_its_words_through_the_outbox_and_reads_older_rows() -> None:
    moved = moved_notice("ann", 7, "chev", "zg")
    again = PlannedMessage.from_json(json.loads(json.dumps(moved.to_json())))
    assert again == moved
    assert again.note_in("en") == "Your image #7 moved from chev to zg: new links."
    assert again.note_in("es") == translate(
        "es", "Your image #{id} moved from {old} to {new}: new links.", id=7, old="chev", new="zg"
    )
    assert again.note_in("es") != again.note_in("en")
    # A row queued before notes were kept whole: its msgid and its parameters apart.
    older = {**moved.to_json(), "note": "Your image #{id} moved from {old} to {new}: new links."}
    older["note_params"] = {"id": 7, "old": "chev", "new": "zg"}
    assert PlannedMessage.from_json(older).note_in("es") == again.note_in("es")
