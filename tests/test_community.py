"""Community settings: set, read back, unset, and every change recorded with who made it
(a secret's value never), on both engines."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.community import Communities, CommunitySettings
from bot.store import Store


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
