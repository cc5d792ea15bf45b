"""CPU per Telegram photo, end to end: ``python -m bench.telegram_cost``.

A private photo costs the bot a share of a ``getUpdates``, ``sendChatAction``,
``getFile``, the download, the upload to the image host and the ``sendMessage`` with the
links, plus its own bookkeeping (inbox, job queue, outbox: SQLite). This measures the CPU
the bot process spends per photo with python-telegram-bot (PTB) on its stock
``HTTPXRequest`` and on ``adapters.telegram.request.TelegramRequest``, against the
reference: a minimal aiohttp client making the same four calls (getFile, download,
upload, sendMessage) for photos just like them. Between the two, the same minimal client
with its three Telegram calls made through a PTB ``Bot`` on either request class shows
what the request class alone costs.

Three roles of process (the script runs itself with one):

- ``serve``: the Telegram emulator and the host emulator, in a process of their own (so
  their CPU is nobody's measurement), with a small control API: push photos from users,
  wait for replies, count the bot's Bot API calls, hand out file ids to clients.
- ``bot``: the real adapter on the real core (``open_core``, SQLite), polling the
  emulator; it prints its own ``getrusage`` CPU whenever the driver asks on its standard
  input, so nothing but the bot's work falls between two readings.
- ``client``: a minimal client, timing itself the same way.

Each measured process warms up first (imports, connections, the database, a first photo
from each user), then handles ``--photos`` photos, ``--in-flight`` at a time (the next
photo is sent when a reply arrives). Rounds rotate the order; medians are reported, with
ratios to the reference. ``--json`` prints the result as one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from bench.common import API_KEY, MB, image

TOKEN = "4242:bench-token"
USERS = range(9001, 9009)  # photos come from these users in turn, in private
TARGET = 2.0  # the bot's CPU per photo at most this many times the reference's
NO_PREVIEW = json.dumps({"is_disabled": True})
VARIANTS = ("bot-httpx", "bot-aiohttp", "client-httpx", "client-aiohttp", "reference")
LABELS = {
    "bot-httpx": "the bot, PTB on HTTPXRequest (before)",
    "bot-aiohttp": "the bot, PTB on TelegramRequest (aiohttp)",
    "client-httpx": "minimal client, PTB on HTTPXRequest",
    "client-aiohttp": "minimal client, PTB on TelegramRequest",
    "reference": "minimal client, plain aiohttp (the reference)",
}
Json = dict[str, Any]


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)  # every thread of this process
    return usage.ru_utime + usage.ru_stime


# --- serve: the emulators and their control API ----------------------------------------------


async def serve(size: int) -> None:
    from sandbox.hostemu import HostEmulator
    from sandbox.telegram_api import SentCall, TelegramEmulator

    async with (
        TelegramEmulator(token=TOKEN, flood_limits=None) as tg,
        HostEmulator(api_keys=(API_KEY,), chevereto_max_bytes=32 * MB, keep_bytes=False) as host,
    ):
        for user in USERS:
            tg.add_user(user, first_name=f"User{user}")
        made = 0

        def next_photo() -> tuple[int, bytes]:
            nonlocal made
            made += 1
            return USERS[made % len(USERS)], image("tgcost", made, size)

        def replies() -> int:  # the bot and the reference send only replies to photos
            return sum(1 for c in tg.calls if c.method == "sendMessage" and c.ok)

        async def push(request: web.Request) -> web.Response:
            for _ in range(int(request.query["count"])):
                user, data = next_photo()
                tg.send_photo(user, user, data)
            return web.json_response({"replies": replies()})

        async def files(request: web.Request) -> web.Response:
            out = []
            for _ in range(int(request.query["count"])):
                user, data = next_photo()
                out.append([tg.add_file(data, folder="photos", extension="jpg"), user])
            return web.json_response(out)

        async def wait(request: web.Request) -> web.Response:
            """Until ``replies`` replies were sent in all (or a minute passed)."""
            wanted, count = int(request.query["replies"]), 0

            def enough(call: SentCall) -> bool:
                nonlocal count
                count += call.method == "sendMessage" and call.ok
                return count >= wanted

            with contextlib.suppress(AssertionError):  # not within the minute
                await tg.wait_for(enough, timeout=60)
            return web.json_response({"replies": count})

        async def calls(_: web.Request) -> web.Response:
            counts: dict[str, int] = {}
            for call in tg.calls:
                counts[call.method] = counts.get(call.method, 0) + 1
            return web.json_response(counts)

        app = web.Application()
        app.router.add_post("/push", push)
        app.router.add_post("/files", files)
        app.router.add_get("/wait", wait)
        app.router.add_get("/calls", calls)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        control = "http://{}:{}".format(*runner.addresses[0][:2])
        ready = {
            "control": control,
            "base_url": tg.base_url,
            "base_file_url": tg.base_file_url,
            "endpoint": host.chevereto_endpoint,
        }
        print(json.dumps(ready), flush=True)
        try:  # until the driver closes our standard input
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        finally:
            await runner.cleanup()


# --- bot: the real adapter on the real core --------------------------------------------------


def bot_config(workdir: Path, emulators: Json) -> Path:
    path = workdir / "rehost.toml"
    path.write_text(
        '[upload]\nhosts = ["bench"]\n\n'
        f'[hosts.bench]\ndialect = "chevereto"\nendpoint = "{emulators["endpoint"]}"\n'
        f'api_key = "{API_KEY}"\n\n'
        f'[storage]\npath = "{workdir / "rehost.db"}"\n\n'
        f'[telegram]\ntoken = "{TOKEN}"\nbase_url = "{emulators["base_url"]}"\n'
        f'base_file_url = "{emulators["base_file_url"]}"\n'
    )
    return path


async def run_bot(request_kind: str, config_path: Path) -> None:
    import adapters.telegram.bot as telegram_bot
    from adapters.telegram.bot import TelegramAdapter
    from adapters.telegram.delivery import Pace
    from bot.app import open_core
    from bot.config import load_config

    if request_kind == "httpx":  # what python-telegram-bot builds when given no request
        from telegram.request import HTTPXRequest

        def stock() -> tuple[Any, Any]:
            return HTTPXRequest(connection_pool_size=256), HTTPXRequest(connection_pool_size=1)

        telegram_bot.bot_requests = stock  # type: ignore[attr-defined]  # the adapter as it was
    config = load_config(config_path)
    assert config.telegram is not None
    unpaced = Pace(per_chat=(1000, 1.0), per_group=(1000, 1.0), overall=(1000, 1.0))
    async with open_core(config) as core:
        adapter = TelegramAdapter(core, config.telegram, pace=unpaced, album_wait=0.0)
        await adapter.start()
        try:
            used = type(adapter.delivery.bot.request).__name__
            print(json.dumps({"ready": used}), flush=True)
            loop = asyncio.get_running_loop()
            while await loop.run_in_executor(None, sys.stdin.readline):
                print(json.dumps({"cpu": cpu_seconds()}), flush=True)
        finally:
            await adapter.stop()


# --- minimal clients: the reference, and the same on python-telegram-bot --------------------


class RawTelegram:
    """getFile, the download and sendMessage as plain aiohttp requests (the reference)."""

    def __init__(self, http: aiohttp.ClientSession, emulators: Json) -> None:
        self.http = http
        self.api = f"{emulators['base_url']}{TOKEN}"
        self.files = f"{emulators['base_file_url']}{TOKEN}"

    async def fetch(self, file_id: str) -> bytes:
        async with self.http.post(f"{self.api}/getFile", data={"file_id": file_id}) as answer:
            path = (await answer.json())["result"]["file_path"]
        async with self.http.get(f"{self.files}/{path}") as answer:
            return await answer.read()

    async def reply(self, chat_id: int, text: str) -> None:
        fields = {"chat_id": str(chat_id), "text": text, "link_preview_options": NO_PREVIEW}
        async with self.http.post(f"{self.api}/sendMessage", data=fields) as answer:
            assert (await answer.json())["ok"]


class PtbTelegram:
    """The same three through a python-telegram-bot ``Bot`` on a given request class."""

    def __init__(self, bot: Any) -> None:
        self.bot = bot

    async def fetch(self, file_id: str) -> bytes:
        file = await self.bot.get_file(file_id)
        return bytes(await file.download_as_bytearray())

    async def reply(self, chat_id: int, text: str) -> None:
        from telegram import LinkPreviewOptions

        await self.bot.send_message(
            chat_id, text, link_preview_options=LinkPreviewOptions(is_disabled=True)
        )


@contextlib.asynccontextmanager
async def telegram_client(
    kind: str, http: aiohttp.ClientSession, emulators: Json
) -> AsyncIterator[RawTelegram | PtbTelegram]:
    if kind == "raw":
        yield RawTelegram(http, emulators)
        return
    from telegram import Bot
    from telegram.request import HTTPXRequest

    from adapters.telegram.request import TelegramRequest

    request = HTTPXRequest() if kind == "httpx" else TelegramRequest()
    base = {"base_url": emulators["base_url"], "base_file_url": emulators["base_file_url"]}
    async with Bot(TOKEN, request=request, **base) as bot:
        yield PtbTelegram(bot)


async def run_client(
    kind: str, emulators: Json, photos: list[list[Any]], warm: int, in_flight: int
) -> None:
    """A minimal client rehosting ``photos`` (file id, chat): getFile, download, upload
    (always plain aiohttp), sendMessage; ``kind``: how it speaks to Telegram (``raw``,
    or python-telegram-bot on ``httpx`` or ``aiohttp``)."""
    async with (
        aiohttp.ClientSession() as http,
        telegram_client(kind, http, emulators) as telegram,
    ):

        async def one(file_id: str, chat_id: int) -> None:
            data = await telegram.fetch(file_id)
            form = aiohttp.FormData()
            form.add_field("source", data, filename="photo.jpg", content_type="image/jpeg")
            form.add_field("format", "json")
            headers = {"X-API-Key": API_KEY}
            async with http.post(emulators["endpoint"], data=form, headers=headers) as answer:
                uploaded = (await answer.json())["image"]
            text = "\n".join([uploaded["url_viewer"], uploaded["url"], uploaded["delete_url"]])
            await telegram.reply(chat_id, text)

        async def all_of(batch: list[list[Any]]) -> None:
            queue = list(reversed(batch))

            async def worker() -> None:
                while queue:
                    file_id, chat_id = queue.pop()
                    await one(file_id, chat_id)

            await asyncio.gather(*(worker() for _ in range(in_flight)))

        await all_of(photos[:warm])
        cpu, started = cpu_seconds(), time.perf_counter()
        await all_of(photos[warm:])
        measured = {"cpu": cpu_seconds() - cpu, "wall": time.perf_counter() - started}
    print(json.dumps(measured), flush=True)


# --- the driver ------------------------------------------------------------------------------


@dataclass
class Round:
    variant: str
    cpu_ms: float  # per photo
    wall_ms: float  # per photo
    calls: dict[str, float]  # Bot API calls per photo, by method (the bot's)


class Child:
    """A process of this script with a role, spoken to in JSON lines."""

    def __init__(self, *args: str) -> None:
        self.role = args[0]
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.telegram_cost", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )

    def read(self) -> Json:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the {self.role} process of bench.telegram_cost ended early")
        answer: Json = json.loads(line)
        return answer

    def ask(self) -> Json:
        assert self.process.stdin is not None
        self.process.stdin.write("\n")
        self.process.stdin.flush()
        return self.read()

    def close(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


async def _control(control: str, method: str, path: str) -> Any:
    async with aiohttp.ClientSession() as http, http.request(method, control + path) as answer:
        answer.raise_for_status()
        return await answer.json()


async def _drive(
    control: str, warm: int, photos: int, in_flight: int, mark: Callable[[], Json]
) -> tuple[float, float, dict[str, int]]:
    """Warm up, then send ``photos`` with ``in_flight`` awaiting a reply; CPU seconds the
    bot spent (from ``mark``), wall seconds, and the Bot API calls it made meanwhile."""

    async def call(method: str, path: str) -> Any:
        return await _control(control, method, path)

    base = (await call("POST", f"/push?count={warm}"))["replies"]
    await call("GET", f"/wait?replies={base + warm}")
    base += warm
    await asyncio.sleep(0.2)  # the warm-up's last bookkeeping
    before: dict[str, int] = await call("GET", "/calls")
    loop = asyncio.get_running_loop()
    cpu = (await loop.run_in_executor(None, mark))["cpu"]
    started = time.perf_counter()
    sent = min(in_flight, photos)
    await call("POST", f"/push?count={sent}")
    done = 0
    while done < photos:
        done = (await call("GET", f"/wait?replies={base + done + 1}"))["replies"] - base
        if (more := min(photos, done + in_flight) - sent) > 0:
            await call("POST", f"/push?count={more}")
            sent += more
    wall = time.perf_counter() - started
    cpu = (await loop.run_in_executor(None, mark))["cpu"] - cpu
    after: dict[str, int] = await call("GET", "/calls")
    made = {method: count - before.get(method, 0) for method, count in after.items()}
    return cpu, wall, {method: count for method, count in made.items() if count}


def measure_bot(
    request_kind: str, emulators: Json, warm: int, photos: int, in_flight: int
) -> Round:
    with tempfile.TemporaryDirectory(prefix="tgcost-") as workdir:
        child = Child("bot", request_kind, str(bot_config(Path(workdir), emulators)))
        try:
            child.read()  # started
            cpu, wall, calls = asyncio.run(
                _drive(emulators["control"], warm, photos, in_flight, child.ask)
            )
        finally:
            child.close()
    per_photo = {method: count / photos for method, count in sorted(calls.items())}
    return Round(f"bot-{request_kind}", 1000 * cpu / photos, 1000 * wall / photos, per_photo)


def measure_client(kind: str, emulators: Json, warm: int, photos: int, in_flight: int) -> Round:
    batch = asyncio.run(_control(emulators["control"], "POST", f"/files?count={warm + photos}"))
    params = {"emulators": emulators, "photos": batch, "warm": warm, "in_flight": in_flight}
    child = Child("client", kind, json.dumps(params))
    try:
        measured = child.read()
    finally:
        child.close()
    variant = "reference" if kind == "raw" else f"client-{kind}"
    return Round(variant, 1000 * measured["cpu"] / photos, 1000 * measured["wall"] / photos, {})


@dataclass
class Result:
    photos: int
    rounds: int
    size: int
    in_flight: int
    cpu_ms: dict[str, float]  # median per photo, by variant
    wall_ms: dict[str, float]
    ratio: dict[str, float]  # CPU over the reference's
    calls: dict[str, float]  # the bot's Bot API calls per photo (on TelegramRequest)
    target: float
    met: bool  # the bot on TelegramRequest within the target


def run(photos: int = 100, rounds: int = 3, size: int = 256 * 1024, in_flight: int = 1) -> Result:
    warm = len(USERS)
    measured: dict[str, list[Round]] = {variant: [] for variant in VARIANTS}
    server = Child("serve", str(size))
    try:
        emulators = server.read()
        for index in range(rounds):
            shift = index % len(VARIANTS)
            for variant in VARIANTS[shift:] + VARIANTS[:shift]:
                role, _, kind = variant.partition("-")
                if role == "bot":
                    done = measure_bot(kind, emulators, warm, photos, in_flight)
                else:
                    done = measure_client(kind or "raw", emulators, warm, photos, in_flight)
                measured[variant].append(done)
    finally:
        server.close()
    cpu = {v: statistics.median(r.cpu_ms for r in runs) for v, runs in measured.items()}
    wall = {v: statistics.median(r.wall_ms for r in runs) for v, runs in measured.items()}
    ratio = {v: cpu[v] / cpu["reference"] for v in VARIANTS}
    calls = measured["bot-aiohttp"][-1].calls
    met = ratio["bot-aiohttp"] <= TARGET
    return Result(photos, rounds, size, in_flight, cpu, wall, ratio, calls, TARGET, met)


def report(result: Result) -> str:
    lines = [
        f"CPU per Telegram photo (getFile, download, upload, reply): {result.photos} private"
        f" photos of {result.size // 1024} KB, {result.in_flight} in flight,"
        f" median of {result.rounds} rounds",
        f"{'':50} {'CPU/photo':>10} {'wall/photo':>11} {'vs reference':>13}",
    ]
    for variant in VARIANTS:
        cpu, wall, ratio = result.cpu_ms[variant], result.wall_ms[variant], result.ratio[variant]
        lines.append(f"{LABELS[variant]:50} {cpu:7.2f} ms {wall:8.2f} ms {ratio:13.2f}")
    gain = result.cpu_ms["bot-aiohttp"] / result.cpu_ms["bot-httpx"]
    verdict = "met" if result.met else "NOT met"
    lines += [
        f"the bot on TelegramRequest: {gain:.2f} of its CPU on HTTPXRequest;"
        f" target bot <= {result.target:.1f} x reference: {verdict}",
        "the bot's Bot API calls per photo: "
        + ", ".join(f"{method} {count:.2f}" for method, count in result.calls.items()),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    role = argv[0] if argv else ""
    if role == "serve":
        asyncio.run(serve(int(argv[1])))
        return 0
    if role == "bot":
        asyncio.run(run_bot(argv[1], Path(argv[2])))
        return 0
    if role == "client":
        params = json.loads(argv[2])
        asyncio.run(
            run_client(
                argv[1], params["emulators"], params["photos"], params["warm"], params["in_flight"]
            )
        )
        return 0
    parser = argparse.ArgumentParser(
        prog="python -m bench.telegram_cost", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--photos", type=int, default=100, help="photos measured per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size", type=int, default=256 * 1024, help="bytes per photo")
    parser.add_argument("--in-flight", type=int, default=1, help="photos awaiting a reply")
    parser.add_argument("--smoke", action="store_true", help="5 photos, 1 round")
    parser.add_argument("--json", action="store_true", help="the result as one JSON object")
    args = parser.parse_args(argv)
    if args.smoke:
        args.photos, args.rounds = 5, 1
    result = run(args.photos, args.rounds, args.size, args.in_flight)
    print(json.dumps(asdict(result)) if args.json else report(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
