"""The one table of `make bench-peers`: a row per (model, concurrency, server), ratios on MLOS rows."""

from __future__ import annotations

CPU_ORDER = ("scheduler", "executor", "registry", "predictor", "mlos-up", "mlserver",
             "mlserver-worker", "floor", "llama-inproc", "perf_analyzer")  # fmt: skip
RATIOS = (("floor", "vs_floor"), ("llama-inproc", "vs_llama_inproc"), ("mlserver-inproc", "vs_mlserver_inproc"))


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _cpu(per_request: dict[str, float]) -> str:
    ordered = sorted(per_request, key=lambda k: (CPU_ORDER.index(k) if k in CPU_ORDER else 99, k))
    return " ".join(f"{k}={per_request[k]:.3f}" for k in ordered if k != "other" or per_request[k])


def ratios(rows: list[dict]) -> None:
    """Add ``vs_floor`` (ONNX), ``vs_llama_inproc`` (GGUF) and ``vs_mlserver_inproc`` (throughput
    ratios) to every MLOS row that has that peer's row at the same model and callers."""
    by_key = {(r["server"], r["model"], r["concurrency"]): r for r in rows}
    for row in rows:
        if row["server"] != "mlos":
            continue
        for other, key in RATIOS:
            peer = by_key.get((other, row["model"], row["concurrency"]))
            if peer and peer.get("throughput_rps") and row.get("throughput_rps") is not None:
                row[key] = row["throughput_rps"] / peer["throughput_rps"]


def format_table(rows: list[dict], checks: dict) -> str:
    header = ("model", "conc", "server", "infer/s", "p50", "p90", "p99", "MLOS/floor",
              "MLOS/MLS-inproc", "load1", "CPU core-ms per request, by process")  # fmt: skip
    lines = [header]
    for r in sorted(rows, key=lambda r: (r["model"], r["concurrency"])):
        bad = checks.get(r["server"], {}).get(r["model"], {}).get("ok") is False
        lines.append((
            r["model"], str(r["concurrency"]), r["server"] + (" (MISMATCH)" if bad else ""),
            _num(r.get("throughput_rps"), 1), _num(r.get("p50_ms"), 3), _num(r.get("p90_ms"), 3),
            _num(r.get("p99_ms"), 3), _num(r.get("vs_floor", r.get("vs_llama_inproc")), 3),
            _num(r.get("vs_mlserver_inproc"), 3),
            _num(r["idle"]["loadavg"][0], 2) + ("" if r["idle"]["reached"] else "!"),
            "ERROR (see JSON)" if "error" in r else _cpu(r["cpu_ms_per_request"]),
        ))  # fmt: skip
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = [" | ".join(c.ljust(w) if i in (0, 2, 10) else c.rjust(w)
                      for i, (c, w) in enumerate(zip(line, widths))) for line in lines]  # fmt: skip
    out.insert(1, "-+-".join("-" * w for w in widths))
    return "\n".join(out) + (
        "\n(latency ms, client side: perf_analyzer for servers, the thread loop in process; ratios are "
        "infer/s;\n floor = the format's in-process runtime: onnxruntime for ONNX, llama-inproc for GGUF;\n"
        " load1 '!' = the host was never idle enough before that row)"
    )
