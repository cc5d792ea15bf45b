"""Community settings: set, read back, unset, and every change recorded with who made it
(a secret's value never), on both engines."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.community import Communities, CommunitySettings
from bot.requests import RehostRequest, SourceRef
from bot.store import Store
from sandbox import samples
from sandbox.hostemu import HostEmulator
from tests.service_harness import service_for


async def test_changes_are_stored_and_recorded_with_who_made_them(storage: Path | str) -> None:
    store = await Store.open(storage)
    try:
        communities = Communities(store.db)
        assert await communities.settings("discord", "42") == CommunitySettings()
        assert await communities.settings("discord", None) == CommunitySettings()
        updated = await communities.change(
            "discord", "42", "7", "ann", hosts=("b", "a"), nsfw=True, own_host="sealed-key"
        )
        assert updated.hosts == ("b", "a") and updated.nsfw is True
        await communities.change("discord", "42", "8", "bob", nsfw=None, language="es")
        read = await communities.settings("discord", "42")
        assert read == CommunitySettings(
            hosts=("b", "a"), own_host="sealed-key", nsfw=None, language="es"
        )
        assert await communities.settings("discord", "43") == CommunitySettings()
        changes = await communities.changes("discord", "42")
        seen = [(row["actor_name"], row["setting"], row["value"]) for row in changes]
        assert sorted(seen) == sorted(
            [
                ("ann", "hosts", "b\na"),
                ("ann", "nsfw", "1"),
                ("ann", "own_host", "set"),
                ("bob", "nsfw", None),
                ("bob", "language", "es"),
            ]
        )
        assert "sealed-key" not in repr(changes)
        with pytest.raises(ValueError, match="colour"):
            await communities.change("discord", "42", "7", "ann", colour="red")
    finally:
        await store.close()


async def test_work_carries_its_community_to_the_upload(
    host_emu: HostEmulator, tmp_path: Path
) -> None:
    data = samples.png(61, 5)
    ref = SourceRef("c.png", url=host_emu.add_blob("c.png", data), declared_size=len(data))
    async with service_for(host_emu, tmp_path / "r.db") as h:
        request = RehostRequest("telegram", "-100", "7", [ref], community_id="-100")
        [result] = await h.service.rehost(request)
        assert result.upload is not None and result.upload.community_id == "-100"
        other = samples.png(62, 5)
        mine = SourceRef("d.png", url=host_emu.add_blob("d.png", other), declared_size=len(other))
        private = RehostRequest("telegram", "7", "7", [mine])
        [again] = await h.service.rehost(private)
        assert again.upload is not None and again.upload.community_id is None
        rows = await h.store.db.fetch("select community_id from jobs order by id", ())
        assert [row["community_id"] for row in rows] == ["-100", None]
