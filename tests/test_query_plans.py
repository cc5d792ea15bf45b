"""No path a user or the sweep triggers reads a whole table: every statement the bot runs
while rehosting, answering, deleting, listing and sweeping is planned, by SQLite itself,
on a database holding 100,000 uploads (and their jobs, batches, posts and answers), and
no plan may scan one of the big tables from end to end."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path
from typing import Any

from bot.community import Communities
from bot.communityadmins import CommunityAdmins
from bot.cooldowns import Cooldowns
from bot.inbox import Inbox
from bot.requests import RehostRequest, SourceRef
from bot.sending import Delivered, OutboxSender
from bot.store import Store
from bot.userlanguages import UserLanguages, owner_language
from sandbox import samples
from sandbox.hostemu import HostEmulator
from tests.conftest import unfinished
from tests.service_harness import service_for

ROWS = 100_000
BIG = (
    "uploads",
    "jobs",
    "batches",
    "outbox",
    "bot_messages",
    "inbox",
    "user_languages",
    "community_admins",
)


def fill(path: Path) -> None:
    """100,000 of everything, as a bot that has run for a long while leaves them."""
    stamp = "2026-01-01T00:00:00Z"
    with sqlite3.connect(path) as conn:
        conn.executemany(
            "insert into uploads (id, platform, chat_id, message_id, owner_id, sha256, size,"
            " host, dialect, viewer_url, url, delete_url, expires_at, created_at, state,"
            " reused_from) values (?, 'test', ?, ?, ?, ?, 10, 'chev', 'chevereto', ?, ?, ?,"
            " ?, ?, ?, ?)",
            (
                (
                    i,
                    f"chat-{i % 500}",
                    str(i),
                    f"user-{i % 2000}",
                    f"{i:064x}",
                    f"http://h/v/{i}",
                    f"http://h/i/{i}.png",
                    f"http://h/d/{i}",
                    None if i % 3 else "2030-01-01T00:00:00Z",
                    stamp,
                    "active" if i % 4 else "expired",
                    i - 1 if i % 10 == 0 else None,
                )
                for i in range(1, ROWS + 1)
            ),
        )
        conn.executemany(
            "insert into batches (id, platform, chat_id, owner_id, owner_name, message_id,"
            " chat_title, private_in_place, context, skipped, answer, ready_at, wanted, state,"
            " created_at) values (?, 'test', ?, ?, '', ?, null, 0, '{}', '[]', 'outbox', 0, 1,"
            " 'answered', ?)",
            (
                (f"old-{i}", f"chat-{i % 500}", f"user-{i % 2000}", str(i), stamp)
                for i in range(ROWS)
            ),
        )
        conn.executemany(
            "insert into jobs (batch, item_key, position, platform, chat_id, message_id,"
            " owner_id, source, state, outcome, upload_id, attempts, fair_key, created_at)"
            " values (?, '0', 0, 'test', ?, ?, ?, '{\"filename\": \"a.png\"}', 'done',"
            " 'uploaded', ?, 1, ?, ?)",
            (
                (f"old-{i}", f"chat-{i % 500}", str(i), f"user-{i % 2000}", i + 1, i, stamp)
                for i in range(ROWS)
            ),
        )
        conn.executemany(
            "insert into bot_messages (upload_id, platform, chat_id, message_id, visibility)"
            " values (?, 'test', ?, ?, 'public')",
            ((i + 1, f"chat-{i % 500}", f"m{i}") for i in range(ROWS)),
        )
        conn.executemany(
            "insert into outbox (batch, platform, seq, visibility, chat_id, owner_id, payload,"
            " state, attempts, not_before, outcome, created_at, updated_at)"
            " values (?, 'test', 0, 'public', ?, ?, '{}', 'sent', 1, 0, 'sent', ?, ?)",
            (
                (f"old-{i}", f"chat-{i % 500}", f"user-{i % 2000}", stamp, stamp)
                for i in range(ROWS)
            ),
        )
        conn.executemany(
            "insert into inbox (platform, update_id, payload, state, received_at)"
            " values ('test', ?, '{}', 'done', ?)",
            ((i, stamp) for i in range(ROWS)),
        )
        conn.executemany(
            "insert into user_languages (platform, user_id, language, updated_at)"
            " values ('test', ?, 'es', ?)",
            ((f"user-{i}", stamp) for i in range(ROWS)),
        )
        conn.executemany(
            "insert into community_admins (platform, community_id, user_id, title, seen_at)"
            " values ('test', ?, ?, 'Group', ?)",
            ((f"group-{i % 1000}", f"user-{i}", stamp) for i in range(ROWS)),
        )


def full_scans(conn: sqlite3.Connection, sql: str, params: Any) -> list[str]:
    plan = conn.execute(f"explain query plan {sql}", tuple(params)).fetchall()
    found = []
    for row in plan:
        detail = row[3]
        scanned = re.match(r"SCAN (\w+)(?: AS (\w+))?", detail)
        if scanned is None:
            continue
        table = scanned.group(1)
        if table in BIG:
            found.append(detail)
    return found


async def test_no_user_or_sweep_path_scans_a_big_table(
    tmp_path: Path, host_emu: HostEmulator
) -> None:
    path = tmp_path / "big.db"
    async with Store.opened(path):
        pass  # the schema
    await asyncio.to_thread(fill, path)
    statements: dict[str, Any] = {}
    urls = [host_emu.add_blob(f"{i}.png", samples.png(70 + i, 3)) for i in range(3)]
    async with service_for(host_emu, path, lease=1.0) as h:
        h.store.db.trace = lambda sql, params: statements.setdefault(sql, params)  # type: ignore[attr-defined]
        service, library = h.service, h.service.library
        # A caller's rehost, with a repeat found by its bytes.
        made = await service.rehost(
            RehostRequest("test", "chat-1", "ann", [SourceRef("a.png", url=urls[0])])
        )
        await service.rehost(
            RehostRequest("test", "chat-1", "bob", [SourceRef("a.png", url=urls[0])])
        )
        # A community's member, under its quotas.
        await Communities(h.store.db).change(
            "test", "g", "1", "A", quota_images_per_member=5, quota_bytes_per_day=10**9
        )
        await service.rehost(
            RehostRequest(
                "test", "chat-4", "dan", [SourceRef("c.png", url=urls[2])], community_id="g"
            )
        )
        # A chat's request, worked by the worker and answered through the outbox.
        sent: list[int] = []

        async def deliver(row: Any) -> Delivered:
            sent.append(row.id)
            return Delivered.sent(row.message.chat_id or "dm", f"posted-{row.id}")

        sender = OutboxSender(service.outbox, "test", deliver, lease=1.0)
        service.on_answer("test", sender.wake)
        service.worker.serve("test")
        tasks = [asyncio.create_task(service.worker.run()), asyncio.create_task(sender.run())]
        try:
            await service.submit(
                RehostRequest(
                    "test", "chat-2", "cat", [SourceRef("b.png", url=urls[1])], chat_title="G"
                )
            )
            async with asyncio.timeout(20):
                while await unfinished(h.store) or not sent:
                    await asyncio.sleep(0.02)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        # Lists, settings, notices, deletes, the sweep.
        upload = made[0].upload
        assert upload is not None
        await library.live_uploads("test", "ann")
        await library.owned_upload(upload.id, "test", "ann")
        await library.uploads_in_message("test", "chat-2", f"posted-{sent[0]}")
        await library.hidden_uploads([upload.id, 5, 6])
        await library.set_auto_rehost("test", "chat-3", True)
        await library.own_chat_settings("test", "chat-3")
        await library.set_nsfw("test", "chat-3", True)
        if await library.claim_notice("test", "ann", "photo", "outbox:1"):
            await library.release_notice("test", "ann", "photo", "outbox:1")
        await h.deleter.delete(upload.id, "test", "ann")
        await h.deleter.delete(50_000, "test", "user-0")
        await library.sweep_expired()
        inbox = Inbox(h.store)
        await inbox.record("test", [(ROWS + 1, {"update_id": ROWS + 1})])
        await inbox.unhandled("test")
        await inbox.handled("test", ROWS + 1)
        await inbox.prune("2026-06-01T00:00:00Z")
        languages = UserLanguages(h.store.db)  # each user's last language
        await languages.saw("test", "ann", "zh-hans")
        await owner_language(h.store.db, "test", "user-7")
        admins = CommunityAdmins(h.store.db)  # the groups /settings offers in private
        await admins.seen("test", "group-7", "ann", "Photos")
        await admins.of("test", "user-7")
        await admins.gone("test", "group-7", "user-7")
        cooldowns = Cooldowns(h.store)
        await cooldowns.cool("chev", 1.0, "flooding")
        await cooldowns.active()
        await service.queue.drop_unwanted()
        await service.queue.complete_batches(["test"])
        await service.queue.next_ready_at(["test"])
        await service.queue.next_lease_end(["test"])
        await service.outbox.next_due("test")
        await service.outbox.private_outcome("old-7")
        await service.outbox.received_at("old-7")  # the reply histogram
        await service.queue.depth()  # the gauges of /metrics
        await service.outbox.depth()
        h.store.db.trace = None  # type: ignore[attr-defined]
    assert len(statements) > 40, "the workload ran the bot's statements"
    with sqlite3.connect(path) as conn:
        scans = {
            sql: found
            for sql, params in statements.items()
            if not sql.lstrip().lower().startswith(("pragma", "begin", "commit"))
            and "as unfinished" not in sql  # the test's own wait
            and (found := full_scans(conn, sql, params))
        }
    assert scans == {}
