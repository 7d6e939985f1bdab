"""ProfileBook math: the scheduler's local execution-time estimates (pure domain, no gRPC)."""

from __future__ import annotations

import pytest

from mlos_scheduler.profiles import ExecEstimate, ProfileBook, Warmup

MS = 1e-3


def approx(mean_ms: float, std_ms: float, basis: str) -> ExecEstimate:
    return ExecEstimate(pytest.approx(mean_ms * MS), pytest.approx(std_ms * MS), basis)


def test_prior_before_anything_is_known() -> None:
    book = ProfileBook(prior_s=0.007)
    assert book.estimate("m", 1, 4) == ExecEstimate(0.007, 0.007, "prior")


def test_one_point_flat_below_proportional_above() -> None:
    book = ProfileBook()
    book.set("m", 1, 4, 8 * MS, 2 * MS, "warmup")
    assert book.estimate("m", 1, 2) == approx(8, 2, "warmup")
    assert book.estimate("m", 1, 4) == approx(8, 2, "warmup")
    assert book.estimate("m", 1, 8) == approx(16, 4, "warmup")
    assert book.estimate("m", 2, 8).basis == "prior"  # another version knows nothing


def test_linear_fit_through_two_points_interpolates_and_extrapolates() -> None:
    book = ProfileBook()
    book.set("m", 1, 1, 2 * MS, 0.5 * MS, "warmup")
    book.set("m", 1, 8, 9 * MS, 1.2 * MS, "warmup")
    assert book.estimate("m", 1, 4) == approx(5, 0.8, "warmup")
    assert book.estimate("m", 1, 16) == approx(17, 2.0, "warmup")


def test_least_squares_and_positive_floor() -> None:
    book = ProfileBook()
    for size, mean_ms in ((2, 1.0), (4, 10.0), (6, 11.0)):
        book.set("m", 1, size, mean_ms * MS, 0.0, "warmup")
    # slope 2.5 ms/row, intercept -2.667 ms
    assert book.estimate("m", 1, 2).mean_s == pytest.approx((-8 / 3 + 5) * MS)
    assert book.estimate("m", 1, 10).mean_s == pytest.approx((-8 / 3 + 25) * MS)
    # the line gives -0.17 ms at 1 row: floored at the smallest size's mean scaled to 1 row of 2
    assert book.estimate("m", 1, 1).mean_s == pytest.approx(0.5 * MS)
    assert book.estimate("m", 1, 0).mean_s == pytest.approx(0.5 * MS)  # rows < 1 count as 1


def test_decreasing_noise_gives_flat_line_never_below_smallest_batch() -> None:
    book = ProfileBook()
    book.set("m", 1, 1, 5 * MS, 1 * MS, "warmup")
    book.set("m", 1, 8, 4 * MS, 1 * MS, "warmup")
    assert book.estimate("m", 1, 8).mean_s == pytest.approx(5 * MS)  # mean 4.5 ms, floor 5 ms
    assert book.estimate("m", 1, 8).std_s == pytest.approx(1 * MS)


def test_basis_precedence_and_telemetry_minimum_count() -> None:
    book = ProfileBook(telemetry_min_count=10)
    book.seed_warmup("m", 1, [Warmup(batch_size=1, mean_s=2 * MS, max_s=2.1 * MS, runs=3)])
    assert book.estimate("m", 1, 1) == approx(2, 0.2, "warmup")  # std: 10 % of the mean at least
    book.set("m", 1, 1, 1 * MS, 0.1 * MS, "telemetry", count=5)
    assert book.estimate("m", 1, 1).basis == "warmup"  # too few executions to trust
    book.observe("m", 1, 1, 3 * MS)
    assert book.estimate("m", 1, 1) == approx(3, 0.6, "local")
    book.set("m", 1, 1, 1 * MS, 0.1 * MS, "telemetry", count=10)
    assert book.estimate("m", 1, 1) == approx(1, 0.1, "telemetry")
    assert book.points("m", 1) == {1: (pytest.approx(1 * MS), pytest.approx(0.1 * MS), "telemetry")}


def test_mixed_sources_fit_and_basis_of_nearest_point() -> None:
    book = ProfileBook(telemetry_min_count=1)
    book.set("m", 1, 1, 2 * MS, 0.0, "telemetry", count=100)
    book.seed_warmup("m", 1, [Warmup(8, 16 * MS, 20 * MS)])
    assert book.estimate("m", 1, 2).basis == "telemetry"
    assert book.estimate("m", 1, 6).basis == "warmup"
    assert book.estimate("m", 1, 6).mean_s == pytest.approx(12 * MS)  # 2 ms/row through both points


def test_observe_keeps_an_ema_of_mean_and_variance() -> None:
    book = ProfileBook(ema_alpha=0.1)
    book.observe("m", 1, 2, 10 * MS)
    book.observe("m", 1, 2, 20 * MS)
    est = book.estimate("m", 1, 2)
    assert est.mean_s == pytest.approx(11 * MS)
    assert est.std_s == pytest.approx((0.9 * ((2 * MS) ** 2 + 10 * MS * 1 * MS)) ** 0.5)
    for _ in range(200):
        book.observe("m", 1, 2, 20 * MS)
    est = book.estimate("m", 1, 2)
    assert est.mean_s == pytest.approx(20 * MS, rel=1e-6)
    assert est.std_s < 0.01 * MS


def test_cached_fit_is_invalidated_by_every_update_and_forget() -> None:
    book = ProfileBook()
    book.set("m", 1, 1, 1 * MS, 0.0, "warmup")
    assert book.estimate("m", 1, 1).mean_s == pytest.approx(1 * MS)
    book.set("m", 1, 1, 3 * MS, 0.0, "warmup")
    assert book.estimate("m", 1, 1).mean_s == pytest.approx(3 * MS)
    book.observe("m", 1, 1, 5 * MS)
    assert book.estimate("m", 1, 1) == approx(5, 1, "local")
    book.forget("m", 1)
    assert book.estimate("m", 1, 1).basis == "prior"


def test_bad_updates_refused() -> None:
    book = ProfileBook()
    with pytest.raises(ValueError, match="basis must be one of"):
        book.set("m", 1, 1, 1.0, 0.1, "guess")
    with pytest.raises(ValueError, match="batch size must be >= 1"):
        book.observe("m", 1, 0, 1.0)


def test_local_observations_under_trusted_telemetry_do_not_move_the_estimate() -> None:
    book = ProfileBook(telemetry_min_count=1)
    book.set("m", 1, 1, 1 * MS, 0.0, "telemetry", count=50)
    assert book.estimate("m", 1, 1).mean_s == pytest.approx(1 * MS)
    book.observe("m", 1, 1, 9 * MS)
    book.observe("m", 1, 2, 4 * MS)  # a new size with only local figures does join the fit
    assert book.estimate("m", 1, 1).mean_s == pytest.approx(1 * MS)
    assert book.estimate("m", 1, 2) == approx(4, 0.8, "local")
    book.forget("m", 1)
    book.set("m", 1, 1, 1 * MS, 0.0, "telemetry", count=1)
    assert book.points("m", 1)[1][2] == "telemetry"


def test_untrusted_telemetry_never_replaces_trusted_figures() -> None:
    book = ProfileBook(telemetry_min_count=10)
    book.set("m", 1, 1, 3 * MS, 0.0, "telemetry", count=4)
    book.set("m", 1, 1, 2 * MS, 0.0, "telemetry", count=5)  # untrusted replaces untrusted
    assert book.estimate("m", 1, 1).basis == "prior"
    book.set("m", 1, 1, 4 * MS, 0.0, "telemetry", count=100)
    book.set("m", 1, 1, 9 * MS, 0.0, "telemetry", count=3)  # e.g. a restarted predictor
    assert book.estimate("m", 1, 1) == approx(4, 0, "telemetry")
    book.set("m", 1, 1, 6 * MS, 0.0, "telemetry", count=10)
    assert book.estimate("m", 1, 1) == approx(6, 0, "telemetry")
