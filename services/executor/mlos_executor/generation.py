"""Token-level scheduling of a generation model's generations on one executor.

One decode runs at a time per model (llama.cpp already uses every thread it is given for one). The
generations of a model take turns in chunks of a few tokens: before each chunk the scheduler picks the
most urgent runnable generation by (priority, deadline, arrival) - 1 is the highest priority; no
deadline comes after any deadline; arrival breaks ties, so equal generations run first come, first
served. A more urgent arrival also ends the running chunk at its next token step, so it waits at most
one token step (plus a prompt's prefill, which is not interrupted). The one that yielded keeps its
tokens, sampler and KV state - in its own context while one is free, else saved out of the context as
bytes (see llama_backend.py) - and resumes later exactly where it stopped: its text is the text it
would have made alone.

The first chunk of a generation ends at its first token (time to first token is what a client waits
for); later chunks have `chunk_tokens` tokens. Cancellation and deadlines are checked at every token
step: a cancelled generation ends within one step with a final chunk (finish_reason "cancelled"), one
past its deadline (or past its first-token deadline without a token) fails DEADLINE_EXCEEDED; either
frees its context. Each chunk is delivered through the generation's `emit` callback on the event loop.

No grpc here; llama.cpp calls run in the scheduler's own worker thread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from mlos_common.errors import DeadlineExceeded, Internal, InvalidArgument, MlosError, ResourceExhausted
from mlos_executor.llama_backend import Context, LlamaWeights
from mlos_executor.sampling import SamplingParams, sample
from mlos_executor.textstream import TextStream

log = logging.getLogger(__name__)

LOWEST = 1 << 30  # priority 0 (none given) sorts after every level
TURN_MAX_NS = 20_000_000  # a turn goes back to the loop at least this often (deadlines of waiting generations)


@dataclass(frozen=True, slots=True)
class GenerationSpec:
    prompt: bytes
    max_tokens: int
    sampling: SamplingParams = SamplingParams()
    seed: int | None = None
    stop: tuple[str, ...] = ()
    priority: int = 0
    deadline_ns: int = 0              # time.perf_counter_ns() by which it must end; 0 = none
    first_token_deadline_ns: int = 0  # ... by which its first token must exist; 0 = none
    stream: bool = True               # False: one final chunk with the whole text


@dataclass(frozen=True, slots=True)
class ChunkOut:
    text: bytes
    tokens: int
    final: bool = False
    finish_reason: str = ""
    prompt_tokens: int = 0
    first_token_ns: int = 0
    queued_ns: int = 0
    preemptions: int = 0
    decode_ns: int = 0


Emit = Callable[[ChunkOut | MlosError], None]


@dataclass(eq=False)
class Generation:
    seq: int
    spec: GenerationSpec
    emit: Emit
    arrival_ns: int
    rng: np.random.Generator
    text: TextStream
    next_input: list[int] = field(default_factory=list)  # tokens to decode before the next sample
    logits: np.ndarray | None = None
    n_past: int = 0
    prompt_tokens: int = 0
    tokens: int = 0                   # delivered (event loop)
    made: int = 0                     # sampled (worker thread)
    started_ns: int = 0               # first decode step (0 = waiting)
    first_token_ns: int = 0
    context: Context | None = None
    saved: bytes | None = None        # KV state while out of every context
    preemptions: int = 0
    cancelled: bool = False
    finished: bool = False
    finish_reason: str = ""
    held: list[str] = field(default_factory=list)  # text of a non-streamed generation
    held_tokens: int = 0
    reported: bool = False            # the first-token facts went out with a chunk

    @property
    def key(self) -> tuple[int, float, int]:
        spec = self.spec
        return (spec.priority or LOWEST, spec.deadline_ns or float("inf"), self.seq)


@dataclass
class Chunk:
    """What one turn in the worker made."""

    text: str = ""
    tokens: int = 0
    decode_ns: int = 0
    error: MlosError | None = None


@dataclass
class GenerationCounters:
    completed: int = 0
    cancelled: int = 0
    preemptions: int = 0
    state_saves: int = 0
    state_restores: int = 0
    tokens: int = 0


class TokenScheduler:
    def __init__(self, weights: LlamaWeights, chunk_tokens: int, max_generations: int = 256,
                 preemption: bool = True) -> None:
        """`preemption` False: first come, first served to the end (the naive order, for comparison)."""
        self.weights = weights
        self.preemption = preemption
        self.chunk_tokens = max(1, chunk_tokens)
        self.max_generations = max_generations
        self.counters = GenerationCounters()
        self._open: list[Generation] = []
        self._seq = 0
        self._running: Generation | None = None
        self._last: Generation | None = None
        self._preempt = False         # read by the worker at each token step
        self._wake = asyncio.Event()
        self._thread = ThreadPoolExecutor(1, thread_name_prefix="mlos-llama")
        self._driver: asyncio.Task | None = None
        self._closed = False

    @property
    def open(self) -> list[Generation]:
        return self._open

    @property
    def active(self) -> int:
        return sum(1 for g in self._open if g.started_ns)

    @property
    def waiting(self) -> int:
        return sum(1 for g in self._open if not g.started_ns)

    def submit(self, spec: GenerationSpec, emit: Emit) -> Generation:
        """Queues a generation; raises ResourceExhausted when `max_generations` are open."""
        if self._closed:
            raise ResourceExhausted("the model is being unloaded")
        if len(self._open) >= self.max_generations:
            raise ResourceExhausted(
                f"{len(self._open)} generations are open on this model, the executor's limit is {self.max_generations}"
            )
        self._seq += 1
        seed = spec.seed if spec.seed is not None else int(np.random.default_rng().integers(0, 2**63))
        gen = Generation(self._seq, spec, emit, time.perf_counter_ns(), np.random.default_rng(seed), TextStream(spec.stop))
        self._open.append(gen)
        running = self._running
        if self.preemption and running is not None and gen.key < running.key:
            self._preempt = True
        if self._driver is None:
            self._driver = asyncio.get_running_loop().create_task(self._drive())
        self._wake.set()
        return gen

    def cancel(self, gen: Generation) -> None:
        """Ends `gen` within one token step with a final "cancelled" chunk (at once when not running)."""
        if gen.finished or gen.cancelled:
            return
        gen.cancelled = True
        if gen is not self._running:
            self._finish(gen, "cancelled")
        self._wake.set()

    async def close(self) -> None:
        self._closed = True
        for gen in list(self._open):
            self.cancel(gen)
        if self._driver is not None:
            self._driver.cancel()
            await asyncio.gather(self._driver, return_exceptions=True)
        self._thread.shutdown(wait=True)

    # ---- the loop ----

    async def _drive(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            self._reap()
            runnable = [g for g in self._open if not g.finished]
            if not runnable:
                self._wake.clear()
                await self._wake.wait()
                continue
            gen = min(runnable, key=lambda g: g.key) if self.preemption else runnable[0]
            last = self._last
            if last is not None and last is not gen and not last.finished and last.started_ns:
                last.preemptions += 1
                self.counters.preemptions += 1
            self._running, self._last, self._preempt = gen, gen, False
            try:
                chunk = await loop.run_in_executor(self._thread, self._turn, gen, loop)
            except Exception as exc:  # noqa: BLE001 - one generation's failure is its own
                log.exception("generation %d failed", gen.seq)
                chunk = Chunk(error=Internal(f"llama.cpp failed: {type(exc).__name__}: {exc}"))
            finally:
                self._running = None
            self._deliver(gen, chunk)

    def _reap(self) -> None:
        """Frees the contexts of finished generations and fails those whose deadline passed."""
        now = time.perf_counter_ns()
        for gen in list(self._open):
            if not gen.finished:
                error = _expired(gen, now)
                if error is not None:
                    self._fail(gen, error)
            if gen.finished:
                if gen.context is not None:
                    gen.context.owner = None
                    gen.context = None
                gen.saved = None
                self._open.remove(gen)

    def _deliver(self, gen: Generation, chunk: Chunk) -> None:
        """The chunk a turn ended with: it may end the generation."""
        if gen.finished:
            return
        if chunk.error is not None:
            self.counters.tokens += chunk.tokens
            self._fail(gen, chunk.error)
            return
        if gen.cancelled and not gen.finish_reason:
            gen.finish_reason = "cancelled"
        if gen.finish_reason:
            self.counters.tokens += chunk.tokens
            gen.tokens += chunk.tokens
            self._finish(gen, gen.finish_reason, chunk)
        else:
            self._progress(gen, chunk)

    def _progress(self, gen: Generation, chunk: Chunk) -> None:
        """A chunk the worker finished in the middle of a turn (or at its end): sent, or held
        until the end for a generation that does not stream."""
        if gen.finished:
            return
        self.counters.tokens += chunk.tokens
        gen.tokens += chunk.tokens
        if not gen.spec.stream:
            gen.held.append(chunk.text)
            gen.held_tokens += chunk.tokens
        else:
            gen.emit(self._out(gen, chunk.text, chunk.tokens, chunk.decode_ns))

    def _finish(self, gen: Generation, reason: str, chunk: Chunk | None = None) -> None:
        gen.finished = True
        text = (chunk.text if chunk else "") + gen.text.flush(complete_only=reason == "cancelled")
        tokens = chunk.tokens if chunk else 0
        if not gen.spec.stream:
            text, tokens = "".join(gen.held) + text, gen.held_tokens + tokens
            gen.held.clear()
        if reason == "cancelled":
            self.counters.cancelled += 1
        else:
            self.counters.completed += 1
        gen.emit(self._out(gen, text, tokens, chunk.decode_ns if chunk else 0, reason))
        self._wake.set()

    @staticmethod
    def _out(gen: Generation, text: str, tokens: int, decode_ns: int, reason: str = "") -> ChunkOut:
        """A chunk to send; the first one sent carries the prompt size and the first-token times."""
        first = not gen.reported and bool(gen.first_token_ns)
        gen.reported = gen.reported or first
        return ChunkOut(
            text.encode("utf-8"), tokens, final=bool(reason), finish_reason=reason, decode_ns=decode_ns,
            preemptions=gen.preemptions if reason else 0,
            prompt_tokens=gen.prompt_tokens if first else 0,
            first_token_ns=gen.first_token_ns - gen.arrival_ns if first else 0,
            queued_ns=gen.started_ns - gen.arrival_ns if first else 0,
        )

    def _fail(self, gen: Generation, error: MlosError) -> None:
        gen.finished = True
        gen.emit(error)
        self._wake.set()

    # ---- in the worker thread ----

    def _turn(self, gen: Generation, loop: asyncio.AbstractEventLoop) -> Chunk:
        """Chunks of `gen`, back to back while it stays the one to run: each finished chunk goes
        to the loop at once (`_progress`) and decoding goes on, so sending a chunk never stalls
        the model. The turn ends - returning its last chunk for `_deliver` - when the generation
        ends, is cancelled, expires or is preempted, or after TURN_MAX_NS (the loop then reaps the
        deadlines of waiting generations and picks again)."""
        if not gen.started_ns:
            gen.started_ns = time.perf_counter_ns()
            error = self._start(gen)
            if error is not None:
                return Chunk(error=error)
        context = self._place(gen)
        ends_ns = time.perf_counter_ns() + TURN_MAX_NS
        while True:
            limit = 1 if not gen.first_token_ns else self.chunk_tokens
            chunk = self._chunk(gen, context, limit)
            if (chunk.tokens < limit or gen.finish_reason or gen.cancelled or self._preempt
                    or time.perf_counter_ns() >= ends_ns):
                return chunk
            loop.call_soon_threadsafe(self._progress, gen, chunk)

    def _chunk(self, gen: Generation, context: Context, limit: int) -> Chunk:
        """Up to `limit` tokens of `gen` (fewer when it ends, is cancelled, expires or is preempted)."""
        weights = self.weights
        chunk = Chunk()
        pieces: list[str] = []
        spec = gen.spec
        while chunk.tokens < limit:
            if gen.cancelled:
                gen.finish_reason = "cancelled"
                break
            if _expired(gen, time.perf_counter_ns()) is not None:
                break  # _reap fails it on the loop
            if gen.next_input:
                t0 = time.perf_counter_ns()
                gen.logits = context.decode(gen.next_input, gen.n_past)
                chunk.decode_ns += time.perf_counter_ns() - t0
                gen.n_past += len(gen.next_input)
                gen.next_input = []
            assert gen.logits is not None
            token = sample(gen.logits, spec.sampling, gen.rng)
            if not gen.first_token_ns:
                gen.first_token_ns = time.perf_counter_ns()
            if token in weights.end_tokens:
                gen.finish_reason = "stop"
                break
            chunk.tokens += 1
            gen.made += 1
            pieces.append(gen.text.push(weights.piece(token)))
            if gen.text.stopped:
                gen.finish_reason = "stop"
                break
            if gen.made >= spec.max_tokens:
                gen.finish_reason = "length"
                break
            gen.next_input = [token]
            if self._preempt:
                break
        chunk.text = "".join(pieces)
        return chunk

    def _start(self, gen: Generation) -> MlosError | None:
        """Tokenizes the prompt and checks it fits; the prefill is its first decode."""
        weights = self.weights
        tokens = weights.tokenize(gen.spec.prompt)
        if not tokens:
            return InvalidArgument("input 'text_input' is empty and the model adds no start token; send some text")
        need = len(tokens) + gen.spec.max_tokens
        if need > weights.n_ctx:
            return InvalidArgument(
                f"input 'text_input' is {len(tokens)} tokens and sampling_parameters.max_tokens is "
                f"{gen.spec.max_tokens}: {need} tokens do not fit the model's context of {weights.n_ctx}"
            )
        gen.prompt_tokens = len(tokens)
        gen.next_input = tokens
        return None

    def _place(self, gen: Generation) -> Context:
        """A context holding `gen`'s KV state: its own, a free one, or one taken from the least
        urgent other generation (whose state is saved out first)."""
        if gen.context is not None:
            return gen.context
        contexts = self.weights.contexts
        context = next((c for c in contexts if c.owner is None), None)
        if context is None:
            context = max(contexts, key=lambda c: c.owner.key if isinstance(c.owner, Generation) else (0, 0.0, 0))
            victim = context.owner
            if isinstance(victim, Generation):
                victim.saved = context.save()
                victim.context = None
                self.counters.state_saves += 1
        context.owner, gen.context = gen, context
        if gen.saved is not None:
            context.restore(gen.saved)
            gen.saved = None
            self.counters.state_restores += 1
        else:
            context.clear()
        return context


def _expired(gen: Generation, now_ns: int) -> MlosError | None:
    spec = gen.spec
    if spec.deadline_ns and now_ns >= spec.deadline_ns:
        return DeadlineExceeded(f"the generation's deadline passed after {gen.tokens} tokens")
    if spec.first_token_deadline_ns and not gen.first_token_ns and now_ns >= spec.first_token_deadline_ns:
        return DeadlineExceeded("no first token within the request's first_token_timeout")
    return None
