"""Writes a validation's results: `results.json` and a self-contained `index.html` (inline CSS and
SVG plots; it opens from disk with no network)."""

from __future__ import annotations

import html
import json
import math
from pathlib import Path

from mlos_cli.validate import plots

MB = 2**20
CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:24px auto;max-width:1100px;color:#222;
line-height:1.4;padding:0 16px}
h1{font-size:1.6em;margin-bottom:0}h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#666;margin-top:4px}
table{border-collapse:collapse;font-size:0.86em;margin:8px 0;width:100%}
th,td{padding:4px 8px;border-bottom:1px solid #eee;text-align:right;vertical-align:top}
th{background:#f6f6f6}td.l,th.l{text-align:left}
.pass{color:#fff;background:#2a9d8f;border-radius:3px;padding:1px 6px}
.fail{color:#fff;background:#e76f51;border-radius:3px;padding:1px 6px}
.cards{display:flex;gap:12px;margin:16px 0}.card{flex:1;background:#f6f6f6;border-radius:6px;padding:10px 14px}
.card b{display:block;font-size:1.6em}.note{color:#666;font-size:0.86em}.reason{color:#b00;text-align:left}
svg{max-width:100%;height:auto}
"""


def _e(value: object) -> str:
    return html.escape(str(value))


def _num(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:,.{digits}f}"


def _ci(interval: dict | None, digits: int = 2) -> str:
    if not interval:
        return "–"
    half = interval.get("half_width", math.nan)
    tail = "" if half is None or math.isnan(half) else f" ± {half:.{digits}f}"
    return f"{interval['mean']:.{digits}f}{tail}"


def _table(head: list[str], rows: list[list[str]], left: int = 1) -> str:
    cells = "".join(f"<th class='l'>{h}</th>" if i < left else f"<th>{h}</th>" for i, h in enumerate(head))
    body = "".join("<tr>" + "".join(f"<td class='l'>{c}</td>" if i < left else f"<td>{c}</td>" for i, c in enumerate(r))
                   + "</tr>" for r in rows)
    return f"<table><tr>{cells}</tr>{body}</table>"


def _model_rows(models: list[dict]) -> list[list[str]]:
    rows = []
    for m in models:
        best = m.get("best_batch", {})
        top = max(m.get("throughput", []), key=lambda r: r["requests_per_s"], default=None)
        diffs = [c.get("max_abs_diff") for per in m.get("correctness", {}).get("checks", {}).values()
                 for c in per.values() if c.get("max_abs_diff") is not None]
        status = f"<span class='{m['status']}'>{m['status']}</span>"
        rows.append([
            f"{_e(m['name'])}<br><span class='note'>{_e(m['format'])} · {_e(m['task'])}</span>", status,
            _num(m.get("install_s"), 3), _num(m.get("executor_load_ms"), 0), _ci(m.get("batch1", {}).get("p50_ms")),
            _ci(m.get("batch1", {}).get("p99_ms")),
            f"{_num(best.get('rows_per_s'), 0)} @ {best.get('batch', '–')}" if best else "–",
            f"{_num(top['requests_per_s'], 0)} @ {top['concurrency']}" if top else "–",
            _num(m["memory_bytes"] / MB, 1) if "memory_bytes" in m else "–",
            f"{max(diffs):.2g}" if diffs else ("exact" if m.get("correctness", {}).get("ok") else "–"),
            f"<span class='reason'>{_e(m['reason'])}</span>" if m.get("reason") else "",
        ])
    return rows


def _recorded(section: dict | None, command: str) -> str:
    """A banner over a section shown from the committed recordings instead of this checkout's runs."""
    if not section or not section.get("recorded"):
        return ""
    return (f"<p class='reason'>Recorded, not measured by this checkout: the run committed in "
            f"{_e(section['recorded'])} (its README says on which machine). Run <code>{_e(command)}</code> "
            "here and validate again to see this machine's numbers.</p>")


def _ratio_table(ratios: list[dict]) -> str:
    """MLOS's throughput over each other server's: one row per model and callers, one column per peer."""
    if not ratios:
        return "<p class='note'>This run measured MLOS alone: no ratios.</p>"
    peers = sorted({r["versus"] for r in ratios})
    cells: dict[tuple[str, int], dict[str, float]] = {}
    for r in ratios:
        cells.setdefault((r["model"], r["concurrency"]), {})[r["versus"]] = r["ratio"]
    rows = [[_e(model), str(callers), *(f"{per[p]:.2f}" if p in per else "–" for p in peers)]
            for (model, callers), per in sorted(cells.items())]
    head = ["model", "callers", *(f"MLOS / {_e(p)}" for p in peers)]
    return ("<p class='note'>MLOS throughput over each peer's at the same callers (&gt; 1: MLOS serves more).</p>"
            + _table(head, rows, left=1))


def _peers_section(peers: dict | None) -> str:
    if not peers:
        return "<p class='note'>No peer results yet: run <code>make bench-peers</code> (perf_analyzer against MLOS, " \
               "MLServer and the in-process runtime) and validate again.</p>"
    rows = sorted(peers["rows"], key=lambda r: (r["model"], r["concurrency"], r["server"]))
    formats = peers.get("formats", {})
    table = _table(["model", "server", "callers", "requests/s", "p50 ms", "p99 ms"],
                   [[_e(r["model"]) + (f" <span class='note'>{_e(formats[r['model']])}</span>" if r["model"] in formats
                                        else ""), _e(r["server"]), str(r["concurrency"]),
                     _num(r["throughput_rps"], 0), _num(r["p50_ms"], 3), _num(r["p99_ms"], 3)] for r in rows], left=2)
    plot = plots.peers_throughput(peers["rows"]) or ""
    ratio_table = _ratio_table(peers.get("ratios", []))
    skipped = "".join(f"<li>{_e(s['server'])} × {_e(s['model'])}: {_e(s['reason'])}</li>" for s in peers.get("skipped", []))
    return (f"<p class='note'>From {_e(peers['file'])} ({_e(peers['started_utc'])}), the run comparing the most "
            "servers; perf_analyzer drives every server; floor is ONNX Runtime in process (ONNX models), llama-inproc "
            f"llama-cpp-python in process (GGUF models).</p>{plot}{ratio_table}{table}"
            + (f"<p class='note'>Not measured in this run:</p><ul class='note'>{skipped}</ul>" if skipped else ""))


def _generation_section(gen: dict | None) -> str:
    if not gen:
        return "<p class='note'>No generation results yet: run <code>make bench-generation</code> (MLOS vs " \
               "llama-cpp-python in process, and urgent-request preemption) and validate again.</p>"
    mlos = gen["mlos"]
    speed = _table(["runner", "TTFT ms", "tokens/s", "MLOS TTFT / this", "MLOS tokens/s / this"],
                   [[_e(mlos["runner"]), _num(mlos["ttft_ms"]), _num(mlos["tokens_per_s"], 1), "–", "–"]]
                   + [[_e(r["runner"]), _num(r["ttft_ms"]), _num(r["tokens_per_s"], 1), _num(r["mlos_ttft_over"]),
                       _num(r["mlos_tokens_per_s_over"])] for r in gen["speed"]])
    urgent = _table(["urgent request (priority 1)", "TTFT alone ms", "TTFT during a long generation ms", "during / alone"],
                    [[_e(r["mode"]), _num(r["alone_ttft_ms"]), _num(r["during_ttft_ms"]), _num(r["during_over_alone"])]
                     for r in gen["urgent"]]) if gen["urgent"] else ""
    model, args = gen.get("model", {}), gen.get("args", {})
    return (f"<p class='note'>From {_e(gen['file'])} ({_e(gen['stamp'])}): {_e(model.get('file', '?'))}, prompt "
            f"{_e(model.get('prompt_tokens', '?'))} tokens, {_e(args.get('tokens', '?'))} generated, greedy, 1 llama.cpp "
            f"thread, medians of {_e(args.get('repeats', '?'))} runs. TTFT ratio below 1 and tokens/s ratio above 1 "
            f"favour MLOS.</p>{speed}{urgent}")


def _onoff_cells(r: dict) -> list[str]:
    """off, on and speedup cells of an on/off row; a row that could not be measured reads n/a with its note."""
    if r.get("status") == "n/a":
        return ["n/a", "n/a", f"n/a <span class='note'>({_e(r.get('note', 'not measured'))})</span>"]
    return [_ci(r.get(k), 3 if k == "speedup" else 2) if isinstance(r.get(k), dict) else _e(r.get(k, ""))
            for k in ("off", "on", "speedup")]


def _modes_section(modes: dict | None) -> str:
    if not modes:
        return ("<p class='note'>No on/off results yet: run <code>make bench-executor</code> (the executor's switches) "
                "and <code>make bench-modes</code> (the suite's) and validate again.</p>")
    rows = [[_e(r.get("switch", "?")), _e(r.get("model", "")), _e(r.get("metric", "")), *_onoff_cells(r),
             f"<span title='{_e(r.get('source', '?'))}'>{_e(Path(r.get('source', '?')).name.rsplit('-', 1)[0])}</span>"]
            for r in modes["rows"]]
    plot = plots.speedups(modes["rows"]) or ""
    files = "; ".join(f"{_e(s['bench'])}: {_e(s['file'])} ({_e(s['started_utc'])})" for s in modes.get("sources", []))
    return (f"<p class='note'>From {files}. Speedup = off / on for times (on / off for throughput) with a 95 % "
            "interval over interleaved repeated runs; &gt; 1 = the switch helps; n/a = not measurable on this host.</p>"
            f"{plot}{_table(['switch', 'model', 'metric', 'off', 'on', 'speedup', 'from'], rows, left=3)}")


def _regressions_section(regressions: dict | None) -> str:
    if regressions is None:
        return ""
    found = regressions["found"]
    body = ("<p>None beyond noise.</p>" if not found else
            _table(["model", "metric", "old", "new", "change"],
                   [[_e(r["model"]), _e(r["metric"]), _num(r["old"], 3), _num(r["new"], 3), f"{r['change']:+.1%}"]
                    for r in found]))
    return f"<h2>Regressions against {_e(regressions['against'])}</h2>{body}"


def _env_value(key: str, value: object) -> str:
    if key == "mem_total_bytes" and isinstance(value, int):
        return f"{value / 2**30:.1f} GiB"
    if isinstance(value, list):
        return ", ".join(f"{v:.2f}" if isinstance(v, float) else str(v) for v in value)
    return str(value)


def render(results: dict) -> str:
    models = results["models"]
    env = results["environment"]
    passed = sum(m["status"] == "pass" for m in models)
    cards = "".join(f"<div class='card'>{label}<b>{value}</b></div>" for label, value in (
        ("models", len(models)), ("passed", passed), ("failed", len(models) - passed),
        ("duration", f"{results['duration_s']:.0f} s")))
    busy = env["loadavg_at_start"][0] > 0.5 * env["cpus_usable"]
    warning = (f"<p class='reason'>The machine was busy when this run started (load average "
               f"{env['loadavg_at_start'][0]:.1f} on {env['cpus_usable']} usable CPUs): timings are noisy; compare "
               "runs taken on an idle machine.</p>" if busy else "")
    missing = "".join(f"<li>{_e(n)}: {_e(why)}</li>" for n, why in sorted(results.get("missing", {}).items()))
    env_rows = [[_e(k), _e(_env_value(k, v))] for k, v in env.items() if k != "packages"]
    env_rows += [[_e(k), _e(v)] for k, v in env["packages"].items()]
    parts = [
        f"<h1>MLOS validation</h1><p class='sub'>{_e(results['started_utc'])} · revision "
        f"{_e(env.get('git_revision') or '?')} · {_e(env['cpu'])}, {env['cpus']} CPUs · GPU: {_e(', '.join(env['gpus']))}"
        f" · runtime mode {_e(', '.join(env['runtime_modes']) or '?')}</p>",
        f"<div class='cards'>{cards}</div>", warning,
        _regressions_section(results.get("regressions")),
        "<h2>Models</h2><p class='note'>Each model registered, loaded and served through the front door (gRPC), its "
        "answers compared with the in-process runtime on the same file. Latency: mean over "
        f"{results['settings']['repeats']} runs ± 95 % interval.</p>",
        _table(["model", "result", "install s", "load ms", "p50 ms (b=1)", "p99 ms (b=1)", "best rows/s @ batch",
                "max req/s @ callers", "memory MB", "max |diff|", "reason"], _model_rows(models)),
        f"<p class='note'>Not in this run:</p><ul>{missing}</ul>" if missing else "",
        "<h2>Latency</h2>", plots.latency_distributions(models) or "<p class='note'>No latency measured.</p>",
        "<h2>Throughput</h2>", plots.throughput_vs_concurrency(models) or "<p class='note'>No throughput measured.</p>",
        "<h2>Optimizations on vs off</h2>", _recorded(results.get("modes"), "make bench-executor bench-modes"),
        _modes_section(results.get("modes")),
        "<h2>MLOS and its peers</h2>", _recorded(results.get("peers"), "make bench-peers"),
        _peers_section(results.get("peers")),
        "<h2>Generation: MLOS vs llama-cpp-python</h2>", _recorded(results.get("generation"), "make bench-generation"),
        _generation_section(results.get("generation")),
        "<h2>Environment</h2>", _table(["", ""], env_rows),
    ]
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'><title>MLOS validation</title>"
            f"<style>{CSS}</style></head><body>{''.join(parts)}</body></html>")


def write(results: dict, out_dir: Path) -> tuple[Path, Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out_dir / "results.json", out_dir / "index.html"
    json_path.write_text(json.dumps(results, indent=1, default=str))
    html_path.write_text(render(results))
    return json_path, html_path
