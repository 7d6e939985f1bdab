"""A generation's text as it grows: whole UTF-8 characters only, stop strings honoured.

Tokens are pieces of bytes: a character may be split across byte-fallback tokens, and a stop string
may arrive in parts. `TextStream.push(piece)` keeps back what is not yet safe to send (an unfinished
character, or a tail that could be the start of a stop string) and says when a stop string was hit;
the text then ends before it. `flush()` releases what was kept back at the end (an unfinished
character at the very end is replaced by U+FFFD, so the client never receives invalid UTF-8).
"""

from __future__ import annotations

import codecs


class TextStream:
    def __init__(self, stop: tuple[str, ...] = ()) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._stop = tuple(s for s in stop if s)
        self._held = ""       # decoded text not yet sent (could begin a stop string)
        self.stopped = False

    def push(self, piece: bytes) -> str:
        """Text that is now safe to send (may be empty)."""
        if self.stopped:
            return ""
        self._held += self._decoder.decode(piece)
        if not self._stop:
            out, self._held = self._held, ""
            return out
        cut = min((i for i in (self._held.find(s) for s in self._stop) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            out, self._held = self._held[:cut], ""
            return out
        keep = self._partial_stop_len()
        out = self._held[:len(self._held) - keep]
        self._held = self._held[len(self._held) - keep:]
        return out

    def flush(self, complete_only: bool = False) -> str:
        """What was held back; `complete_only` drops an unfinished character (a cancelled
        generation) instead of sending U+FFFD for it."""
        if self.stopped:
            return ""
        out = self._held if complete_only else self._held + self._decoder.decode(b"", final=True)
        self._held = ""
        return out

    def _partial_stop_len(self) -> int:
        """Length of the longest tail of the held text that is a proper prefix of a stop string."""
        best = 0
        for stop in self._stop:
            for n in range(min(len(stop) - 1, len(self._held)), best, -1):
                if self._held.endswith(stop[:n]):
                    best = n
                    break
        return best
