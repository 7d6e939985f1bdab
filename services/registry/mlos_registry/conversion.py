"""SafeTensors and PyTorch checkpoints -> ONNX, in a resource-limited child, cached by source digest.

A source needs conversion when it is a Hugging Face-style folder (config.json + model.safetensors
or pytorch_model.bin, tokenizer files beside) or a single SafeTensors / PyTorch / pickle file with
a config.json beside it (checkpoint_source.py finds it and refuses unsupported architectures;
SUPPORTED is the list). The weights are hashed here, never parsed. Parsing and
export run in convert_child.py under RLIMIT_AS / RLIMIT_CPU and a wall-clock limit, so a hostile
file costs a timeout, not the registry. Results live in <data_dir>/converted/<digest>/ (model.onnx,
facts.json); the digest covers every source file the conversion reads plus the recipe, so the same
source registered again is not converted again (see ConversionStats).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import logging
import os
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram

from mlos_common.errors import DeadlineExceeded, FailedPrecondition, ResourceExhausted, error_for_code
from mlos_registry import formats
from mlos_registry.checkpoint_source import Checkpoint, locate, source_digest
from mlos_registry.config import RegistrySettings
from mlos_registry.domain import EMBED, INFER

log = logging.getLogger(__name__)

RECIPE = "mlos-convert-1"  # bump when the child's output changes: old cache entries are then not used
_STDERR_KEPT = 4096


@dataclass(frozen=True, slots=True)
class Converted:
    onnx: Path
    facts: dict[str, str]
    task: str  # "embed" when modules.json adds pooling, else "infer"
    cached: bool


@dataclass(slots=True)
class ConversionStats:
    """Counts since start (also the mlos_registry_conversions_total metric)."""

    converted: int = 0
    cached: int = 0
    failed: int = 0


class Converter:
    """Converts checkpoints for Registry.register; one conversion per source digest at a time."""

    def __init__(self, settings: RegistrySettings, cache_dir: Path, metrics: CollectorRegistry | None = None) -> None:
        self._settings = settings
        self._cache_dir = cache_dir
        self._locks: dict[str, asyncio.Lock] = {}
        self.stats = ConversionStats()
        # A private registry when the service passes none (tests, benches): the counters still count.
        self.metrics = metrics if metrics is not None else CollectorRegistry()
        self._count = Counter(
            "mlos_registry_conversions", "Checkpoint -> ONNX conversions by outcome (converted, cached, failed)",
            ["outcome"], registry=self.metrics,
        )
        self._seconds = Histogram(
            "mlos_registry_conversion_seconds", "Wall time of checkpoint -> ONNX conversions (cache misses)",
            buckets=(1, 5, 15, 30, 60, 120, 300, 900), registry=self.metrics,
        )

    def prepare(self) -> None:
        """Creates the cache folder and removes half-written results of an earlier run. Blocking."""
        self._cache_dir.mkdir(parents=True, exist_ok=True)
        for stale in self._cache_dir.glob("*.tmp-*"):
            shutil.rmtree(stale, ignore_errors=True)

    def _counted(self, outcome: str) -> None:
        setattr(self.stats, outcome, getattr(self.stats, outcome) + 1)
        self._count.labels(outcome).inc()

    async def convert_if_needed(self, raw: str, check_file: Callable[[str], Path], shown: str = "") -> Converted | None:
        """The ONNX result for a checkpoint source (converted now or from the cache), or None when
        `raw` is not a checkpoint. Typed errors name the reason (see convert_child.py)."""
        source = await asyncio.to_thread(locate, raw, check_file, shown)
        if source is None:
            return None
        if source.format == formats.PICKLE and not self._settings.convert_allow_pickle:
            raise FailedPrecondition(
                f"{source.shown} is a plain Python pickle (legacy PyTorch format); this registry refuses pickles "
                "unless its operator sets MLOS_REGISTRY_CONVERT_ALLOW_PICKLE=true (they then load with "
                "torch.load(weights_only=True))"
            )
        if importlib.util.find_spec("torch") is None or importlib.util.find_spec("transformers") is None:
            raise FailedPrecondition(
                f"{source.shown} needs conversion to ONNX, which needs torch and transformers on the registry's "
                "host: `make install` sets them up (pip install torch==2.13.0 'mlos[convert]')"
            )
        opset = self._settings.convert_opset
        digest = await asyncio.to_thread(source_digest, source, f"{RECIPE} opset {opset}", check_file)
        async with self._locks.setdefault(digest, asyncio.Lock()):
            done = self._cache_dir / digest
            if (done / "model.onnx").is_file() and (done / "facts.json").is_file():
                facts = json.loads((done / "facts.json").read_text())
                self._counted("cached")
                log.info("convert %s: cached result of source %s reused (no conversion)", source.shown, digest[:12])
                return Converted(done / "model.onnx", facts, _task(facts), cached=True)
            try:
                facts = await self._run_child(source, digest, done)
            except BaseException:
                self._counted("failed")
                raise
            self._counted("converted")
            return Converted(done / "model.onnx", facts, _task(facts), cached=False)

    async def _run_child(self, source: Checkpoint, digest: str, done: Path) -> dict[str, str]:
        settings = self._settings
        out = self._cache_dir / f"{digest}.tmp-{os.getpid()}"
        await asyncio.to_thread(shutil.rmtree, out, True)
        await asyncio.to_thread(out.mkdir, parents=True)
        request = {
            "folder": str(source.folder), "weights": str(source.weights), "format": source.format,
            "shown": source.shown, "architecture": source.architecture, "source_sha256": digest, "out": str(out),
            "opset": settings.convert_opset, "max_memory_bytes": settings.convert_max_memory_bytes,
            "cpu_s": int(settings.convert_timeout_s * 4) + 1, "threads": settings.convert_threads,
        }
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        log.info("convert %s (%s, %s): starting a child (limits %d bytes, %.0f s)", source.shown, source.format,
                 source.architecture, settings.convert_max_memory_bytes, settings.convert_timeout_s)
        started = asyncio.get_running_loop().time()
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "mlos_registry.convert_child", json.dumps(request),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env,
        )
        stderr_tail = bytearray()
        outcome: dict = {}
        try:
            async with asyncio.timeout(settings.convert_timeout_s):
                drain = asyncio.create_task(_drain(proc.stderr, stderr_tail))
                outcome = await _follow(proc.stdout, source.shown)
                await proc.wait()
                await drain
        except TimeoutError:
            raise DeadlineExceeded(
                f"conversion of {source.shown} timed out after {settings.convert_timeout_s:g} s "
                "(MLOS_REGISTRY_CONVERT_TIMEOUT_S); the conversion process was stopped"
            ) from None
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            if not outcome.get("result"):
                await asyncio.to_thread(shutil.rmtree, out, True)
        elapsed_s = asyncio.get_running_loop().time() - started
        if "error" in outcome:
            error = outcome["error"]
            log.warning("convert %s refused: %s", source.shown, error.get("message"))
            raise error_for_code(str(error.get("code")), str(error.get("message")))
        if "result" not in outcome:
            tail = stderr_tail.decode(errors="replace").strip().splitlines()[-3:]
            raise ResourceExhausted(
                f"conversion of {source.shown} died (exit {proc.returncode}) without a result: out of memory under "
                f"{settings.convert_max_memory_bytes} bytes (MLOS_REGISTRY_CONVERT_MAX_MEMORY_BYTES) or CPU time? "
                f"last output: {' | '.join(tail)[:300]}"
            )
        await asyncio.to_thread(shutil.rmtree, done, True)
        await asyncio.to_thread(os.replace, out, done)
        self._seconds.observe(elapsed_s)
        log.info("convert %s: done in %.1f s -> ONNX (%s parameters)", source.shown, elapsed_s,
                 outcome["result"].get("parameter_count"))
        return dict(outcome["result"])


def _task(facts: dict[str, str]) -> str:
    return EMBED if facts.get("pooling") else INFER


async def _follow(stdout: asyncio.StreamReader | None, shown: str) -> dict:
    """Logs the child's progress lines; returns its final {"result"} or {"error"} (or {} if it died)."""
    assert stdout is not None
    steps = 0
    while line := await stdout.readline():
        try:
            message = json.loads(line)
        except ValueError:
            continue  # a library printing to stdout
        if isinstance(message, dict) and "step" in message:
            steps += 1
            log.info("convert %s: step %d: %s", shown, steps, ", ".join(f"{k}={v}" for k, v in message.items()))
        elif isinstance(message, dict) and ("result" in message or "error" in message):
            return message
    return {}


async def _drain(stream: asyncio.StreamReader | None, tail: bytearray) -> None:
    """Reads the child's stderr so it never blocks on a full pipe, keeping the last bytes."""
    assert stream is not None
    while block := await stream.read(65536):
        tail.extend(block)
        del tail[:-_STDERR_KEPT]
