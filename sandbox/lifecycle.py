"""What every local emulator shares: ``async with Emulator() as emu`` starts and closes it."""

from __future__ import annotations

from types import TracebackType
from typing import Self


class LocalServer:
    """Subclasses implement ``start`` (on 127.0.0.1, port 0 = any free port) and ``close``."""

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        raise NotImplementedError

    async def close(self) -> None:
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()
