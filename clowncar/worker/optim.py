"""Optimizers of a trial: Muon for the block matrices, AdamW for embeddings and scalars.

Muon (Keller Jordan's MomentUm Orthogonalized by Newton-schulz) replaces each matrix's momentum-smoothed
gradient by the nearest semi-orthogonal matrix, found with a quintic Newton-Schulz iteration, then scales it
so that tall and wide matrices move alike. Under data parallelism each rank orthogonalizes only the matrices
with `index % world_size == rank` and one all-reduce of a flat buffer shares the results, as the Parameter Golf
reference does: orthogonalization is the expensive part and every rank would otherwise repeat it.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn

from clowncar.config import TrainConfig

# Quintic coefficients tuned (by Keller Jordan) to push singular values into ~[0.7, 1.2] in 5 iterations
# rather than to converge exactly: Muon only needs a rough orthogonalization.
NS_COEFFS = (3.4445, -4.7750, 2.0315)


def newton_schulz(grad: Tensor, steps: int, eps: float = 1e-7) -> Tensor:
    """Approximate U V^T of grad = U S V^T. bf16 on GPU (fast and accurate enough); fp32 on CPU, where bf16
    matmuls are emulated and slower than fp32."""
    a, b, c = NS_COEFFS
    x = grad.bfloat16() if grad.is_cuda else grad.float()
    transposed = x.size(0) > x.size(1)
    if transposed:  # iterate on the wide orientation: the Gram matrix x x^T is then the smaller one
        x = x.T
    x = x / (x.norm() + eps)  # spectral norm <= Frobenius norm <= 1, inside the iteration's basin
    for _ in range(steps):
        gram = x @ x.T
        x = a * x + (b * gram + c * gram @ gram) @ x
    return x.T if transposed else x


class Muon(torch.optim.Optimizer):
    """SGD with Nesterov momentum whose update is orthogonalized, plus decoupled weight decay `p *= 1 - lr*wd`.

    Every parameter must have at least 2 dimensions (extra trailing dimensions are flattened into columns).
    Group options: lr, momentum, backend_steps, weight_decay. `momentum` may be changed between steps (warm-up).
    """

    def __init__(self, params: Any, lr: float, momentum: float, backend_steps: int = 5,
                 weight_decay: float = 0.0, rank: int = 0, world_size: int = 1) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, backend_steps=backend_steps,
                                      weight_decay=weight_decay))
        for group in self.param_groups:
            for p in group["params"]:
                if p.ndim < 2:
                    raise ValueError(f"Muon needs matrices, got a parameter of shape {tuple(p.shape)}")
        self.rank, self.world_size = rank, world_size

    def _update(self, p: Tensor, group: dict[str, Any]) -> Tensor:
        grad = p.grad.reshape(p.size(0), -1)
        state = self.state[p]
        if "momentum_buffer" not in state:
            state["momentum_buffer"] = torch.zeros_like(grad)
        buf = state["momentum_buffer"]
        buf.mul_(group["momentum"]).add_(grad)
        nesterov = grad.add(buf, alpha=group["momentum"])
        update = newton_schulz(nesterov, group["backend_steps"])
        rows, cols = update.shape
        return update * max(1.0, rows / cols) ** 0.5

    # `with torch.no_grad()` inside rather than as a decorator: mutation testing (mutmut) skips decorated functions.
    def step(self, closure: Any = None) -> None:
        with torch.no_grad():
            sharded = self.world_size > 1 and dist.is_initialized()
            for group in self.param_groups:
                params = [p for p in group["params"] if p.grad is not None]
                if not params:
                    continue
                # One flat buffer in the parameters' dtype: rank r fills the slices of its own matrices, the
                # all-reduce (a sum of disjoint slices) hands every rank every update.
                flat = torch.zeros(sum(p.numel() for p in params), device=params[0].device, dtype=params[0].dtype)
                offset = 0
                for i, p in enumerate(params):
                    if not sharded or i % self.world_size == self.rank:
                        flat[offset:offset + p.numel()] = self._update(p, group).flatten().to(flat.dtype)
                    offset += p.numel()
                if sharded:
                    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
                lr, wd = group["lr"], group["weight_decay"]
                offset = 0
                for p in params:
                    if wd:
                        p.mul_(1.0 - lr * wd)
                    p.add_(flat[offset:offset + p.numel()].view_as(p), alpha=-lr)
                    offset += p.numel()


def build_optimizers(groups: dict[str, list[nn.Parameter]], train: TrainConfig, device: torch.device,
                     rank: int = 0, world_size: int = 1) -> list[torch.optim.Optimizer]:
    """Muon for `matrix`, AdamW for `embed` (tied_embed_lr) and `scalar` (scalar_lr); with
    `train.optimizer: adamw`, one AdamW for all three (see `build_adamw`).

    Each param group remembers its base LR as `base_lr`; the schedule multiplies it (see `set_lr_scale`)."""
    if train.optimizer == "adamw":
        return [build_adamw(groups, train, device)]
    optimizers: list[torch.optim.Optimizer] = []
    if groups.get("matrix"):
        muon = Muon(groups["matrix"], lr=train.matrix_lr, momentum=train.muon_momentum,
                    backend_steps=train.muon_backend_steps, weight_decay=train.muon_wd,
                    rank=rank, world_size=world_size)
        optimizers.append(muon)
    adam_groups = [{"params": groups[name], "lr": lr} for name, lr in
                   (("embed", train.tied_embed_lr), ("scalar", train.scalar_lr)) if groups.get(name)]
    if adam_groups:
        optimizers.append(torch.optim.AdamW(
            adam_groups, betas=(train.adam_beta1, train.adam_beta2), eps=train.adam_eps,
            weight_decay=train.adam_wd, fused=device.type == "cuda"))
    for opt in optimizers:
        for group in opt.param_groups:
            group["base_lr"] = group["lr"]
    return optimizers


def build_adamw(groups: dict[str, list[nn.Parameter]], train: TrainConfig, device: torch.device
                ) -> torch.optim.Optimizer:
    """The seed's small trainers' optimizer: AdamW over every parameter, weight decay `adam_wd` on parameters
    of two or more dimensions (matrices, embedding tables, loop offsets) and none on vectors and scalars. Each
    of our groups keeps its LR (matrix_lr, tied_embed_lr, scalar_lr; the seed used one LR for all)."""
    lrs = {"matrix": train.matrix_lr, "embed": train.tied_embed_lr, "scalar": train.scalar_lr}
    param_groups = []
    for name, lr in lrs.items():
        for decay in (True, False):
            params = [p for p in groups.get(name, []) if (p.ndim >= 2) == decay]
            if params:
                param_groups.append({"params": params, "lr": lr, "base_lr": lr,
                                     "weight_decay": train.adam_wd if decay else 0.0})
    return torch.optim.AdamW(param_groups, betas=(train.adam_beta1, train.adam_beta2), eps=train.adam_eps,
                             fused=device.type == "cuda")


def set_lr_scale(optimizers: list[torch.optim.Optimizer], scale: float) -> None:
    for opt in optimizers:
        for group in opt.param_groups:
            group["lr"] = group["base_lr"] * scale


def set_muon_momentum(optimizers: list[torch.optim.Optimizer], momentum: float) -> None:
    for opt in optimizers:
        if isinstance(opt, Muon):
            for group in opt.param_groups:
                group["momentum"] = momentum


class EMA:
    """Exponential moving average of the parameters (fp32), updated after every optimizer step.

    Until `start_step` the average simply follows the weights, so it starts from trained weights rather than
    from the initialization (the seed's EMA_START_STEP)."""

    def __init__(self, model: nn.Module, decay: float, start_step: int = 0) -> None:
        self.decay, self.start_step = decay, start_step
        self.shadow = [p.detach().float().clone() for p in model.parameters() if p.requires_grad]

    # `with torch.no_grad()` inside rather than as a decorator: mutation testing (mutmut) skips decorated functions.
    def update(self, model: nn.Module, step: int) -> None:
        with torch.no_grad():
            params = [p.detach().float() for p in model.parameters() if p.requires_grad]
            if step <= self.start_step:
                torch._foreach_copy_(self.shadow, params)
            else:
                torch._foreach_lerp_(self.shadow, params, 1.0 - self.decay)

    def copy_to(self, model: nn.Module) -> None:
        """Load the averaged weights into `model` (what gets evaluated and exported)."""
        with torch.no_grad():
            params = [p for p in model.parameters() if p.requires_grad]
            for p, s in zip(params, self.shadow, strict=True):
                p.copy_(s.to(p.dtype))
