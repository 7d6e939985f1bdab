"""PredictorFeed: a background task that follows the predictor and comes back after it went away.

Subclasses implement `_follow(client)`: use the open PredictorClient until the predictor ends the
call (return) or it fails (raise); call `_connected()` once data arrived. Around it the feed
opens a fresh channel per attempt, records why an attempt ended (`last_error`), runs `_lost()`,
and waits a backoff before the next one (initial_backoff_s doubling to max_backoff_s, reset by
`_connected()`). An empty address means no feed: start() does nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from mlos_common.bootstrap import client_channel, feed_channel_options
from mlos_common.config import ServiceSettings
from mlos_common.errors import MlosError
from mlos_predictor.client import PredictorClient

log = logging.getLogger(__name__)

INITIAL_BACKOFF_S = 0.1
MAX_BACKOFF_S = 5.0


class PredictorFeed:
    what = "predictor feed"  # for logs and the task's name
    ended = "the predictor ended the call"  # last_error when _follow returns

    def __init__(
        self,
        addr: str,
        *,
        settings: ServiceSettings | None = None,
        initial_backoff_s: float = INITIAL_BACKOFF_S,
        max_backoff_s: float = MAX_BACKOFF_S,
        timeout_s: float | None = 10.0,
    ) -> None:
        """`timeout_s`: the limit of each unary call (streams have none)."""
        self.addr = addr
        self._initial_backoff_s = self._backoff_s = initial_backoff_s
        self._max_backoff_s = max_backoff_s
        self._timeout_s = timeout_s
        self._settings = settings
        self._options = feed_channel_options(settings, initial_backoff_s, max_backoff_s)
        self._task: asyncio.Task[None] | None = None
        self.connected = False  # data arrived on the current attempt
        self.last_error = ""

    def start(self) -> None:
        if self.addr and self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run(), name=f"{self.what}<-{self.addr}")

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.connected = False

    async def _run(self) -> None:
        while True:
            try:
                channel = client_channel(self.addr, self._settings, options=self._options)
                async with PredictorClient(self.addr, channel=channel, timeout_s=self._timeout_s) as client:
                    await self._follow(client)
                self.last_error = self.ended
            except MlosError as exc:
                self.last_error = exc.message
            except Exception as exc:  # noqa: BLE001 - the feed must outlive one bad call
                log.exception("%s from %s failed", self.what, self.addr)
                self.last_error = f"{type(exc).__name__}: {exc}"
            self._lost()
            self.connected = False
            await asyncio.sleep(self._backoff_s)
            self._backoff_s = min(self._backoff_s * 2, self._max_backoff_s)

    def _connected(self) -> None:
        self.connected = True
        self._backoff_s = self._initial_backoff_s

    async def _follow(self, client: PredictorClient) -> None:
        raise NotImplementedError

    def _lost(self) -> None:
        """An attempt ended (self.connected still says whether data had arrived)."""
        if self.connected:
            log.warning("%s from %s lost (%s); reconnecting", self.what, self.addr, self.last_error)
