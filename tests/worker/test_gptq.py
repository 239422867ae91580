"""GPTQ (quant.py) against a plain float64 reference written here: one column at a time, no blocks, the inverse
and its Cholesky factor from numpy. Small matrices, so no code lands near a rounding boundary and the codes must
agree exactly; and the damping and fallback factors worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clowncar.worker.qscale import search_row_scales
from clowncar.worker.quant import _full_inverse, _upper_inverse_factor, gptq_quantize


def ref_gptq(w: torch.Tensor, h: torch.Tensor, scale: torch.Tensor, qmax: int, damp: float, order: str,
             feedback: str) -> np.ndarray:
    """GPTQ as the docs describe it. cholesky: inputs that never fired (zero diagonal) are dropped (weights 0,
    diagonal the mean of the live ones); columns in `order` of diag H; H += damp * mean(diag H) * I; the error of each column, divided by
    the factor's diagonal, is fed to the later columns through the upper Cholesky factor U of H^-1
    (H^-1 = U^T U), or through H^-1 itself (full_inverse)."""
    w, h, s = w.double().numpy().copy(), h.double().numpy().copy(), scale.double().numpy()
    n = h.shape[0]
    if feedback == "cholesky":
        dead = np.diag(h) == 0
        h[dead, dead] = np.diag(h)[~dead].mean()
        w[:, dead] = 0.0
    d = np.diag(h)
    perm = {"natural": np.arange(n), "ascending": np.argsort(d, kind="stable"),
            "descending": np.argsort(-d, kind="stable")}[order]
    h = h[perm][:, perm] + np.eye(n) * damp * np.diag(h).mean()
    inverse = np.linalg.inv(h)
    factor = np.linalg.cholesky(inverse).T if feedback == "cholesky" else inverse
    work = w[:, perm]
    codes = np.zeros_like(work)
    for j in range(n):
        codes[:, j] = np.clip(np.round(work[:, j] / s), -qmax, qmax)
        err = (work[:, j] - codes[:, j] * s) / factor[j, j]
        work[:, j + 1:] -= err[:, None] * factor[j, j + 1:][None, :]
    return codes[:, np.argsort(perm)].astype(int)


def correlated_problem(rows: int, cols: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Weights and H = X^T X / n from inputs that share one strong common part (so the error feedback matters),
    each with its own scale (so the column orders differ)."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(rows, cols, generator=g) * 0.05
    x = torch.randn(256, 1, generator=g) + 0.3 * torch.randn(256, cols, generator=g)
    x = x * torch.logspace(-0.3, 0.3, cols)[torch.randperm(cols, generator=g)]
    return w, x.T @ x / 256


@pytest.mark.parametrize("feedback", ["cholesky", "full_inverse"])
@pytest.mark.parametrize("order", ["ascending", "descending", "natural"])
@pytest.mark.parametrize("block_size", [1, 3, 5, 64])  # 5: the last block is a partial one
def test_gptq_codes_equal_the_column_by_column_reference(feedback: str, order: str, block_size: int) -> None:
    w, h = correlated_problem(8, 12, seed=12)
    q, stored, fell_back = gptq_quantize(w, h, "int5", block_size=block_size, damp=0.05, col_order=order,
                                         feedback=feedback)
    assert torch.equal(stored, search_row_scales(w, 15)[0]) and not fell_back
    expected = ref_gptq(w, h, stored.float(), 15, 0.05, order, feedback)
    assert q.dtype == torch.int8 and q.tolist() == expected.tolist()
    plain = np.clip(np.round(w.double().numpy() / stored.double().numpy()[:, None]), -15, 15)
    assert (expected != plain).sum() >= 5  # the feedback moved codes: this is not plain rounding


def test_the_reference_tells_the_orders_feedbacks_and_damping_apart() -> None:
    """So that the comparison above pins each setting: every one of them changes the codes of this problem."""
    w, h = correlated_problem(8, 12, seed=12)
    scale = search_row_scales(w, 15)[0].float()
    codes = {(order, feedback, damp): ref_gptq(w, h, scale, 15, damp, order, feedback).tolist()
             for order in ("ascending", "descending", "natural") for feedback in ("cholesky", "full_inverse")
             for damp in (0.05, 0.5)}
    assert len({str(c) for c in codes.values()}) == len(codes)


def test_an_input_that_never_fired_gets_zero_codes_and_no_say_in_the_others() -> None:
    w, h = correlated_problem(4, 8, seed=12)
    h[3, :] = 0.0
    h[:, 3] = 0.0
    q, stored, _ = gptq_quantize(w, h, "int6", damp=0.05, col_order="natural")
    expected = ref_gptq(w, h, stored.float(), 31, 0.05, "natural", "cholesky")
    assert q.tolist() == expected.tolist()
    assert q[:, 3].tolist() == [0, 0, 0, 0] and w[:, 3].abs().min() > 0.5 * float(stored.float().min())
    # the seed's full-inverse variant keeps them as they were and rounds them
    q_seed, _, _ = gptq_quantize(w, h, "int6", damp=0.05, col_order="natural", feedback="full_inverse")
    assert q_seed.tolist() == ref_gptq(w, h, stored.float(), 31, 0.05, "natural", "full_inverse").tolist()
    assert q_seed[:, 3].abs().sum() > 0


def test_inputs_of_equal_weight_keep_their_natural_order() -> None:
    """With every diagonal entry of H equal, the ascending and descending orders are the natural one (a stable
    sort), and so are the codes. 128 columns: torch's unstable CPU sort already reorders ties from 100 on."""
    w, h = correlated_problem(8, 128, seed=12)
    d = h.diagonal().sqrt()
    h = (h / d[:, None] / d[None, :]).fill_diagonal_(1.0)  # a correlation matrix: a diagonal of exact ones
    q, stored, _ = gptq_quantize(w, h, "int5", damp=0.05, col_order="natural")
    assert q.tolist() == ref_gptq(w, h, stored.float(), 15, 0.05, "natural", "cholesky").tolist()
    for order in ("ascending", "descending"):
        assert torch.equal(gptq_quantize(w, h, "int5", damp=0.05, col_order=order)[0], q), order


def test_the_default_gptq_settings() -> None:
    """block 64, damping 0.002, ascending order, Cholesky feedback."""
    w, h = correlated_problem(4, 70, seed=13)
    q, stored, _ = gptq_quantize(w, h, "int6")
    assert q.tolist() == ref_gptq(w, h, stored.float(), 31, 0.002, "ascending", "cholesky").tolist()


# -- the factor and its fallbacks ----------------------------------------------------------------------------------

def test_the_factor_is_the_upper_cholesky_factor_of_the_damped_inverse() -> None:
    h = torch.tensor([[4.0, 2.0, 0.0], [2.0, 5.0, 1.0], [0.0, 1.0, 3.0]])
    u, fell_back = _upper_inverse_factor(h, 0.3)  # damping 0.3 * mean(4, 5, 3) = 1.2
    damped = h.double() + 1.2 * torch.eye(3, dtype=torch.float64)
    assert not fell_back and torch.equal(u, u.triu())
    assert torch.allclose(u.double().T @ u.double(), torch.linalg.inv(damped), rtol=1e-5, atol=1e-7)
    m, fell_back = _full_inverse(h, 0.3)
    assert not fell_back and torch.allclose(m.double(), torch.linalg.inv(damped), rtol=1e-5, atol=1e-7)


def test_a_matrix_that_is_not_positive_definite_gets_ten_times_the_damping() -> None:
    """diag (1, -0.005), mean 0.4975: damping 0.01 adds 0.004975 (still negative), ten times that 0.04975."""
    h = torch.tensor([[1.0, 0.0], [0.0, -0.005]])
    u, fell_back = _upper_inverse_factor(h, 0.01)
    assert fell_back
    assert torch.allclose(u.diagonal(), torch.tensor([1 / 1.04975, 1 / 0.04475]).sqrt(), rtol=1e-4)


def test_then_a_hundred_times_then_a_diagonal() -> None:
    h = torch.tensor([[1.0, 0.0], [0.0, -0.005]])
    u, fell_back = _upper_inverse_factor(h, 0.001)  # 1x and 10x leave -0.0045 and -0.000025: 100x it is
    assert fell_back
    assert torch.allclose(u.diagonal(), torch.tensor([1 / 1.04975, 1 / 0.04475]).sqrt(), rtol=1e-4)
    hopeless = torch.tensor([[4.0, 0.0], [0.0, -10.0]])  # mean diag -3: no damping helps
    u, fell_back = _upper_inverse_factor(hopeless, 0.01)
    assert fell_back and torch.allclose(u, torch.diag(torch.tensor([0.5, 1e6])))  # 1/sqrt(max(d, 1e-12))
    m, fell_back = _full_inverse(hopeless, 0.01)  # the seed's: 1/max(d - 0.03, 1e-6)
    assert fell_back and torch.allclose(m, torch.diag(torch.tensor([1 / 3.97, 1e6])))


def test_an_all_zero_hessian_is_damped_from_a_floor_of_1e_minus_12() -> None:
    u, fell_back = _upper_inverse_factor(torch.zeros(2, 2), 0.01)  # H + 0.01 * 1e-12 * I: U = 1e7 * I
    assert not fell_back and torch.allclose(u, torch.eye(2) * 1e7)


# -- invariances: the scale of H, inputs that never fired, the Hessian's dtype ---------------------------------------

@pytest.mark.parametrize("feedback", ["cholesky", "full_inverse"])
@pytest.mark.parametrize("power", [40, -30])
def test_codes_depend_on_the_hessian_only_up_to_its_scale(feedback: str, power: int) -> None:
    """H from activations a million times larger (or smaller) asks for the same codes. A power of two scales
    every floating-point step exactly, so the codes must be equal, not close: a fixed floor or constant anywhere
    in the damping, the dead inputs or the pivots breaks this."""
    w, h = correlated_problem(8, 12, seed=12)
    h[5, :] = 0.0
    h[:, 5] = 0.0  # one input that never fired
    q, _, _ = gptq_quantize(w, h, "int5", block_size=5, damp=0.05, feedback=feedback)
    scaled, _, _ = gptq_quantize(w, h * 2.0 ** power, "int5", block_size=5, damp=0.05, feedback=feedback)
    assert torch.equal(q, scaled)


def test_an_input_that_never_fired_changes_nothing_for_the_live_ones() -> None:
    """The codes of the live columns are those of the problem without the dead input: GPTQ's usual diagonal
    of 1.0 for it would change the damping of every other column."""
    w, h = correlated_problem(8, 12, seed=12)
    h = h * 1e-3  # activations of a small scale, as after a squared ReLU
    dead = [1, 4, 7]
    h[dead, :] = 0.0
    h[:, dead] = 0.0
    live = [i for i in range(12) if i not in dead]
    for order in ("ascending", "natural"):  # strong damping (natural: damping 0.35 would move two codes)
        q, stored, _ = gptq_quantize(w, h, "int5", damp=0.5, col_order=order)
        alone, _, _ = gptq_quantize(w[:, live], h[live][:, live], "int5", damp=0.5, col_order=order)
        assert q[:, dead].abs().sum() == 0 and torch.equal(q[:, live], alone), order
        # the scales come from the weights alone, the dead column's included
        assert torch.equal(stored, search_row_scales(w, 15)[0])


def test_a_layer_whose_inputs_never_fired_gets_zero_codes_without_a_fallback() -> None:
    w, _ = correlated_problem(3, 6, seed=2)
    q, stored, fell_back = gptq_quantize(w, torch.zeros(6, 6), "int6")
    assert q.abs().sum() == 0 and not fell_back and torch.equal(stored, search_row_scales(w, 31)[0])


def test_a_half_precision_hessian_gives_the_codes_of_its_float32_copy() -> None:
    w, h = correlated_problem(6, 10, seed=5)
    h16 = h.to(torch.float16)
    for feedback in ("cholesky", "full_inverse"):
        q16, _, _ = gptq_quantize(w, h16, "int6", damp=0.05, feedback=feedback)
        assert torch.equal(q16, gptq_quantize(w, h16.float(), "int6", damp=0.05, feedback=feedback)[0])


def test_an_unknown_column_order_is_refused() -> None:
    w, h = correlated_problem(2, 4, seed=1)
    with pytest.raises(ValueError, match="column order must be ascending, descending or natural, not 'sorted'"):
        gptq_quantize(w, h, "int6", col_order="sorted")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_gptq_on_cuda_makes_the_cpus_codes_on_the_weights_device_needs_cuda() -> None:
    """The trial quantizes on the GPU, its Hessian gathered there or handed over from the CPU: every tensor GPTQ
    makes (the damped identity, the codes, the column order) follows the weights, and the codes are the CPU's
    but for the rare one a different rounding order flips."""
    w, h = correlated_problem(16, 96, seed=21)
    q_cpu, s_cpu, _ = gptq_quantize(w, h, "int6")
    q_gpu, s_gpu, _ = gptq_quantize(w.cuda(), h, "int6")
    assert q_gpu.device.type == s_gpu.device.type == "cuda"
    assert (q_gpu.cpu() != q_cpu).float().mean() < 0.02
    assert torch.allclose(s_gpu.cpu().float(), s_cpu.float(), rtol=1e-3)
