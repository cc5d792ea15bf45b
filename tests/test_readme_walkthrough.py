"""The README's offline walkthrough, step by step: start the emulator, write the config it
shows, upload a file."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from pathlib import Path

import httpx

from sandbox import samples
from tests.conftest import ROOT, run_rehost

README = ROOT / "README.md"


def readme_config(port: int) -> str:
    """The TOML block of the walkthrough, with the port the emulator really got."""
    text = README.read_text()
    walkthrough = text[text.index("## Try it offline") :]
    block = re.search(r"```toml\n(.*?)```", walkthrough, re.S)
    assert block is not None
    return block.group(1).replace("8089", str(port))


async def test_the_offline_walkthrough_works(tmp_path: Path) -> None:
    emulator = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", "emulate-host", "--port", "0",
        cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        assert emulator.stdout is not None
        first = (await asyncio.wait_for(emulator.stdout.readline(), 30)).decode()
        port = int(re.search(r":(\d+)/", first).group(1))  # type: ignore[union-attr]
        (tmp_path / "rehost.toml").write_text(readme_config(port))
        image = samples.png(6, 4)
        (tmp_path / "cat.png").write_bytes(image)
        ran = await run_rehost(
            "upload", str(tmp_path / "cat.png"), "-c", str(tmp_path / "rehost.toml"),
            "--expire", "1d", "--json",
        )  # fmt: skip
        assert ran.code == 0, ran.stderr
        line = json.loads(ran.stdout)
        async with httpx.AsyncClient() as http:
            assert (await http.get(line["url"])).content == image
    finally:
        emulator.send_signal(signal.SIGINT)
        await asyncio.wait_for(emulator.wait(), 30)
    assert line["expires_at"] is not None
