"""The `mlos` command: bring the suite up, list and register models, run an inference."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from pathlib import Path

import numpy as np

from mlos_common.errors import MlosError

DEFAULT_HOME = Path("~/.mlos").expanduser()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="mlos", description="MLOS inference serving suite")
    p.add_argument("--token", help="bearer token sent with every call (default: MLOS_TOKEN, else MLOS_TOKEN_FILE)")
    p.add_argument("--token-file", type=Path, help="file holding the bearer token (sets MLOS_TOKEN_FILE)")
    sub = p.add_subparsers(dest="command", required=True)

    up = sub.add_parser("up", help="start the four services locally and load the demo models")
    up.add_argument("--home", type=Path, default=DEFAULT_HOME, help="data, artifacts and logs (default ~/.mlos)")
    up.add_argument("--host", default="127.0.0.1")
    up.add_argument("--ephemeral-ports", action="store_true", help="let every service pick a free port")
    up.add_argument("--no-demo", action="store_true", help="do not register the demo models")
    up.add_argument("--json", action="store_true", help="print one JSON 'ready' line instead of a summary")
    for name, (grpc_port, metrics_port) in (("scheduler", (8001, 8002)), ("registry", (8101, 8102)),
                                            ("executor", (8201, 8202)), ("predictor", (8301, 8302))):
        up.add_argument(f"--{name}-port", type=int, default=grpc_port, help=f"{name} gRPC port ({grpc_port})")
        up.add_argument(f"--{name}-metrics-port", type=int, default=metrics_port, help=argparse.SUPPRESS)
    up.add_argument("--http-port", type=int, default=8080, help="scheduler KServe v2 REST port (8080; -1 = off)")
    up.add_argument("--predictor-http-port", type=int, default=9005,
                    help="predictor's HTTP API, the seed ML daemon's /api/ml routes (9005; -1 = off)")
    up.add_argument("--executors", type=_positive, default=1, metavar="N",
                    help="executor processes (default 1), on consecutive port pairs from --executor-port; "
                    "the scheduler routes each batch among them")
    up.add_argument("--max-restarts", type=_non_negative, default=5, metavar="K",
                    help="restarts of one crashed service within --restart-window-s before the suite stops (5)")
    up.add_argument("--restart-window-s", type=float, default=300.0, metavar="S", help=argparse.SUPPRESS)
    up.add_argument("--max-backoff-s", type=float, default=30.0, metavar="S",
                    help="longest wait before restarting a crashed service (30; doubles from 0.5 per crash)")
    up.add_argument("--scheduler-workers", type=_positive, default=1, metavar="N",
                    help="scheduler worker processes sharing its ports (1; raise on hosts with many cores)")

    models = sub.add_parser("models", help="models known to the suite")
    msub = models.add_subparsers(dest="models_command", required=True)
    ls = msub.add_parser("list", help="every served model: whether it is loaded, its task, for GGUF its key facts")
    ls.add_argument("--addr", default="127.0.0.1:8001", help="scheduler front door")
    ls.add_argument("--registry", default="127.0.0.1:8101", help="registry (task and facts)")
    reg = msub.add_parser("register", help="register a model file and load it")
    reg.add_argument("name")
    reg.add_argument("path", type=Path)
    reg.add_argument("--registry", default="127.0.0.1:8101")
    reg.add_argument("--addr", default="127.0.0.1:8001", help="scheduler front door")
    reg.add_argument("--max-batch-size", type=_non_negative, default=0, metavar="N",
                     help="rows per batch (default: derived from the model; 0 keeps that)")
    reg.add_argument("--priority-levels", type=_non_negative, default=0, metavar="N",
                     help="priorities 1..N accepted, 1 = highest (at most 64; default: the scheduler's)")
    reg.add_argument("--default-priority", type=_non_negative, default=0, metavar="P",
                     help="priority of requests that set none (default: the lowest level)")
    reg.add_argument("--preferred-batch-sizes", type=_size_list, default=(), metavar="N,N,...",
                     help="batch sizes the batcher aims for, each 1..max_batch_size")
    reg.add_argument("--warmup-batch-sizes", type=_size_list, default=(), metavar="N,N,...",
                     help="the warm-up plan: batch sizes run at every load, each 1..max_batch_size (default 1 and max)")

    from mlos_cli import add_cmd, lifecycle_cmd, models_cmd

    models_cmd.add_parsers(msub, _non_negative)
    lifecycle_cmd.add_parsers(msub, _non_negative)
    add_cmd.add_parsers(msub)

    bench = sub.add_parser("bench", help="benchmarks of a source checkout (bench/)")
    bsub = bench.add_subparsers(dest="bench_command", required=True)
    bsub.add_parser("slo", help="deadline-aware scheduler vs FIFO (bench/bench_slo.py; --help there)",
                          add_help=False)

    infer = sub.add_parser("infer", help="run one inference through the front door")
    infer.add_argument("model")
    infer.add_argument("--addr", default="127.0.0.1:8001")
    infer.add_argument("--input", "-i", action="append", default=[], metavar="NAME=JSON",
                       help="input as a JSON (nested) list; datatype and shape come from the model")
    infer.add_argument("--demo-inputs", action="store_true", help="use the demo model's sample inputs")
    infer.add_argument("--home", type=Path, default=DEFAULT_HOME)

    from mlos_cli import admin, health_cmd, predictor_cmd, status

    admin.add_parsers(sub)
    health_cmd.add_parser(sub)
    predictor_cmd.add_parsers(sub)
    status.add_parser(sub)
    from mlos_cli.validate import command as validate_command

    validate_command.add_parser(sub)
    return p


def _non_negative(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative, got {value}")
    return value


def _size_list(text: str) -> tuple[int, ...]:
    return tuple(_non_negative(part.strip()) for part in text.split(",") if part.strip())


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


async def _up(args: argparse.Namespace) -> int:
    from mlos_cli.launcher import Suite, SuiteConfig
    from mlos_cli.supervise import RestartPolicy, Supervisor

    ports = {n: (getattr(args, f"{n}_port"), getattr(args, f"{n}_metrics_port"))
             for n in ("scheduler", "registry", "executor", "predictor")}
    suite = Suite(SuiteConfig(home=args.home, host=args.host, ephemeral_ports=args.ephemeral_ports,
                              demo=not args.no_demo, ports=ports, http_port=args.http_port,
                              predictor_http_port=args.predictor_http_port,
                              scheduler_workers=args.scheduler_workers, executors=args.executors))
    policy = RestartPolicy(max_restarts=args.max_restarts, window_s=args.restart_window_s,
                           max_backoff_s=args.max_backoff_s)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    import signal

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await suite.start()
    info = suite.endpoints()
    if args.json:
        print(json.dumps({"event": "ready", **info}), flush=True)
    else:
        print(_summary(info), flush=True)
    _log_to(suite.log_dir / "supervisor.log", "mlos_cli.supervise")
    supervisor = Supervisor(suite.children, suite.restart, policy, _reporter(args.json))
    try:
        code = await supervisor.run(stop)
    finally:  # also when a restart fails in a way the supervisor does not expect: no child is left behind
        await suite.stop()
        print("mlos: stopped", file=sys.stderr)
    return code


def _log_to(path: Path, logger_name: str) -> None:
    """Sends `logger_name`'s records (INFO and up) to `path` instead of stderr (the output says it once)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger(logger_name)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False


def _reporter(as_json: bool):
    """How `mlos up` says what its supervisor did: a JSON line on stdout (--json) or a line on stderr."""

    def report(event: dict) -> None:
        if as_json:
            print(json.dumps(event), flush=True)
        elif event["event"] == "crashed":
            print(f"mlos: {event['service']} exited with code {event['exit_code']}; restarting it in "
                  f"{event['restart_in_s']:.1f}s (the other services keep serving)", file=sys.stderr, flush=True)
        elif event["event"] == "restarted":
            print(f"mlos: {event['service']} restarted (pid {event['pid']}, port {event['grpc_port']})",
                  file=sys.stderr, flush=True)
        else:
            print(f"mlos: {event['message']}", file=sys.stderr, flush=True)

    return report


def _summary(info: dict) -> str:
    lines = [
        "MLOS is up.",
        f"  front door (Open Inference Protocol gRPC, tritonclient-compatible): {info['scheduler_addr']}",
    ]
    if "scheduler_http" in info:
        url = info["scheduler_http"]
        lines.append(f"  front door KServe v2 REST {url} (tritonclient.http; curl {url}/health)")
    for name in ("registry", "executor", "predictor"):
        lines.append(f"  {name:<9} {info[name + '_addr']}")
    if "predictor_http" in info:
        url = info["predictor_http"]
        lines.append(f"  predictor HTTP {url}/api/ml (the seed ML daemon's API; curl {url}/health)")
    extra = sorted(k[:-5] for k in info if k.startswith("executor-") and k.endswith("_addr"))
    lines += [f"  {name:<9} {info[name + '_addr']}" for name in extra]
    for name, url in info["metrics"].items():
        lines.append(f"  metrics   {name:<9} {url}")
    lines.append(f"  models    {', '.join(info['models']) or '(none)'}")
    lines.append(f"  logs      {info['logs']}")
    lines.append(f"  {info['auth']}")
    lines.append("Try: mlos models list    mlos infer iris -i X='[[5.1,3.5,1.4,0.2]]'    mlos predictor status")
    lines.append("A service that crashes is restarted (logs/supervisor.log). Ctrl-C stops everything.")
    return "\n".join(lines)


async def _models_register(args: argparse.Namespace) -> int:
    from mlos_cli.frontdoor import FrontDoor
    from mlos_registry.client import RegistryClient
    from mlos_registry.domain import ServingConfig

    config = ServingConfig(max_batch_size=args.max_batch_size, priority_levels=args.priority_levels,
                           default_priority=args.default_priority, preferred_batch_sizes=args.preferred_batch_sizes,
                           warmup_batch_sizes=args.warmup_batch_sizes)
    # No deadline: a SafeTensors/PyTorch checkpoint is converted to ONNX first (the registry's own time limit applies).
    async with RegistryClient(args.registry, timeout_s=None) as registry:
        mv = await registry.register(args.name, str(args.path.resolve()), config=config)
    async with FrontDoor(args.addr) as front:
        await front.load(args.name)
    c = mv.config
    print(f"registered and loaded {mv.name} v{mv.version} ({mv.sha256[:12]}, max_batch_size {c.max_batch_size}, "
          f"priority_levels {c.priority_levels or 'default'}, preferred_batch_sizes {list(c.preferred_batch_sizes)})")
    return 0


_NUMPY = {"FP32": np.float32, "FP64": np.float64, "FP16": np.float16, "INT64": np.int64, "INT32": np.int32,
          "INT16": np.int16, "INT8": np.int8, "UINT8": np.uint8, "UINT16": np.uint16, "UINT32": np.uint32,
          "UINT64": np.uint64, "BOOL": np.bool_}


async def _infer(args: argparse.Namespace) -> int:
    from mlos_cli.frontdoor import FrontDoor

    async with FrontDoor(args.addr) as front:
        if args.demo_inputs:
            from mlos_cli.demo import prepare_demo_models

            demos = {d.name: d for d in prepare_demo_models(args.home / "demo")}
            if args.model not in demos:
                raise SystemExit(f"mlos: {args.model!r} is not a demo model ({', '.join(demos)})")
            inputs = demos[args.model].sample_inputs()
        else:
            meta = await front.metadata(args.model)
            types = {t.name: t.datatype for t in meta.inputs}
            inputs = {}
            for item in args.input:
                name, _, text = item.partition("=")
                if name not in types:
                    raise SystemExit(f"mlos: model {args.model!r} has no input {name!r}; inputs: {sorted(types)}")
                if types[name] == "BYTES":
                    inputs[name] = np.array(json.loads(text), dtype=object)
                else:
                    inputs[name] = np.asarray(json.loads(text), dtype=_NUMPY[types[name]])
        outputs = await front.infer(args.model, inputs)
    print(json.dumps({k: _jsonable(v) for k, v in outputs.items()}, indent=1))
    return 0


def _jsonable(array: np.ndarray):
    if array.dtype == object:
        return [x.decode(errors="replace") if isinstance(x, bytes) else x for x in array.reshape(-1).tolist()]
    if array.size > 64:
        return {"shape": list(array.shape), "first": array.reshape(-1)[:16].tolist()}
    return array.tolist()


def _bench(args: argparse.Namespace, bench_args: list[str]) -> int:
    """Runs bench/bench_<name>.py of the checkout this package is installed from (editable)."""
    import subprocess

    script = Path(__file__).resolve().parents[2] / "bench" / f"bench_{args.bench_command}.py"
    if not script.is_file():
        print(f"mlos: {script} not found: `mlos bench` needs a source checkout installed with `make install`",
              file=sys.stderr)
        return 2
    return subprocess.call([sys.executable, str(script), *bench_args])


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    parser = _parser()
    args, extra = parser.parse_known_args(argv)
    if args.command == "bench":
        return _bench(args, extra)  # every option is the benchmark's
    if extra:
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    # Every client channel reads its token from the environment (mlos_common.tls.outgoing_token).
    if args.token is not None:
        os.environ["MLOS_TOKEN"] = args.token
    if args.token_file is not None:
        os.environ.pop("MLOS_TOKEN", None)
        os.environ["MLOS_TOKEN_FILE"] = str(args.token_file)
    from mlos_cli import admin, health_cmd, predictor_cmd, status

    handlers = {"up": _up, "health": health_cmd.health, "infer": _infer, "predict-deadline": admin.predict_deadline,
                "admission": admin.admission,
                "predictor": predictor_cmd.run, "status": status.status}
    if args.command == "validate":
        from mlos_cli.validate import command as validate_command

        handlers["validate"] = validate_command.validate
    if args.command == "models":
        from mlos_cli import add_cmd, lifecycle_cmd, models_cmd

        handler = {"list": models_cmd.models_list, "show": models_cmd.models_show,
                   "alias": lifecycle_cmd.models_alias, "unalias": lifecycle_cmd.models_unalias,
                   "watch": lifecycle_cmd.models_watch, "add": add_cmd.models_add,
                   "prefetch": models_cmd.models_prefetch}.get(args.models_command,
                                                                                      _models_register)
    else:
        handler = handlers[args.command]
    try:
        return asyncio.run(handler(args))
    except MlosError as exc:
        print(f"mlos: {exc.code}: {exc.message}", file=sys.stderr)
        return 2
    except (TimeoutError, OSError, RuntimeError) as exc:
        print(f"mlos: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C ends `mlos models watch` (and any wait) quietly
        return 130


if __name__ == "__main__":
    sys.exit(main())
