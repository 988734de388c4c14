"""Stability along a trajectory: the step map's spectrum (the scheme itself, :mod:`.stepmap`) and
the layer Jacobian's extreme eigenvalues placed over the scheme's stability region.

The step map decides: its spectral radius is the growth per step of the worst mode, real or
complex, whatever the scheme. The layer spectrum explains it in the scheme's linear analysis:
for each step j of an integration, the k extreme eigenvalues of the Jacobian the scheme's linear
stability depends on (see :func:`~.linear.operator_jacobian`) are mapped to the scheme's
stability variable: z = hλ for one-step methods (eigenvalues ±√μ of the first-order form for
second-order and Hamiltonian operators), z = h²μ for the partitioned schemes. A point is outside
the stability region when the scheme's amplification exceeds 1. The largest stable step for the
computed spectrum is found along each eigenvalue's ray (for forward Euler on a real negative
spectrum this is the paper's h ≤ 2/ρ; for leapfrog h²ρ ≤ 4).
"""

from __future__ import annotations

import numpy as np
import torch

from ..errors import InvalidArgumentError, real_or_nan, require_probability, require_seed, require_tolerance
from ..schemes.base import stage_time
from .eigen import all_eigenvalues, eigs, select
from .linear import operator_jacobian
from .modes import analyses_an_operator
from .precision import UNIT_ROUNDOFF, dtype_named
from .report import Report, sweepable
from .stepmap import COUNT_BUDGET, REDUCED_DENSE_MAX, step_map_spectra


def to_stability_variable(mu: np.ndarray, how: str, scheme, h: float) -> np.ndarray:
    mu = np.asarray(mu, dtype=complex)
    if scheme.stability_variable == "h^2*lambda":
        return h * h * mu
    if how == "J":
        return h * mu
    root = np.sqrt(mu)
    return h * np.concatenate([root, -root])


def largest_stable_step(mu: np.ndarray, how: str, scheme, h_max: float = 1e6, z_min: float = 1e-6) -> float:
    """The largest h for which every z(h) of the computed eigenvalues is in the stability region.

    0 when no step with |z| ≥ ``z_min`` for the largest eigenvalue is stable: a point z = hλ with
    Re λ > 0 (or, for z = h²μ, a non-real μ) leaves the region at every h > 0, but only by
    O(|z|·|Re λ|/|λ|), which the round-off tolerance of the amplification (10⁻¹²) hides for
    h ≲ 10⁻¹²/|Re λ|. Searching from h = 0 would report that tolerance (h ≈ 10⁻¹⁰) as a stable
    step; searching from |z| = ``z_min`` reports 0, and an unstable part of relative size above
    about 10⁻⁶ is always seen.
    """
    def ok(h):
        return bool(np.all(scheme.amplification(to_stability_variable(mu, how, scheme, h)) <= 1 + 1e-12))

    scale = float(np.max(np.abs(to_stability_variable(mu, how, scheme, 1.0)), initial=0.0))  # |z| per unit h
    if scale == 0.0:
        return float("inf")
    h_min = z_min / scale if scheme.stability_variable != "h^2*lambda" else np.sqrt(z_min / scale)
    if not ok(h_min):
        return 0.0
    lo, hi = h_min, max(1.0, 2 * h_min)
    while ok(hi) and hi < h_max:
        lo, hi = hi, hi * 2
    if hi >= h_max:
        return float("inf")
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


def complete_largest_stable_step(step_scheme, operator, point: tuple, t: float, h: float, spectra: list[dict],
                                 delta: float) -> float | None:
    """The largest stable h from the *whole* spectrum of the step map, where the scheme has a
    reduced form M = h^p·L (``StepForm.h_power``, ``mu_from_roots``): forward Euler on a
    first-order block (S_j = I + hJ: μ = ξ − 1, λ = μ/h) and the two-level schemes (ξ² − (2 + μ)ξ
    + 1 = 0: μ = ξ + 1/ξ − 2 = h²λ, stable only for real μ in [−4, 0]). Every eigenvalue ξ of
    S_j that an exact count computed (dense, or through the active units) gives a λ, and the
    answer is the smallest over the examples of :func:`largest_stable_step` on all of them, for L
    frozen at this step's point. Eigenvalues with |μ| ≤ ``delta`` are taken as neutral, as the
    count takes |ξ| ≤ 1 + δ: ReLU-switched-off units give μ = 0, which the dense eigenvalues
    return with errors up to about √ε, and an error of 10⁻⁸ off the real axis would otherwise read
    as "unstable at every h"; likewise imaginary parts |Im μ| ≤ δ are taken as round-off (the
    two-level region is the real segment [−4, 0], and near its end the amplification is so
    sensitive to Im z that an imaginary part of 10⁻¹⁴ moved the step by 2·10⁻⁵). None unless
    the scheme has such a form and every example's spectrum is complete: the few layer
    eigenvalues are then the only estimate. They can be far
    off: an unconverged Ritz value with Re λ ≈ 10⁻⁶ gives 0 where the whole spectrum says
    otherwise, and complex modes they miss make a two-level scheme unstable at every h where
    they report a positive step (both seen on trained Fashion-MNIST networks)."""
    form = step_scheme.reduced_step_form(operator, tuple(c[:1] for c in point), t, h)
    if form is None or form.mu_from_roots is None:
        return None
    if not all(sm["exact"] and len(sm["computed"]) == sm["unknowns"] for sm in spectra):
        return None
    how = "J" if form.h_power == 1 else "BA"  # z = hλ, or z = h²λ for the two-level schemes
    best = float("inf")
    for sm in spectra:
        mu = form.mu_from_roots(np.asarray(sm["computed"], dtype=complex))
        mu = mu[np.abs(mu) > delta]
        mu = np.where(np.abs(mu.imag) <= delta, mu.real + 0j, mu)  # round-off off the real axis
        best = min(best, largest_stable_step(mu / h ** form.h_power, how, step_scheme))
    return best


def symmetry_defect(J, n_probe: int = 3, seed: int = 0) -> float:
    """max |⟨Jv, w⟩ − ⟨v, Jw⟩| / (‖Jv‖‖w‖) over random probes (0 for a symmetric J)."""
    g = torch.Generator().manual_seed(seed)
    worst = 0.0
    for _ in range(n_probe):
        v = torch.randn(J.shape[1], generator=g, dtype=torch.float64).to(J.device, J.dtype)
        w = torch.randn(J.shape[0], generator=g, dtype=torch.float64).to(J.device, J.dtype)
        Jv, Jw = J.matvec(v), J.matvec(w)
        worst = max(worst, float((abs((Jv * w).sum() - (v * Jw).sum()) / (Jv.norm() * w.norm()).clamp_min(1e-300)).detach()))
    return worst


def _layer_spectrum(operator, state, t, example: int, step_scheme, h: float, k: int, backend: str, tol: float,
                    dense_max: int = 0) -> dict:
    """The k largest-magnitude and 2 largest-real-part eigenvalues of the layer Jacobian of one
    example, mapped to the scheme's stability variable z, with what they predict."""
    J, how = operator_jacobian(operator, state, t, example)
    if J.shape[1] <= dense_max and hasattr(J, "dense"):  # one dense spectrum serves both selections
        vals = all_eigenvalues(J)
        lm, lr = select(vals, min(k, J.shape[1]), "LM"), select(vals, min(2, J.shape[1]), "LR")
    else:
        lm = eigs(J, k=min(k, J.shape[1] - 2), which="LM", backend=backend, tol=tol, maxiter=100)
        # the rightmost eigenvalues of a crowded spectrum: ARPACK rarely converges on them (CIFAR-10
        # Hamiltonian units at initialisation: not in 100 restarts, 4–11 s each), so a tighter budget
        lr = eigs(J, k=min(2, J.shape[1] - 2), which="LR", backend=backend, tol=tol, maxiter=25,
                  scale=float(np.max(np.abs(lm.values))))
    mu = np.concatenate([np.atleast_1d(lm.values), np.atleast_1d(lr.values)])
    z = to_stability_variable(mu, how, step_scheme, h)
    return dict(jacobian=how, eigenvalues_LM=np.asarray(lm.values), eigenvalues_LR=np.asarray(lr.values), z=z,
                predicted_amplification=float(np.max(step_scheme.amplification(z))),
                spectral_radius=float(np.max(np.abs(lm.values))), max_real=float(np.max(np.real(lr.values))),
                largest_stable_h=largest_stable_step(mu, how, step_scheme),
                layer_status="converged" if lm.status == lr.status == "converged" else "not_converged",
                symmetry_defect=symmetry_defect(J) if how == "J" else float("nan"))


@sweepable("stability")
@analyses_an_operator
def spectrum_along_trajectory(operator, y0, scheme="euler", *, T=None, n_steps=None, k: int = 6,
                              example: int | None = None, examples=None, backend: str = "auto", tol: float = 1e-8,
                              delta: float = 1e-6, dense_max: int = 2048, count_max: int = 256,
                              rtol: float = 1e-6, atol: float = 1e-8, count_examples: int | None = None,
                              reduced_dense_max: int = REDUCED_DENSE_MAX, failure_probability: float = 1e-6,
                              seed: int = 0, count_budget: int = COUNT_BUDGET, progress=None) -> Report:
    """Stability of ``scheme`` along its own solve from ``y0``, for every example (or ``examples``).

    At every step j (the accepted steps of an adaptive scheme):

    * the step map's spectral radius ρ(S_j), its eigenvalues outside |ξ| ≤ 1 + ``delta`` (counted
      completely, :mod:`.stepmap`) and ‖S_j‖₂ — the stability of the scheme itself, per example
      (where ‖S_j‖₂ ≤ 1 + δ certifies that no mode is outside, that bound is reported as the
      radius, method "norm bound"); ``step_map_radius_upper`` = ‖S_j‖₂ brackets every radius
      (from above by the Lanczos polynomial bound, :func:`~.krylov.lanczos_polynomial_bound`,
      failing with probability at most δ_p = ``failure_probability`` per example and step over
      the random start drawn from ``seed``, whatever the spectrum; so a "norm bound" count of 0
      fails with probability at most δ_p);
    * for the example with the largest ρ(S_j), the k largest-magnitude and 2 largest-real-part
      eigenvalues of the layer Jacobian for the scheme's linear analysis, mapped to its stability
      variable z and drawn over the region; ``predicted_amplification`` = max amplification over
      these few values. It can miss unstable complex modes (the step map's ρ cannot) and is kept
      for comparison.

    ``max_amplification`` is the worst ρ(S_j) over the examples: the growth per step of the worst
    mode, real or complex.

    ``count_examples`` = c (default: every example) bounds the complete counts at large sizes: at
    each step a short batched Arnoldi run estimates ρ(S_j) for every example and the c with the
    largest certified lower bound on it (in example order where none has one) are counted
    (:func:`~.stepmap.step_map_spectra`); the others report that estimate (status "estimate") and
    ‖S_j‖₂. ``max_amplification`` and ``n_outside_max`` are then taken
    over the counted and norm-certified examples, ``max_amplification_estimated`` over all.

    The two-level schemes (symplectic Euler, Verlet, leapfrog) are counted exactly from their
    half-size form, and forward Euler on a first-order operator from S = I + hM (:mod:`.stepmap`),
    reduced to the hidden units a ReLU keeps on, while that matrix has at most
    ``reduced_dense_max`` rows (per example and step on 2 CPU cores: about 2 s at 2,000 rows, 5 s
    at 3,000 and 43 s at 6,100 — CIFAR-10's Hamiltonian units 3, 2 and 1); beyond, by ARPACK,
    with at most ``count_budget`` products per example and step (default 4,000). A count that
    ran out of it is reported as the lower bound it is ("≥", status "not_converged"): raise
    ``count_budget`` for a complete one (each product costs about one evaluation of the operator
    and its vjp; on a GPU they are cheap).

    ``progress(where)``, if given, is called after each example of each step with a label such
    as "step 2/3, example 5/32".
    """
    from .krylov import golub_kahan
    from .steps import discretise, distribution, select_examples

    tol, seed = require_tolerance("tol", tol), require_seed(seed)
    if isinstance(count_budget, bool) or not isinstance(count_budget, int) or count_budget < 1:
        raise InvalidArgumentError(f"count_budget is the most Jacobian-vector products one ARPACK count of the modes "
                                   f"outside may take, a positive integer (default {COUNT_BUDGET}), got {count_budget!r}")
    failure_probability = require_probability("failure_probability", failure_probability)
    if not 0.0 <= real_or_nan(delta) < 1.0:
        raise InvalidArgumentError(f"delta is the margin of the unit circle, |ξ| > 1 + delta counting as unstable: a "
                                   f"number in [0, 1) (default 1e-6), got {delta!r}")
    delta = float(delta)
    if example is not None:
        examples = [example]
    y0 = select_examples(y0, examples)
    disc = discretise(operator, y0, scheme, T=T, n_steps=n_steps, rtol=rtol, atol=atol)
    scheme, step_scheme = disc.scheme, disc.step_scheme
    batch = disc.batch
    rows, steps = [], []
    norm_product = np.ones(batch)
    for j, (t0, h, internal) in enumerate(disc.steps):
        S = disc.step_jacobian(j)
        # ‖S_j‖₂ to 1e-13 and on until "‖S_j‖₂ ≤ 1 + δ?" is decided by the probable bound or the Ritz value: a
        # converged residual alone left a contractive step (‖S_j‖₂ = 1) at 1 + 4.6e-6 at CIFAR-10's size
        norms = golub_kahan(S, k=1, which="largest", tol=min(tol, 1e-13), seed=seed, certify_below=1 + delta,
                            failure_probability=failure_probability,
                            unit_roundoff=UNIT_ROUNDOFF[dtype_named(S.dtype)[0]])
        norm_product *= norms.values[:, 0]
        done = iter(range(1, batch + 1))
        tick = (lambda j=j: progress(f"step {j + 1}/{disc.n_steps}, example {next(done)}/{batch}")) if progress else None
        spectra = step_map_spectra(disc, j, delta=delta, dense_max=dense_max, count_max=count_max, tol=tol, backend=backend,
                                   norms=norms, progress=tick, S=S, count_examples=count_examples,
                                   reduced_dense_max=reduced_dense_max, failure_probability=failure_probability,
                                   count_budget=count_budget)
        per_ex = [dict(example=b, step_map_radius=sm["radius"], step_map_radius_upper=sm["radius_upper"],
                       step_map_radius_lower=sm["radius_lower"],
                       step_map_radius_residual=sm["radius_residual"], step_map_status=sm["status"], n_outside=sm["count"],
                       count_exact=sm["exact"], unknowns=sm["unknowns"], step_map_method=sm["method"],
                       eigenvalues_outside=np.asarray(sm["outside"]), step_norm=float(norms.values[b, 0]),
                       _step_map_eigenvalues=np.asarray(sm["computed"]), step_norm_status=norms.status[b])
                  for b, sm in enumerate(spectra)]
        radius = [e["step_map_radius"] for e in per_ex]
        worst = per_ex[int(np.argmax(radius))]
        sure = [e for e in per_ex if e["step_map_status"] != "estimate"]  # counted or norm-certified
        # the layer spectrum of the worst example, for comparison only, on a bounded budget
        state = step_scheme.to_state(operator, internal, h)
        layer = _layer_spectrum(operator, state, stage_time(t0, 0.0, h), worst["example"], step_scheme, h, k, backend, tol,
                                dense_max)
        complete_h = complete_largest_stable_step(step_scheme, operator, internal, t0, h, spectra, delta)
        status = "converged" if all(e["step_map_status"] == e["step_norm_status"] == "converged" for e in per_ex) else "not_converged"
        n_out = [e["n_outside"] for e in per_ex]
        exact = all(e["count_exact"] for e in per_ex)
        amp = float(max(e["step_map_radius"] for e in sure))
        n_out_max = int(max(e["n_outside"] for e in sure))
        steps.append(dict(step=j, t=float(t0), h=float(h), examples=per_ex, **layer, max_amplification=amp,
                          max_amplification_estimated=float(max(radius)), counted_examples=[e["example"] for e in sure],
                          step_map_radius=distribution(radius), n_outside_max=n_out_max, n_outside=distribution(n_out),
                          count_exact=exact, fraction_outside=n_out_max / worst["unknowns"],
                          step_norm=distribution([e["step_norm"] for e in per_ex]), layer_example=worst["example"],
                          largest_stable_h_complete=complete_h,
                          largest_stable_h_reported=layer["largest_stable_h"] if complete_h is None else complete_h,
                          status=status))
        bound = worst["step_map_method"] == "norm bound"  # every radius certified ≤ 1 + δ by ‖S_j‖₂
        open_ = [e for e in per_ex if e["step_map_status"] != "converged"]
        if bound:
            shown = f"≤ {amp:.7g}"
        elif open_:  # unconverged: what is certain is [largest value with a small residual, ‖S_j‖₂]
            lo = max((e["step_map_radius_lower"] for e in per_ex if np.isfinite(e["step_map_radius_lower"])), default=float("nan"))
            hi = max(e["step_map_radius_upper"] for e in per_ex)
            shown = f"[{lo:.8g}, {hi:.4g}]" if np.isfinite(lo) else f"≤ {hi:.4g} (est. {max(radius):.5g})"
        else:
            shown = amp
        counted_ok = all(e["step_map_status"] == "converged" for e in sure) and len(sure) < batch
        rows.append([j, round(float(t0), 6), float(h), shown,
                     ("" if exact else "≥ ") + str(n_out_max),
                     float(max(e["step_norm"] for e in per_ex)), layer["predicted_amplification"],
                     layer["spectral_radius"], steps[-1]["largest_stable_h_reported"],
                     f"{len(sure)} of {batch} counted" if counted_ok else status])
    h_used = disc.steps[0][1] if not scheme.adaptive else None
    growth_bound = distribution(norm_product)

    def plot(fig):
        fig.set_size_inches(10, 4.2)
        ax = fig.add_subplot(131)
        zs = np.concatenate([s_["z"] for s_ in steps])
        r = max(2.5, 1.2 * float(np.max(np.abs(zs)))) if len(zs) else 2.5
        if step_scheme.stability_variable == "h^2*lambda":
            # the region of the two-step schemes is the real interval [−4, 0]: draw it as a band
            r = max(r, 4.5)
            ax.plot([-4, 0], [0, 0], color="#3b6e99", lw=6, alpha=0.35, solid_capstyle="butt", label="stable: [−4, 0]")
            ax.set_xlim(-r, max(0.5, 1.2 * float(np.max(np.real(zs))) if len(zs) else 0.5))
            ax.set_ylim(-r / 4, r / 4)
        else:
            xx, yy = np.meshgrid(np.linspace(-r, r / 2, 300), np.linspace(-r, r, 300))
            amp = step_scheme.amplification(xx + 1j * yy)
            ax.contourf(xx, yy, amp <= 1 + 1e-12, levels=[0.5, 1.5], colors=["#cfe3f3"])
            ax.contour(xx, yy, amp, levels=[1.0], colors=["#3b6e99"], linewidths=1)
        for s_ in steps[:12]:
            ax.scatter(np.real(s_["z"]), np.imag(s_["z"]), s=10, label=f"step {s_['step']}")
        ax.set_xlabel(f"Re z  (z = {step_scheme.stability_variable.replace('*', '·')})")
        ax.set_ylabel("Im z")
        ax.set_title(f"{scheme.name}: layer eigenvalues", fontsize=9)
        ax.axhline(0, color="k", lw=0.5)
        ax.axvline(0, color="k", lw=0.5)
        if len(steps) <= 12:
            ax.legend(fontsize=6)
        ax3 = fig.add_subplot(133)
        worst_step = max(steps, key=lambda s_: s_["max_amplification"])
        counted = [e for e in worst_step["examples"] if e["step_map_status"] != "estimate"] or worst_step["examples"]
        ex = max(counted, key=lambda e: e["step_map_radius"])  # a whole spectrum where one was counted
        xi = ex["_step_map_eigenvalues"]
        out_ = np.abs(xi) > 1 + delta
        circle = np.exp(1j * np.linspace(0, 2 * np.pi, 400))
        ax3.plot(circle.real, circle.imag, color="k", lw=0.6)
        ax3.scatter(xi.real[~out_], xi.imag[~out_], s=4, color="C0", label="|ξ| ≤ 1 + δ")
        ax3.scatter(xi.real[out_], xi.imag[out_], s=6, color="C3", label=f"|ξ| > 1 + δ ({int(out_.sum())})")
        ax3.set_aspect("equal")
        ax3.set_title(f"eigenvalues ξ of S_{worst_step['step']} (example {ex['example']})", fontsize=9)
        ax3.legend(fontsize=6)
        ax2 = fig.add_subplot(132)
        js = [s_["step"] for s_ in steps]
        ax2.plot(js, [s_["max_amplification"] for s_ in steps], "o-", color="C3", label="ρ(S_j), worst counted example")
        if any(len(s_["counted_examples"]) < batch for s_ in steps):  # Ritz estimates: not eigenvalues, drawn apart
            ax2.plot(js, [s_["max_amplification_estimated"] for s_ in steps], "x:", color="C1",
                     label="largest estimate, uncounted examples")
        else:
            ax2.fill_between(js, [s_["step_map_radius"]["p5"] for s_ in steps],
                             [s_["step_map_radius"]["p95"] for s_ in steps], color="C3", alpha=0.2, label="ρ(S_j), 5–95%")
        ax2.plot(js, [s_["step_norm"]["max"] for s_ in steps], "s--", color="C0", label="‖S_j‖₂, worst")
        ax2.axhline(1.0, color="k", lw=0.6)
        ax2.set_xlabel("step j")
        ax2.set_title("step map: radius and norm", fontsize=9)
        ax2.legend(fontsize=6)

    delta_txt = f"|ξ| > 1 + {delta:g}"
    notes = [f"max amplification = ρ(S_j), the spectral radius of the one-step map's Jacobian through the scheme's own step, "
             f"worst over {batch} example(s) (‖S_j‖₂ where that bound already certifies ρ ≤ 1 + δ); modes outside: "
             f"eigenvalues of S_j with {delta_txt}, counted completely ('≥' where the count stopped at its cap or did "
             f"not converge within {count_budget} products: raise count_max or count_budget; the radius is then "
             "shown as [largest |ξ| found with relative residual ≤ 1e-6, ‖S_j‖₂]: ρ ≤ ‖S_j‖₂ always, and a value with residual r is an eigenvalue of a matrix within r·|ξ| of S_j); ‖S_j‖₂ from above by "
             f"the Lanczos polynomial bound of a Golub–Kahan run from a random start (seed {seed}), which fails with "
             f"probability at most {failure_probability:g} per example and step whatever the spectrum",
             f"Π_j ‖S_j‖₂ (a-priori growth bound over the block): median {growth_bound['median']:.4g}, worst {growth_bound['max']:.4g}",
             f"z = {step_scheme.stability_variable} for the {k} largest-magnitude and 2 largest-real layer eigenvalues of the "
             "worst example; "
             "'R(z) max' is the amplification they predict — a few eigenvalues, kept for comparison only"]
    complete = [s_["largest_stable_h_complete"] is not None for s_ in steps]
    if any(complete):
        relation = "S_j = I + hJ, λ = (ξ − 1)/h" if step_scheme.stability_variable != "h^2*lambda" else \
            "ξ² − (2 + h²λ)ξ + 1 = 0, h²λ = ξ + 1/ξ − 2"
        where = "" if all(complete) else f" at steps {[s_['step'] for s_, c in zip(steps, complete) if c]}"
        notes.append("largest stable h" + where
                     + f": from the whole spectrum of the step map ({relation} for every eigenvalue ξ of the exact "
                     "count, the layer frozen at the step's point), the smallest over the examples; the few layer "
                     "eigenvalues' value is kept in the data as 'largest_stable_h'")
    if not all(complete):
        notes.append("largest stable h" + ("" if not any(complete) else " at the other steps")
                     + ": from the few layer eigenvalues of the worst example (an estimate: a complex or small mode they "
                     "miss can lower it)")
    defects = [s_["symmetry_defect"] for s_ in steps]
    if all(np.isfinite(defects)):  # measured for a first-order operator's ∂F/∂Y only
        notes.append("symmetry defect of ∂F/∂Y, max |⟨Jv, w⟩ − ⟨v, Jw⟩| / (‖Jv‖‖w‖) over 3 random probes, at each "
                     f"step's worst example: {', '.join(f'{d:.2g}' for d in defects)} (0 for a symmetric J, as the "
                     "parabolic −KᵀDK with N = id, paper §3; then every eigenvalue is real)")
    estimated = sorted({e["example"] for s_ in steps for e in s_["examples"] if e["step_map_status"] == "estimate"})
    if estimated:
        notes.append(f"counted completely at each step: {count_examples} example(s) — those with the largest certified "
                     "lower bound on ρ(S_j) from a short Arnoldi run batched over all examples (a Ritz value with "
                     "residual ≤ 1e-6), in example order where none has one; the Ritz radius itself is no ranking (it "
                     "was measured uncorrelated with the exact ρ where the modes outside crowd at the circle) — "
                     "and those certified by ‖S_j‖₂; the other examples keep "
                     "that estimate and the bound ‖S_j‖₂ (status 'estimate'; their counts are lower bounds). "
                     "'ρ(S_j) max' and 'modes outside' are over the counted examples; pass count_examples=None "
                     "(CLI --count-examples 0) to count every example")
    above = [(s_["step"], e["example"], e["step_map_radius"]) for s_ in steps for e in s_["examples"]
             if e["step_map_status"] == "estimate" and e["step_map_radius"] > s_["max_amplification"] * (1 + 1e-9)]
    if above:
        j_, b_, r_ = max(above, key=lambda a: a[2])
        notes.append(f"at {len(above)} (step, example) pair(s) the short Arnoldi estimate exceeds the counted radius "
                     f"(largest: example {b_} at step {j_}, estimate {r_:.6g}): a Ritz value of a non-normal S_j can lie "
                     "outside its spectrum, so this is not an eigenvalue, but the ranking cannot rule out that the "
                     "example is less stable than the counted one; count it (count_examples=None, CLI "
                     "--count-examples 0) to know")
    title = f"Stability of {scheme.name} along its steps" + (f" (h = {h_used:.4g})" if h_used else " (accepted steps)")
    return Report("stability", title,
                  ["step", "t", "h", "ρ(S_j) max", "modes outside", "‖S_j‖ max", "R(z) max (few λ)", "ρ(∂F/∂Y)",
                   "largest stable h", "status"], rows,
                  dict(scheme=scheme.name, h=h_used, steps=steps, examples=batch, delta=delta, failure_probability=failure_probability,
                       count_budget=count_budget,
                       seed=seed, growth_bound=growth_bound,
                       growth_bound_per_example=norm_product.tolist()), plot, notes)
