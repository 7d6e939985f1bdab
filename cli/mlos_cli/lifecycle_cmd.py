"""`mlos models alias|unalias|watch`: a model's aliases and the registry's change stream.

`alias NAME ALIAS VERSION` points ALIAS at VERSION (creating or moving it); `unalias NAME ALIAS`
removes it; `watch [--since N] [--count K]` prints every registry change after revision N, then
new ones as they happen (one line each, `--json` for scripts) until Ctrl-C or K changes.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from contextlib import aclosing
from dataclasses import asdict
from datetime import UTC, datetime

from mlos_registry.domain import ModelChange

REGISTRY = "127.0.0.1:8101"


def add_parsers(msub: argparse._SubParsersAction, non_negative: Callable[[str], int]) -> None:
    alias = msub.add_parser("alias", help="point an alias of a model at one of its versions (creates or moves it)")
    alias.add_argument("name")
    alias.add_argument("alias", help="letters, digits, '_', '.', '-'; not all digits, not 'latest' (implicit)")
    alias.add_argument("version", type=non_negative)
    alias.add_argument("--registry", default=REGISTRY)
    unalias = msub.add_parser("unalias", help="remove an alias of a model")
    unalias.add_argument("name")
    unalias.add_argument("alias")
    unalias.add_argument("--registry", default=REGISTRY)
    watch = msub.add_parser("watch", help="print registry changes after a revision, then live ones")
    watch.add_argument("--since", type=non_negative, default=0, metavar="N",
                       help="revision already seen (0 = from the first change kept)")
    watch.add_argument("--count", type=non_negative, default=0, metavar="K", help="stop after K changes (0 = never)")
    watch.add_argument("--registry", default=REGISTRY)
    watch.add_argument("--json", action="store_true", help="one JSON object per change")


def change_text(change: ModelChange) -> str:
    when = datetime.fromtimestamp(change.unix_ms / 1000, UTC).strftime("%Y-%m-%d %H:%M:%S")
    what = f"{change.name} v{change.version}"
    if change.alias:
        what = f"{change.name}:{change.alias} -> v{change.version}"
    return f"{change.revision:>8}  {when}  {change.kind:<13}  {what}"


async def models_alias(args: argparse.Namespace) -> int:
    from mlos_registry.client import RegistryClient

    async with RegistryClient(args.registry) as registry:
        mv = await registry.set_alias(args.name, args.alias, args.version)
    print(f"{mv.name}:{args.alias} -> version {mv.version} ({mv.sha256[:12]})")
    return 0


async def models_unalias(args: argparse.Namespace) -> int:
    from mlos_registry.client import RegistryClient

    async with RegistryClient(args.registry) as registry:
        version = await registry.delete_alias(args.name, args.alias)
    print(f"removed {args.name}:{args.alias} (was version {version})")
    return 0


async def models_watch(args: argparse.Namespace) -> int:
    from mlos_registry.client import RegistryClient

    shown = 0
    async with RegistryClient(args.registry) as registry, aclosing(registry.watch(args.since)) as changes:
        async for change in changes:
            print(json.dumps(asdict(change)) if args.json else change_text(change), flush=True)
            shown += 1
            if shown == args.count:
                break
    return 0
