"""`mlos models list` and `mlos models show`: what is registered, its task and, for GGUF, its key facts.

`list` asks the front door what is served (name, version, state) and the registry what each model
is (task, format, signature, facts); without a reachable registry it still lists, with task "?".
`show` prints one version as the registry keeps it (`--json` for scripts).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime

from mlos_common.errors import DeadlineExceeded, Unavailable
from mlos_registry.domain import ModelVersion, TensorSpec

GGUF_FACTS = ("architecture", "quantization", "parameters", "context_length", "vocab_size", "pooling_type")


def add_parsers(msub: argparse._SubParsersAction, non_negative: Callable[[str], int]) -> None:
    show = msub.add_parser("show", help="one registered model: task, format, signature, serving config, facts")
    show.add_argument("name")
    show.add_argument("--version", type=non_negative, default=0, help="version (default: the latest)")
    show.add_argument("--registry", default="127.0.0.1:8101")
    show.add_argument("--json", action="store_true", help="print the version as one JSON object")
    pre = msub.add_parser("prefetch", help="load and warm a model on the executors before its traffic comes")
    pre.add_argument("name")
    pre.add_argument("--addr", default="127.0.0.1:8001", help="scheduler front door")


def count_text(value: str) -> str:
    """'1100048384' -> '1.1B'; text that is not a count comes back unchanged."""
    try:
        number = int(value)
    except ValueError:
        return value
    for scale, suffix in ((10**12, "T"), (10**9, "B"), (10**6, "M"), (10**3, "K")):
        if number >= scale:
            return f"{number / scale:.3g}{suffix}"
    return str(number)


def key_facts(mv: ModelVersion) -> str:
    """One line of a GGUF model's facts: 'llama, Q8_0, 1.1B parameters, context 2048 of 4096, vocab 32000'."""
    facts = mv.facts
    parts = [facts[k] for k in ("architecture", "quantization") if k in facts]
    if "parameters" in facts:
        parts.append(f"{count_text(facts['parameters'])} parameters")
    if "context_length" in facts:
        parts.append(f"context {mv.config.context_length or '?'} of {facts['context_length']}")
    if "vocab_size" in facts:
        parts.append(f"vocab {facts['vocab_size']}")
    if "pooling_type" in facts:
        parts.append(f"pooling {facts['pooling_type']}")
    return ", ".join(parts)


def _specs(specs: tuple[TensorSpec, ...]) -> str:
    return ", ".join(f"{t.name}:{t.datatype}{list(t.shape)}" for t in specs)


def list_rows(
    entries: list[tuple[str, str, str]], known: dict[str, ModelVersion], served_signatures: dict[str, str]
) -> list[str]:
    """The table: entries are (name, version, state) from the front door; `known` the registry's versions
    by name (see served_versions); `served_signatures` the front door's for models the registry did not give."""
    lines = [f"{'MODEL':<20} {'VERSION':<8} {'STATE':<12} {'TASK':<9} INPUTS -> OUTPUTS"]
    for name, version, state in entries:
        mv = known.get(name)
        task = mv.task if mv else "?"
        signature = f"{_specs(mv.inputs)} -> {_specs(mv.outputs)}" if mv else served_signatures.get(name, "")
        lines.append(f"{name:<20} {version:<8} {state:<12} {task:<9} {signature}".rstrip())
        if mv and mv.format == "gguf":
            lines.append(f"{'':<20} {'':<8} {'':<12} {'':<9} gguf: {key_facts(mv)}")
    return lines


def served_versions(versions: list[ModelVersion], entries: list[tuple[str, str, str]]) -> dict[str, ModelVersion]:
    """For each front-door entry (name, version, state): the registry's version it serves, else the latest."""
    by_name: dict[str, list[ModelVersion]] = {}
    for mv in versions:  # ordered by name, then version
        by_name.setdefault(mv.name, []).append(mv)
    known = {}
    for name, served, _ in entries:
        if name in by_name:
            candidates = by_name[name]
            known[name] = next((mv for mv in candidates if str(mv.version) == served), candidates[-1])
    return known


async def models_list(args: argparse.Namespace) -> int:
    from mlos_cli.frontdoor import FrontDoor
    from mlos_registry.client import RegistryClient

    known: dict[str, ModelVersion] = {}
    served_signatures: dict[str, str] = {}
    async with FrontDoor(args.addr) as front:
        entries = [(e.name, e.version, e.state) for e in await front.index()]
        try:
            async with RegistryClient(args.registry, timeout_s=10.0) as registry:
                known = served_versions(await registry.list(), entries)
        except (Unavailable, DeadlineExceeded):
            print(f"mlos: the registry at {args.registry} did not answer; task and facts are shown as '?' "
                  "(--registry ADDR)", file=sys.stderr)
        for name in {name for name, _, _ in entries} - set(known):
            meta = await front.metadata(name)
            served_signatures[name] = f"{_specs(_served(meta.inputs))} -> {_specs(_served(meta.outputs))}"
    print("\n".join(list_rows(entries, known, served_signatures)))
    return 0


def _served(tensors) -> tuple[TensorSpec, ...]:
    return tuple(TensorSpec(t.name, t.datatype, tuple(t.shape)) for t in tensors)


def show_text(mv: ModelVersion) -> str:
    c = mv.config
    created = datetime.fromtimestamp(mv.created_unix_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    serving = [f"max_batch_size {c.max_batch_size}", f"instance_count {c.instance_count}", f"device {c.device}"]
    if c.priority_levels:
        serving.append(f"priority_levels {c.priority_levels}")
    if mv.format == "gguf":
        serving += [f"context_length {c.context_length}", f"contexts {c.contexts}",
                    f"threads {c.threads or 'auto'}", f"gpu_layers {c.gpu_layers or 'all (GPU builds)'}"]
        if mv.task == "generate":
            serving.append(f"chunk_tokens {c.chunk_tokens}")
    lines = [
        f"{mv.name} version {mv.version}",
        f"  task      {mv.task}",
        f"  format    {mv.format}, {mv.size_bytes} bytes, sha256 {mv.sha256}",
        f"  created   {created}",
        f"  inputs    {_specs(mv.inputs)}",
        f"  outputs   {_specs(mv.outputs)}",
        f"  serving   {', '.join(serving)}",
    ]
    if mv.facts:
        lines.append(f"  facts     {key_facts(mv)}" if mv.format == "gguf" else "  facts")
        lines += [f"    {key:<17} {value}" for key, value in sorted(mv.facts.items())]
    if mv.labels:
        lines.append("  labels    " + ", ".join(f"{k}={v}" for k, v in sorted(mv.labels.items())))
    return "\n".join(lines)


async def models_show(args: argparse.Namespace) -> int:
    from mlos_registry.client import RegistryClient

    async with RegistryClient(args.registry) as registry:
        mv = await registry.get(args.name, args.version)
    print(json.dumps(asdict(mv), indent=1) if args.json else show_text(mv))
    return 0



async def models_prefetch(args: argparse.Namespace) -> int:
    """Loads the model through the front door (RepositoryModelLoad): an executor fetches it and runs
    its warm-up plan, so the first request finds it loaded and warm. Unknown -> NOT_FOUND."""
    from mlos_cli.frontdoor import FrontDoor

    async with FrontDoor(args.addr) as front:
        await front.load(args.name)
        ready = any(m.name == args.name and m.state == "READY" for m in await front.index())
    print(f"prefetched {args.name}: loaded and warmed{'' if ready else ' (not READY yet: see mlos models list)'}")
    return 0
