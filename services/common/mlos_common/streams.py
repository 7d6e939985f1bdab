"""Serving a request stream concurrently: one task per request, answers as they finish."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Callable, Coroutine
from typing import Any, TypeVar

Request = TypeVar("Request")
Answer = TypeVar("Answer")

_END = object()


async def serve_concurrently(
    requests: AsyncIterable[Request],
    handle: Callable[[Request], Coroutine[Any, Any, None]],
    answers: asyncio.Queue[Any],  # the handlers' answers, then an end marker of its own
) -> AsyncIterator[Answer]:
    """Runs `handle(request)` in its own task for every request as it arrives, and yields what
    the handlers put into `answers`, until the requests end and every handler has finished.

    Handlers must not raise (a request's failure is an answer of its own). When the request
    stream breaks, the answers end and the stream's error is raised after them; when the
    consumer stops, the reader and every handler still running are cancelled. Anything a
    handler scheduled with `loop.call_soon` before finishing is answered before the end.
    """
    loop = asyncio.get_running_loop()
    running: set[asyncio.Task] = set()

    async def read() -> None:
        try:
            async for request in requests:
                task = loop.create_task(handle(request))
                running.add(task)
                task.add_done_callback(running.discard)
            while running:
                await asyncio.gather(*running)
        finally:
            loop.call_soon(answers.put_nowait, _END)  # after anything the handlers scheduled

    reader = loop.create_task(read())
    try:
        while (answer := await answers.get()) is not _END:
            yield answer
        await reader  # surface a broken request stream
    finally:
        reader.cancel()
        for task in list(running):
            task.cancel()
