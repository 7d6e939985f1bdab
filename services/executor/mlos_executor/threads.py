"""Threads and instances of a model's ONNX Runtime sessions, per model over the executor's rule.

The rule (the executor's default, `auto_intra_op_threads` in onnx_backend.py): each session gets
the usable CPUs divided by the executor's execution slots, at least 1; a model whose runs
average more than `heavy_run_ms` also gets a "wide" session with every usable CPU, used when it
runs alone. Measured on the 2-core development host (`make bench-executor`: its bare-session
lines and `threads` rows; README "Executor performance switches"): for the demo models (iris
~6 us, silero-vad ~0.2 ms, ocr_cls ~1.4 ms per run at batch 1) a session with every CPU (ONNX
Runtime's own default) is no faster than one thread and uses more CPU per run (ocr_cls: 2.3 vs
1.5 ms; 50 vs 43 ms at batch 32), its helper thread competing with the other runs; only a long
run with the host to itself could gain from a second core.

A model's serving config can override both: `threads` (intra-op threads of each of its sessions;
0 = the rule) and `instance_count` (sessions its runs are spread over, each with its own thread
pool; 0 or 1 = one). Values are checked here: InvalidArgument names the field.
"""

from __future__ import annotations

import os

from mlos_common.errors import InvalidArgument

MAX_INSTANCES = 16


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity mask), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return os.cpu_count() or 1


def resolve_threads(requested: int, default: int) -> int:
    """A model's intra-op threads: `requested` (serving config `threads`) or the executor's
    `default` when 0; more than the usable CPUs or negative is refused."""
    if requested == 0:
        return default
    cpus = usable_cpus()
    if requested < 0 or requested > cpus:
        raise InvalidArgument(
            f"serving config threads {requested} must be between 1 and the executor's usable CPUs ({cpus}); "
            "0 = the executor's rule"
        )
    return requested


def resolve_instances(requested: int) -> int:
    """A model's session count: `requested` (serving config `instance_count`), 0 = 1."""
    if requested < 0 or requested > MAX_INSTANCES:
        raise InvalidArgument(
            f"serving config instance_count {requested} must be between 1 and {MAX_INSTANCES} (0 = 1)"
        )
    return max(1, requested)
