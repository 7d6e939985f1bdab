"""Memory facts from model files, the resident-memory probe, and the memory budget's rules."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from exec_testkit import OPSET, plus_one_model, save, weights_model
from onnx import TensorProto, helper, numpy_helper

from mlos_executor.budget import MB, MemoryBudget, budget_bytes
from mlos_executor.errors import MemoryBudgetExceeded
from mlos_executor.memory import MemoryFacts, mem_total_bytes, memory_facts, memory_row, rss_bytes
from mlos_executor.memory_guard import MemoryGuard, MemoryMeasurement
from mlos_predictor.kinds import SPECS, validate_row


def test_facts_of_a_tiny_model(tmp_path: Path) -> None:
    path = save(plus_one_model(), tmp_path / "plus.onnx")
    assert memory_facts(path) == MemoryFacts(
        file_bytes=path.stat().st_size, parameters=1, nodes=1, input_bytes_per_item=3 * 4, output_bytes_per_item=3 * 4
    )


def test_external_weights_count_in_parameters_and_file_bytes(tmp_path: Path) -> None:
    model = weights_model(64)
    path = tmp_path / "ext.onnx"
    onnx.save_model(model, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="ext.bin", size_threshold=0)
    facts = memory_facts(path)
    assert facts.parameters == 64 * 64
    assert facts.file_bytes == path.stat().st_size + (tmp_path / "ext.bin").stat().st_size
    assert facts.file_bytes > 64 * 64 * 4 > path.stat().st_size  # the weights are in the side file


def test_subgraphs_constants_strings_and_fixed_dims(tmp_path: Path) -> None:
    """An If whose branches hold Constant weights; a STRING input; a fixed first dimension."""
    def branch(name: str, value: float) -> onnx.GraphProto:
        const = numpy_helper.from_array(np.full((4, 5), value, np.float32), f"{name}_w")
        return helper.make_graph(
            [helper.make_node("Constant", [], [f"{name}_out"], value=const)], name, [],
            [helper.make_tensor_value_info(f"{name}_out", TensorProto.FLOAT, [4, 5])],
        )

    graph = helper.make_graph(
        [helper.make_node("If", ["C"], ["Y"], then_branch=branch("then", 1.0), else_branch=branch("else", 2.0)),
         helper.make_node("Identity", ["S"], ["T"])],
        "branches",
        [helper.make_tensor_value_info("C", TensorProto.BOOL, []),
         helper.make_tensor_value_info("S", TensorProto.STRING, [2, "n"])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [4, 5]),
         helper.make_tensor_value_info("T", TensorProto.STRING, [2, "n"])],
    )
    path = save(helper.make_model(graph, opset_imports=OPSET), tmp_path / "if.onnx")
    facts = memory_facts(path)
    assert facts.nodes == 2 + 2  # If and Identity, one Constant per branch
    assert facts.parameters == 2 * 4 * 5
    assert facts.input_bytes_per_item == 1 + 2 * 8  # BOOL scalar; STRING [2, n] at 8 bytes an element
    assert facts.output_bytes_per_item == 4 * 5 * 4 + 2 * 8


def test_demo_models_facts(demo_models) -> None:
    ocr = memory_facts(demo_models["ocr_cls"].path)
    assert ocr.parameters > 100_000 and ocr.nodes > 500  # its weights are Constant nodes
    assert ocr.input_bytes_per_item == 3 * 4  # x [-1, 3, ?, ?]: the named dimensions count as 1
    iris = memory_facts(demo_models["iris"].path)
    assert iris.parameters == 4 * 3 + 3 + 3  # LinearClassifier's coefficients, intercepts, class labels
    assert (iris.input_bytes_per_item, iris.output_bytes_per_item) == (4 * 4, 8 + 3 * 4)


def test_unreadable_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"\xff" * 64)
    with pytest.raises(Exception):  # noqa: B017 - whatever onnx raises; the guard turns it into ModelLoadFailed
        memory_facts(path)


def test_memory_row_is_a_valid_row_in_the_kind_order() -> None:
    facts = MemoryFacts(file_bytes=3 * MB, parameters=2_000_000, nodes=40, input_bytes_per_item=2048,
                        output_bytes_per_item=512)
    row = memory_row(facts, 16)
    spec = SPECS["memory"]
    assert validate_row(spec, row) is None
    assert dict(zip(spec.names, row)) == {"file_mb": 3.0, "params_m": 2.0, "nodes": 40.0, "input_kb_per_item": 2.0,
                                          "output_kb_per_item": 0.5, "batch_size": 16.0}


def test_rss_sees_an_allocation() -> None:
    before = rss_bytes()
    block = np.ones(64 * MB // 8)  # 64 MiB, touched
    grown = rss_bytes() - before
    assert before > 0 and grown >= 48 * MB, grown / MB
    assert block.sum() > 0
    assert mem_total_bytes() > before


def test_default_budget_is_80_percent_of_memory_and_0_is_none() -> None:
    assert budget_bytes(None, 10 * 2**30) == 8 * 2**30
    assert budget_bytes(0, 10 * 2**30) == 0
    assert budget_bytes(256, 10 * 2**30) == 256 * MB


def test_budget_refuses_what_does_not_fit_and_measurements_replace_predictions() -> None:
    budget = MemoryBudget(100 * MB)
    budget.reserve(("a", 1), 60 * MB, "the test")
    assert budget.used_bytes == 60 * MB
    with pytest.raises(MemoryBudgetExceeded) as err:  # a's reservation counts while it loads
        budget.reserve(("b", 2), 50 * MB, "the oracle")
    message = err.value.message
    for part in ("'b' v2", "50.0 MB", "by the oracle", "40.0 MB left", "100.0 MB", "60.0 MB used", "a v1 60.0 MB loading"):
        assert part in message, (part, message)
    assert err.value.code == "RESOURCE_EXHAUSTED"
    footprint = budget.settle(("a", 1), 30 * MB)
    assert (footprint.bytes, footprint.measured, footprint.predicted_bytes) == (30 * MB, True, 60 * MB)
    assert budget.used_bytes == 30 * MB
    budget.reserve(("b", 2), 50 * MB, "the oracle")  # fits now
    budget.abandon(("b", 2))  # its load failed
    budget.release(("a", 1))  # unloaded
    assert budget.used_bytes == 0


def test_no_budget_refuses_nothing() -> None:
    budget = MemoryBudget(0)
    budget.reserve(("huge", 1), 1 << 50, "anyone")
    assert budget.used_bytes == 1 << 50


async def test_guard_predicts_with_the_local_prior_without_a_predictor() -> None:
    row = memory_row(MemoryFacts(2 * MB, 0, 1, 1024, 1024), 4)
    mb, who = await MemoryGuard().predicted_mb(row)
    assert mb == pytest.approx(8 + 1.5 * 2 + 4 * (2 / 1024) * 4)
    assert "documented prior" in who and "no predictor configured" in who


async def test_guard_falls_back_when_the_predictor_is_slow() -> None:
    import asyncio

    async def never(row: list[float]) -> tuple[float, str]:
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    mb, who = await MemoryGuard(predict=never, predict_timeout_s=0.01).predicted_mb(memory_row(MemoryFacts(0, 0, 1, 0, 0), 1))
    assert mb == pytest.approx(8.0) and "did not answer within 10 ms" in who


def test_overlapping_loads_send_no_samples() -> None:
    sent: list[MemoryMeasurement] = []
    guard = MemoryGuard(on_sample=sent.append)
    facts = MemoryFacts(1, 1, 1, 1, 1)
    alone = guard.start()
    alone.mark(1)
    guard.finish(("alone", 1), facts, alone)
    assert [(s.model_name, s.batch_size) for s in sent] == [("alone", 1)]
    first, second = guard.start(), guard.start()
    for m in (first, second):
        m.mark(1)
        m.mark(8)
    guard.finish(("first", 1), facts, first)
    guard.finish(("second", 1), facts, second)
    assert len(sent) == 1 and (guard.samples_sent, guard.samples_skipped) == (1, 4)
    assert set(guard.budget.held) == {("alone", 1), ("first", 1), ("second", 1)}  # still accounted
