"""The bounded reading cursor under gguf_header: a window over a file object that refuses, before
reading, anything past the end of the file or past the byte budget, and counts parsing steps.

Strings are u64 length + bytes; `skip_strings` walks an array of them in memory without decoding
(the hot loop of a 1,000,000-token vocabulary), keeping the first SAMPLE_ITEMS.
"""

from __future__ import annotations

import struct
from collections.abc import Container
from typing import BinaryIO

from mlos_registry.errors import InvalidModelFile

MAX_KEY_BYTES = 64 * 1024
MAX_STRING_BYTES = 16 * 1024 * 1024
SAMPLE_ITEMS = 16  # items of an array kept in GGUFArray.head
WINDOW_BYTES = 256 * 1024

_U32 = struct.Struct("<I").unpack_from
_U64 = struct.Struct("<Q").unpack_from


class Cursor:
    """Reads forward through a file object with a window buffer, a byte budget and a step budget."""

    def __init__(self, f: BinaryIO, file_size: int, shown_as: str, budget_bytes: int, budget_steps: int) -> None:
        self._f = f
        self.size = file_size
        self.pos = 0
        self._buf = b""
        self._buf_at = 0  # file offset of _buf[0]
        self._shown = shown_as
        self._budget_bytes = budget_bytes
        self._steps_left = budget_steps

    def fail(self, what: str, at: int | None = None) -> InvalidModelFile:
        return InvalidModelFile(
            f"{self._shown} is not a valid GGUF file: {what} at byte offset {self.pos if at is None else at}"
        )

    @property
    def left(self) -> int:
        return self.size - self.pos

    def step(self, count: int = 1) -> None:
        self._steps_left -= count
        if self._steps_left < 0:
            raise self.fail("the header needs more parsing steps than the registry allows (too many entries)")

    def need(self, n: int, what: str) -> None:
        """Makes [pos, pos+n) available in the window; refuses n past the end of the file or the budget."""
        if n > self.left:
            raise self.fail(f"{what} needs {n} bytes but only {self.left} remain (truncated file)")
        if self.pos + n > self._budget_bytes:
            raise self.fail(f"{what} ends past the registry's header budget of {self._budget_bytes} bytes")
        if self.pos >= self._buf_at and self.pos + n <= self._buf_at + len(self._buf):
            return
        self._f.seek(self.pos)
        want = min(max(n, WINDOW_BYTES), self.left, self._budget_bytes - self.pos)
        data = self._f.read(want)
        if len(data) < n:
            raise self.fail(f"{what}: the file ended while reading (it changed while being read?)")
        self._buf, self._buf_at = data, self.pos

    def take(self, n: int, what: str) -> memoryview:
        self.need(n, what)
        start = self.pos - self._buf_at
        self.pos += n
        return memoryview(self._buf)[start : start + n]

    def skip(self, n: int, what: str) -> None:
        if n > self.left:
            raise self.fail(f"{what} needs {n} bytes but only {self.left} remain (truncated file)")
        if self.pos + n > self._budget_bytes:
            raise self.fail(f"{what} ends past the registry's header budget of {self._budget_bytes} bytes")
        self.pos += n

    def u32(self, what: str) -> int:
        return int(_U32(self.take(4, what))[0])

    def u64(self, what: str) -> int:
        return int(_U64(self.take(8, what))[0])

    def string(self, what: str, limit: int, strict: bool) -> str:
        at = self.pos
        n = self.u64(f"the length of {what}")
        if n > limit:
            raise self.fail(f"{what} is {n} bytes long, over the limit of {limit}", at)
        raw = bytes(self.take(n, what))
        try:
            return raw.decode("utf-8", errors="strict" if strict else "replace")
        except UnicodeDecodeError:
            raise self.fail(f"{what} is not valid UTF-8", at + 8) from None

    def entry_name(self, what: str, kind: str, seen: Container[str]) -> str:
        """One step: a metadata key or tensor name (UTF-8, at most MAX_KEY_BYTES), refused if seen before."""
        self.step()
        at = self.pos
        name = self.string(what, MAX_KEY_BYTES, strict=True)
        if name in seen:
            raise self.fail(f"{kind} {name!r} appears twice", at)
        return name

    def skip_strings(self, count: int, what: str) -> tuple[str, ...]:
        """Walks `count` strings (each u64 length + bytes); returns the first SAMPLE_ITEMS of them."""
        head = tuple(self.string(what, MAX_STRING_BYTES, strict=False) for _ in range(min(count, SAMPLE_ITEMS)))
        remaining = count - len(head)
        self.step(remaining)
        while remaining:
            self.need(8, f"the length of {what}")
            buf, base = self._buf, self._buf_at
            off, end = self.pos - base, len(buf)
            while remaining and off + 8 <= end:  # the hot loop: no method calls
                n = _U64(buf, off)[0]
                if n > MAX_STRING_BYTES or off + 8 + n > end:
                    break
                off += 8 + n
                remaining -= 1
            self.pos = base + off
            if remaining and off + 8 <= end:  # a string that crosses the window, or a bad one
                self.string(what, MAX_STRING_BYTES, strict=False)
                remaining -= 1
        return head
