"""Spectra of the layer Jacobian along a trajectory, placed over the scheme's stability region.

For each step j of an integration, the k extreme eigenvalues of the Jacobian the scheme's linear
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

from ..integrate import integrate
from ..schemes import get_scheme
from ..schemes.base import stage_time
from .eigen import eigs
from .linear import operator_jacobian
from .report import Report


def to_stability_variable(mu: np.ndarray, how: str, scheme, h: float) -> np.ndarray:
    mu = np.asarray(mu, dtype=complex)
    if scheme.stability_variable == "h^2*lambda":
        return h * h * mu
    if how == "J":
        return h * mu
    root = np.sqrt(mu)
    return h * np.concatenate([root, -root])


def largest_stable_step(mu: np.ndarray, how: str, scheme, h_max: float = 1e6) -> float:
    """The largest h for which every z(h) of the computed eigenvalues is in the stability region."""
    def ok(h):
        return bool(np.all(scheme.amplification(to_stability_variable(mu, how, scheme, h)) <= 1 + 1e-12))

    if not ok(1e-12):
        return 0.0
    lo, hi = 0.0, 1.0
    while ok(hi) and hi < h_max:
        lo, hi = hi, hi * 2
    if hi >= h_max:
        return float("inf")
    for _ in range(60):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if ok(mid) else (lo, mid)
    return lo


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


def spectrum_along_trajectory(operator, y0, scheme="euler", *, T=None, n_steps=None, k: int = 6,
                              example: int = 0, backend: str = "auto", tol: float = 1e-8) -> Report:
    """Eigenvalues (LM and LR) of the layer Jacobian at every step, over the stability region."""
    scheme = get_scheme(scheme)
    with torch.no_grad():
        sol = integrate(operator, y0, scheme, T=T, n_steps=n_steps, trajectory=True)
    h = sol.h
    rows, steps = [], []
    for j, state in enumerate(sol.trajectory[:-1]):
        t = stage_time(j * h, 0.0, h)
        J, how = operator_jacobian(operator, state, t, example)
        lm = eigs(J, k=k, which="LM", backend=backend, tol=tol)
        lr = eigs(J, k=min(k, 2), which="LR", backend=backend, tol=tol, scale=float(np.max(np.abs(lm.values))))
        mu = np.concatenate([np.atleast_1d(lm.values), np.atleast_1d(lr.values)])
        z = to_stability_variable(mu, how, scheme, h)
        amp = scheme.amplification(z)
        sym = symmetry_defect(J) if how == "J" else float("nan")
        rho = float(np.max(np.abs(lm.values)))
        max_re = float(np.max(np.real(lr.values)))
        h_star = largest_stable_step(mu, how, scheme)
        status = "converged" if lm.status == lr.status == "converged" else "not_converged"
        steps.append(dict(step=j, t=float(t), jacobian=how, eigenvalues_LM=np.asarray(lm.values), eigenvalues_LR=np.asarray(lr.values),
                          residuals=np.concatenate([lm.residuals, lr.residuals]), z=z, amplification=amp,
                          spectral_radius=rho, max_real=max_re, fraction_outside=float(np.mean(amp > 1 + 1e-9)),
                          max_amplification=float(np.max(amp)),
                          largest_stable_h=h_star, symmetry_defect=sym, status=status))
        rows.append([j, how, rho, max_re, float(np.mean(amp > 1 + 1e-9)), float(np.max(amp)), h_star, h, sym, status])

    def plot(fig):
        ax = fig.add_subplot(111)
        zs = np.concatenate([s["z"] for s in steps])
        r = max(2.5, 1.2 * float(np.max(np.abs(zs)))) if len(zs) else 2.5
        if scheme.stability_variable == "h^2*lambda":
            # the region of the two-step schemes is the real interval [−4, 0]: draw it as a band
            r = max(r, 4.5)
            ax.plot([-4, 0], [0, 0], color="#3b6e99", lw=6, alpha=0.35, solid_capstyle="butt", label="stable: [−4, 0]")
            ax.set_xlim(-r, max(0.5, 1.2 * float(np.max(np.real(zs))) if len(zs) else 0.5))
            ax.set_ylim(-r / 4, r / 4)
        else:
            xx, yy = np.meshgrid(np.linspace(-r, r / 2, 300), np.linspace(-r, r, 300))
            amp = scheme.amplification(xx + 1j * yy)
            ax.contourf(xx, yy, amp <= 1 + 1e-12, levels=[0.5, 1.5], colors=["#cfe3f3"])
            ax.contour(xx, yy, amp, levels=[1.0], colors=["#3b6e99"], linewidths=1)
        for s in steps:
            ax.scatter(np.real(s["z"]), np.imag(s["z"]), s=14, label=f"step {s['step']}")
        ax.set_xlabel(f"Re z  (z = {scheme.stability_variable.replace('*', '·')})")
        ax.set_ylabel("Im z")
        ax.set_title(f"{scheme.name}: eigenvalues over the stability region")
        ax.axhline(0, color="k", lw=0.5)
        ax.axvline(0, color="k", lw=0.5)
        if len(steps) <= 12:
            ax.legend(fontsize=7)

    notes = [f"z = {scheme.stability_variable}; shaded: stability region of {scheme.name}; "
             "max amplification > 1 is the growth per step of the linearised scheme along the worst computed mode",
             "symmetry defect 0 means ∂F/∂Y is symmetric (paper §3: −KᵀDK for N = id)"]
    return Report("stability", f"Jacobian spectrum and stability ({scheme.name}, h = {h:.4g})",
                  ["step", "Jacobian", "spectral radius", "max Re λ", "fraction outside", "max amplification", "largest stable h",
                   "h used", "symmetry defect", "status"], rows, dict(scheme=scheme.name, h=h, steps=steps), plot, notes)
