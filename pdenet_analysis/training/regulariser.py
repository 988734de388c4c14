"""The paper's regulariser R (eq. 13) and box constraint, in a constant number of kernels.

    R = α₁ Σ_layers Σ_p h Σ_j sqrt(((θ_{j+1,p} − θ_{j,p})/h)² + τ)            (smoothed TV in time)
      + (α₂/2) (Σ_layers h Σ_j ‖K_j‖² + ‖opening/connector kernels‖² + ‖W‖² + ‖μ‖²)   (weight decay)

over every parameter θ of the PDE blocks' time-dependent layers (stacked along dim 0, one row per
node of their time grid, step h = the grid's spacing) and the kernels K among them.

Why not one expression per parameter: the paper's networks are small, so on a GPU a training step
is bound by kernel launches. Written per parameter, R and its gradient take several hundred
operations per step on the CIFAR-10 presets, of the order of the network's own forward and
backward passes, and the box constraint a few more per parameter (counted with the profiler,
``python benchmarks/bench_regulariser.py``); on a GPU the library's eager step then ran
markedly slower than a plain loop, and nearly as fast with R left out (docs/benchmarks.md).
Here R is computed with ``torch._foreach_*``
operations over all parameters at once, and its gradient by the closed form

    ∂R/∂θ_{j+1} += g_j,   ∂R/∂θ_j −= g_j,   g_j = α₁ d_j / sqrt(d_j² + τ),  d_j = (θ_{j+1} − θ_j)/h,
    ∂R/∂K += α₂ c_K K    (c_K = h for a PDE-block kernel, 1 otherwise),

also with foreach operations (:class:`_Regulariser`): a few dozen operations on those presets,
and 2 for the box constraint, whatever the depth. The
coefficients travel as Python scalars, so nothing is copied to the device and the step can be
recorded as a CUDA graph. The sums accumulate in float64: a float32 1-norm on the CPU adds its
terms one after another (10⁶ equal terms: 0.5 % low), where ``Tensor.sum`` sums pairwise.
``tests/test_training.py`` holds the value and the gradient to the per-parameter formula above
in float64, and the float32 value to the float64 one.
"""

from __future__ import annotations

import torch

from ..operators.layers import TimeDependentLayer


def _terms(model, alpha_tv: float, alpha_decay: float):
    """([TV parameters], [1/h], [α₁h], [decayed parameters], [α₂/2 · c]) of ``model``, each
    parameter once in each list."""
    tv, inv_h, tv_coef, sq, sq_coef = [], [], [], [], []
    for m in model.modules():
        if isinstance(m, TimeDependentLayer):
            h = m.grid.spacing
            if alpha_tv:
                for p in m.parameters(recurse=False):
                    if p.shape[0] > 1:
                        tv.append(p)
                        inv_h.append(1.0 / h)
                        tv_coef.append(alpha_tv * h)
            if alpha_decay:
                for k in m.kernels():
                    sq.append(k)
                    sq_coef.append(0.5 * alpha_decay * h)
    if alpha_decay:  # the paper's network (PDECNN): its opening, connectors and classifier
        for mod in list(model.opening) + [u.connector[0] for u in model.units]:
            if isinstance(mod, torch.nn.Conv2d):
                sq.append(mod.weight)
                sq_coef.append(0.5 * alpha_decay)
        for p in (model.classifier.weight, model.classifier.bias):
            sq.append(p)
            sq_coef.append(0.5 * alpha_decay)
    return tv, inv_h, tv_coef, sq, sq_coef


class _Regulariser(torch.autograd.Function):
    """R of the parameters (see the module docstring); the first argument holds the lists of
    :func:`_terms` (without the tensors), the rest are the distinct parameters."""

    @staticmethod
    def forward(ctx, spec, *params):
        tv_idx, inv_h, tv_coef, sq_idx, sq_coef, tau = spec
        tv, sq = [params[i] for i in tv_idx], [params[i] for i in sq_idx]
        parts = []
        d = s = None
        if tv:
            d = torch._foreach_sub([p[1:] for p in tv], [p[:-1] for p in tv])
            torch._foreach_mul_(d, inv_h)
            s = torch._foreach_mul(d, d)
            torch._foreach_add_(s, tau)
            torch._foreach_sqrt_(s)
            torch._foreach_mul_(s, tv_coef)  # α₁h·sqrt(d² + τ) > 0: its 1-norm is its sum
            parts.append(torch.stack(torch._foreach_norm(s, 1, dtype=torch.float64)).sum())
        if sq:
            norms = torch._foreach_norm(sq, 2, dtype=torch.float64)
            torch._foreach_mul_(norms, norms)
            torch._foreach_mul_(norms, sq_coef)
            parts.append(torch.stack(norms).sum())
        ctx.spec, ctx.d, ctx.s = spec, d, s
        ctx.save_for_backward(*params)
        return sum(parts).to(params[0].dtype) if parts else params[0].new_zeros(())

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        tv_idx, inv_h, tv_coef, sq_idx, sq_coef, _ = ctx.spec
        params = ctx.saved_tensors
        grads = [None] * len(params)
        if sq_idx:  # ∂/∂K of c‖K‖² = 2cK
            for i, g in zip(sq_idx, torch._foreach_mul([params[i] for i in sq_idx], [2.0 * c for c in sq_coef])):
                grads[i] = g
        missing = [i for i in tv_idx if grads[i] is None]
        if missing:  # a zero to add the TV part into (p·0 keeps a NaN parameter's gradient NaN)
            for i, g in zip(missing, torch._foreach_mul([params[i] for i in missing], 0.0)):
                grads[i] = g
        if tv_idx:
            # g_j = α₁h · d_j / sqrt(d_j² + τ) / h, with s = α₁h · sqrt(d² + τ): g = (α₁h)²/h · d / s
            g = torch._foreach_div(ctx.d, ctx.s)
            torch._foreach_mul_(g, [c * c * r for c, r in zip(tv_coef, inv_h)])
            torch._foreach_add_([grads[i][1:] for i in tv_idx], g)
            torch._foreach_sub_([grads[i][:-1] for i in tv_idx], g)
        used = [g for g in grads if g is not None]
        if used:
            torch._foreach_mul_(used, grad_out)
        return (None, *grads)


def regulariser(model, cfg) -> torch.Tensor:
    """R of eq. 13 for ``model`` with ``cfg.alpha_tv``, ``cfg.alpha_decay`` and ``cfg.tau``: smoothed
    TV in time of the PDE-block parameters plus weight decay (module docstring)."""
    tv, inv_h, tv_coef, sq, sq_coef = _terms(model, cfg.alpha_tv, cfg.alpha_decay)
    params, index = [], {}
    for p in tv + sq:
        if id(p) not in index:
            index[id(p)] = len(params)
            params.append(p)
    if not params:
        p = next(model.parameters(), None)
        return torch.zeros((), device=None if p is None else p.device)
    spec = ([index[id(p)] for p in tv], inv_h, tv_coef, [index[id(p)] for p in sq], sq_coef, cfg.tau)
    return _Regulariser.apply(spec, *params)


def regulariser_per_parameter(model, cfg) -> torch.Tensor:
    """The same R as :func:`regulariser`, one expression per parameter and differentiated by
    autograd: the baseline of ``benchmarks/bench_regulariser.py``, and the form to use where a
    second derivative of R is needed (:func:`regulariser`'s gradient is once differentiable)."""
    tv, inv_h, tv_coef, sq, sq_coef = _terms(model, cfg.alpha_tv, cfg.alpha_decay)
    p0 = next(model.parameters(), None)
    r = torch.zeros((), device=None if p0 is None else p0.device, dtype=None if p0 is None else p0.dtype)
    for p, r_h, c in zip(tv, inv_h, tv_coef):
        r = r + c * torch.sqrt(((p[1:] - p[:-1]) * r_h).square() + cfg.tau).sum()
    for k, c in zip(sq, sq_coef):
        r = r + c * k.square().sum()
    return r


def apply_box_constraint(model, box: float) -> None:
    """Clip the PDE-block convolution kernels to [−box, box] (the paper's bound constraint, §4), in
    two foreach operations for all kernels."""
    kernels = [k for m in model.modules() if isinstance(m, TimeDependentLayer) for k in m.kernels()]
    if kernels:
        with torch.no_grad():
            torch._foreach_clamp_min_(kernels, -box)
            torch._foreach_clamp_max_(kernels, box)
