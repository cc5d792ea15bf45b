"""Moving off a host: re-host every live upload of a host onto the other configured hosts.

For each live upload on the host being abandoned (originals; others' reuses follow them):

1. the bytes come from the old host's direct link while it still serves them, else from
   the original chat source where it can still be had (a Telegram file, a Discord
   attachment through a refreshed link);
2. they are uploaded to the other hosts with what is left of the expiry;
3. in one transaction the record keeps its id and owner and gets the new links (and so do
   the reuses), the move is noted, and the bot's posts showing it are queued for an edit
   and the owner's new delete link for a private message (the running bot's outbox
   senders deliver them);
4. the old copy is deleted where the dialect allows (Chevereto), and that is noted too.

Interrupted anywhere, a rerun continues: a moved record is on its new host and is not
moved again, and an old copy not yet deleted is deleted first.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import httpx

from bot.errors import HostError
from bot.expiration import Duration
from bot.fetch import Fetcher, FetchProblem
from bot.hosts.base import UploadSource
from bot.hosts.chevereto import delete_by_link
from bot.outbox import Outbox
from bot.replyplan import PlannedMessage, moved_notice, refresh_post
from bot.requests import Resolver, SourceRef
from bot.states import UploadState, Visibility
from bot.store import Store, UploadRecord, now_utc, to_text
from bot.uploader import Uploader
from bot.userlanguages import owner_language

log = logging.getLogger(__name__)
CHAT_PLATFORMS = ("telegram", "discord")  # whose owners can be told privately


@dataclass(frozen=True)
class Moved:
    upload_id: int
    from_host: str
    to_host: str | None  # None: not moved (see ``problem``)
    problem: str | None = None
    old_deleted: bool = False

    @property
    def ok(self) -> bool:
        return self.to_host is not None


class Migrator:
    def __init__(
        self,
        store: Store,
        uploader: Uploader,
        fetcher: Fetcher,
        http: httpx.AsyncClient,
        resolvers: dict[str, Resolver] | None = None,
        clock: Callable[[], datetime] = now_utc,
    ) -> None:
        self.store = store
        self.uploader = uploader
        self.fetcher = fetcher
        self.http = http
        self.resolvers = resolvers or {}
        self.outbox = Outbox(store)
        self._clock = clock

    async def to_move(self, from_host: str) -> list[UploadRecord]:
        """Live uploads still on ``from_host`` (originals; reuses move with them)."""
        rows = await self.store.db.fetch(
            "select id from uploads where host = ? and state = ? and reused_from is null"
            " and (expires_at is null or expires_at > ?) order by id",
            (from_host, UploadState.ACTIVE, to_text(self._clock())),
        )
        records = [await self.store.upload(int(row["id"])) for row in rows]
        return [record for record in records if record is not None]

    async def run(
        self,
        from_host: str,
        to_hosts: Sequence[str],
        *,
        dry_run: bool = False,
        progress: Callable[[Moved], None] = lambda moved: None,
    ) -> list[Moved]:
        results = []
        for moved in await self._finish_deletions(from_host):
            progress(moved)
        for record in await self.to_move(from_host):
            if dry_run:
                result = Moved(record.id, from_host, None, "would be moved (dry run)")
            else:
                result = await self.move(record, to_hosts)
            progress(result)
            results.append(result)
        return results

    async def move(self, record: UploadRecord, to_hosts: Sequence[str]) -> Moved:
        source = await self._bytes(record)
        if isinstance(source, str):
            return Moved(record.id, record.host, None, source)
        try:
            duration = self._remaining(record)
            outcome = await self.uploader.upload(source, duration, hosts=to_hosts)
        finally:
            source.discard()
        if outcome.image is None:
            return Moved(record.id, record.host, None, str(outcome.reason()))
        image = outcome.image
        db = self.store.db
        async with db.transaction():
            moving = [record.id, *(r.id for r in await self.store.sharing(record.id))]
            marks = ",".join("?" for _ in moving)
            public = (image.host, image.dialect, image.image_id, image.viewer_url, image.url)
            await db.execute(
                "update uploads set host = ?, dialect = ?, host_image_id = ?, viewer_url = ?,"
                " url = ?, expires_at = ?, link_state = null, checked_at = null,"
                f" updated_at = ? where id in ({marks})",
                (*public, to_text(image.expires_at), to_text(now_utc()), *moving),
            )
            await db.execute(
                "update uploads set delete_url = ?, delete_handed_at = null where id = ?",
                (image.delete_url, record.id),
            )
            await db.execute(
                "insert into host_moves (upload_id, from_host, from_dialect, old_delete_url,"
                " to_host, old_deleted, moved_at) values (?, ?, ?, ?, ?, 0, ?)",
                (
                    record.id,
                    record.host,
                    record.dialect,
                    record.delete_url,
                    image.host,
                    to_text(now_utc()),
                ),
            )
            await self._tell(record, moving, image.host, image.delete_url is not None)
        deleted = await self._delete_old(record.id)
        return Moved(record.id, record.host, image.host, old_deleted=deleted)

    async def _tell(
        self,
        record: UploadRecord,
        moving: list[int],
        new_host: str,
        new_delete_link: bool,
    ) -> None:
        """Queue the edits of the bot's posts and the owner's new delete link."""
        marks = ",".join("?" for _ in moving)
        posts = await self.store.db.fetch(
            "select distinct platform, chat_id, message_id, visibility from bot_messages"
            f" where upload_id in ({marks})",
            moving,
        )
        batch = f"move:{record.id}"
        by_platform: dict[str, list[PlannedMessage]] = {}
        for post in posts:
            visibility = Visibility(post["visibility"])
            by_platform.setdefault(post["platform"], []).append(
                refresh_post(post["chat_id"], post["message_id"], visibility, record.owner_id)
            )
        if new_delete_link and record.platform in CHAT_PLATFORMS:
            language = await owner_language(
                self.store.db, record.platform, record.owner_id, record.community_id
            )
            by_platform.setdefault(record.platform, []).append(
                moved_notice(record.owner_id, record.id, record.host, new_host, language)
            )
        for platform, messages in by_platform.items():
            await self.outbox.add(f"{batch}:{platform}", platform, messages)

    async def _bytes(self, record: UploadRecord) -> UploadSource | str:
        """The image's bytes from the old host, else from the chat it came from."""
        problems = []
        link = record.url or record.viewer_url
        fetched = await self.fetcher.fetch(link, filename=f"{record.id}.{_ext(record)}")
        if not isinstance(fetched, FetchProblem):
            return fetched
        problems.append(f"the old host: {fetched.message}")
        origin = await self._origin(record)
        resolver = self.resolvers.get(record.platform)
        if origin is not None and resolver is not None:
            try:
                url = await resolver(origin)
            except ValueError as error:
                problems.append(f"the chat: {error}")
            else:
                again = await self.fetcher.fetch(
                    url, filename=origin.filename, user_link=bool(origin.user_link)
                )
                if not isinstance(again, FetchProblem):
                    return again
                problems.append(f"the chat: {again.message}")
        else:
            problems.append("the chat: its source cannot be had any more")
        return "could not get the image from " + "; nor from ".join(problems)

    async def _origin(self, record: UploadRecord) -> SourceRef | None:
        row = await self.store.db.fetchrow(
            "select source from jobs where upload_id = ? order by id limit 1", (record.id,)
        )
        return SourceRef.from_json(json.loads(row["source"])) if row is not None else None

    def _remaining(self, record: UploadRecord) -> Duration | None:
        if record.expires_at is None:
            return None
        left = (record.expires_at - self._clock()).total_seconds()
        return Duration(seconds=max(60, int(left)))

    async def _finish_deletions(self, from_host: str) -> list[Moved]:
        """Old copies a previous, interrupted run moved away from but did not delete."""
        rows = await self.store.db.fetch(
            "select upload_id, to_host from host_moves where from_host = ? and old_deleted = 0",
            (from_host,),
        )
        done = []
        for row in rows:
            deleted = await self._delete_old(int(row["upload_id"]))
            done.append(Moved(int(row["upload_id"]), from_host, row["to_host"], None, deleted))
        return done

    async def _delete_old(self, upload_id: int) -> bool:
        """Delete the old copy where the dialect allows; note that it is done."""
        row = await self.store.db.fetchrow(
            "select from_host, from_dialect, old_delete_url from host_moves where upload_id = ?",
            (upload_id,),
        )
        if row is None:
            return False
        deletable = row["from_dialect"] == "chevereto" and row["old_delete_url"]
        if deletable:
            try:
                await delete_by_link(self.http, row["old_delete_url"], row["from_host"])
            except HostError as error:
                log.warning("could not delete #%d on %s: %s", upload_id, row["from_host"], error)
                return False
        await self.store.db.execute(
            "update host_moves set old_deleted = ? where upload_id = ?",
            (1 if deletable else 2, upload_id),  # 2: the dialect cannot delete
        )
        return bool(deletable)


def _ext(record: UploadRecord) -> str:
    return (record.mime or "image/png").rpartition("/")[2] or "img"
