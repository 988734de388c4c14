"""Butcher tableaux of Runge–Kutta methods, explicit or implicit, with their certificates.

A tableau (A, b, c) defines the s-stage method

    k_i = f(t + c_i h, y + h Σ_j a_ij k_j),      y⁺ = y + h Σ_i b_i k_i,

explicit when A is strictly lower triangular (each stage uses only earlier ones). An embedded
pair carries a second weight vector b̂ whose solution ŷ⁺ = y + h Σ b̂_i k_i estimates the error.
Construction checks the shapes and that c = A1 (every stage consistent, which the order theory
of :mod:`.trees` assumes). What the tableau certifies is computed from its coefficients:

* :meth:`ButcherTableau.order`: the highest p for which Butcher's conditions Φ(τ) = 1/γ(τ) hold
  for every rooted tree with at most p nodes, each to a tolerance from the coefficients'
  rounding; :meth:`~ButcherTableau.order_conditions` lists every residual with its tree;
* :meth:`~ButcherTableau.stage_order`: the largest q with C(q): Σ_j a_ij c_j^{k−1} = c_i^k / k
  for k ≤ q, with B(q) (Hairer & Wanner, *Solving ODEs II*, §IV.5, the simplifying assumptions);
* :meth:`~ButcherTableau.is_symplectic`: Cooper's condition b_i a_ij + b_j a_ji = b_i b_j
  (Hairer, Lubich & Wanner, *Geometric Numerical Integration*, Thm. VI.4.3);
* :meth:`~ButcherTableau.is_symmetric`: the adjoint tableau (1bᵀ − A, b, 1 − c) equals the
  tableau up to a permutation of the stages (ibid., §V.2);
* :meth:`~ButcherTableau.stability_function`: R(z) = det(I − zA + z1bᵀ) / det(I − zA) on
  y' = λy, z = hλ (Hairer & Wanner II, §IV.3, Prop. 3.2), a polynomial of degree ≤ s for an
  explicit tableau, with its real and imaginary stability intervals.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from ..errors import InvalidArgumentError
from .stability_function import _EPS, StabilityFunction, det_coefficients
from .trees import Tree, density, nodes, notation, stage_weights, trees_up_to

class OrderCondition(NamedTuple):
    """One of Butcher's conditions: Φ(τ) = bᵀ g(τ) against 1/γ(τ) for the tree τ."""

    tree: Tree
    phi: float          # the elementary weight Φ(τ)
    expected: float     # 1/γ(τ)
    tolerance: float    # what the coefficients' rounding can account for

    @property
    def order(self) -> int:
        return nodes(self.tree)

    @property
    def notation(self) -> str:
        return notation(self.tree)

    @property
    def residual(self) -> float:
        return self.phi - self.expected

    @property
    def holds(self) -> bool:
        return abs(self.residual) <= self.tolerance


@dataclass(frozen=True)
class ButcherTableau:
    """A Runge–Kutta method's coefficients: ``a`` (s×s, any structure), weights ``b``, nodes
    ``c`` (= A1), an optional embedded weight vector ``b_hat`` and a ``name``."""

    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    c: tuple[float, ...]
    b_hat: tuple[float, ...] | None = None
    name: str = ""
    tol: float = field(default=1e-12, repr=False)  # the c = A1 check's tolerance

    def __post_init__(self) -> None:
        def floats(xs):
            return tuple(float(x) for x in xs)

        # tuples of floats whatever was passed (lists, numpy arrays): the tableau is a hashable value
        try:
            object.__setattr__(self, "a", tuple(floats(row) for row in self.a))
            object.__setattr__(self, "b", floats(self.b))
            object.__setattr__(self, "c", floats(self.c))
            if self.b_hat is not None:
                object.__setattr__(self, "b_hat", floats(self.b_hat))
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(f"tableau coefficients must be numbers (A as rows, b, c, b_hat as "
                                       f"sequences): {exc}") from exc
        s = len(self.b)
        if s == 0:
            raise InvalidArgumentError("a Butcher tableau needs at least one stage")
        if len(self.c) != s or len(self.a) != s or any(len(row) != s for row in self.a):
            raise InvalidArgumentError(f"tableau shapes disagree: A must be {s}×{s} and c of length {s}")
        if self.b_hat is not None and len(self.b_hat) != s:
            raise InvalidArgumentError(f"the embedded weights b_hat need {s} entries, got {len(self.b_hat)}")
        values = [x for row in self.a for x in row] + list(self.b) + list(self.c) + list(self.b_hat or ())
        if not all(math.isfinite(float(x)) for x in values):
            raise InvalidArgumentError("tableau coefficients must be finite numbers")
        A = self.matrix
        if not np.allclose(A.sum(axis=1), self.c, atol=self.tol, rtol=0):
            raise InvalidArgumentError(f"row sums of A {A.sum(axis=1).tolist()} must equal c {list(self.c)}: "
                                       "every stage must be consistent (build with ButcherTableau.from_rows to derive c)")

    # ------------------------------------------------------------------ construction
    @classmethod
    def explicit(cls, a_lower, b, b_hat=None, name: str = "") -> "ButcherTableau":
        """Build an explicit tableau from the rows below the diagonal (row i has i entries); c is
        derived as A1."""
        s = len(b)
        if len(a_lower) != s - 1:
            raise InvalidArgumentError(f"{s} stages need {s - 1} rows below the diagonal, got {len(a_lower)}")
        rows = [[0.0] * s]
        for i, row in enumerate(a_lower, start=1):
            if len(row) != i:
                raise InvalidArgumentError(f"row {i} of A below the diagonal must have {i} entries, got {len(row)}")
            rows.append([float(x) for x in row] + [0.0] * (s - i))
        return cls.from_rows(rows, b, b_hat=b_hat, name=name)

    @classmethod
    def from_rows(cls, a, b, b_hat=None, name: str = "") -> "ButcherTableau":
        """Build from the full s×s matrix A (explicit or implicit); c is derived as A1."""
        rows = tuple(tuple(float(x) for x in row) for row in a)
        c = tuple(float(sum(row)) for row in rows)
        return cls(rows, tuple(float(x) for x in b), c,
                   None if b_hat is None else tuple(float(x) for x in b_hat), name)

    # ------------------------------------------------------------------ structure
    @property
    def stages(self) -> int:
        return len(self.b)

    @property
    def matrix(self) -> np.ndarray:
        return np.array(self.a, dtype=float)

    @property
    def is_explicit(self) -> bool:
        """A strictly lower triangular: each stage from the earlier ones only."""
        return not np.any(np.triu(self.matrix) != 0)

    def is_stiffly_accurate(self) -> bool:
        """The last row of A equals b: the step's result is the last stage's value."""
        return bool(np.array_equal(self.matrix[-1], np.array(self.b)))

    def is_fsal(self) -> bool:
        """First same as last: the last stage is evaluated at the step's result (last row of A
        equal to b) and the first stage is y itself (first row zero), so the next step's first
        evaluation is this step's last."""
        return self.is_stiffly_accurate() and not np.any(self.matrix[0] != 0) and self.stages > 1

    def truncated(self) -> "ButcherTableau":
        """The same method without its trailing stages of weight zero in ``b`` (the FSAL stage of
        an explicit pair): one step's result does not depend on them. The embedded weights are
        dropped with them."""
        s = self.stages
        while s > 1 and self.b[s - 1] == 0.0 and not np.any(self.matrix[:s - 1, s - 1] != 0):
            s -= 1
        if s == self.stages:
            return self
        return ButcherTableau(tuple(row[:s] for row in self.a[:s]), self.b[:s], self.c[:s], None, self.name, self.tol)

    # ------------------------------------------------------------------ order
    def order_conditions(self, order: int, weights: str = "b", tol: float | None = None) -> list[OrderCondition]:
        """Butcher's condition of every rooted tree with at most ``order`` nodes, for the weights
        ``b`` or the embedded ``b_hat``. Each holds within ``tol`` if given, else within what the
        coefficients' rounding accounts for: 16 √(|τ| + s) ε S(τ) + 4 ε/γ(τ), where S(τ)² =
        Σ_k (x_k ∂Φ/∂x_k)² over the nonzero coefficients x_k, the spread of Φ(τ) when each
        coefficient carries an independent relative error of size ε (estimated from
        :data:`SENSITIVITY_PROBES` random directions by complex-step differentiation). A probable
        bound, not a worst case: a worst case adds the magnitudes |x_k ∂Φ/∂x_k| instead, and for
        the large, cancelling coefficients of a high-order pair (Prince–Dormand 8(7)) it is too
        loose to tell a perturbed coefficient from a rounded one."""
        order = _positive_int("order", order)
        w = self._weights(weights)
        A = self.matrix
        gs, g_abs = stage_weights(A, order), stage_weights(np.abs(A), order)
        spread = _rounding_spread(A, w, order) if tol is None else {}
        out = []
        for tree in trees_up_to(order):
            phi, expected, n = float(w @ gs[tree]), 1.0 / density(tree), nodes(tree)
            # S(τ) ≤ Σ_k |x_k ∂Φ/∂x_k| = |τ| Φ_abs (Φ is homogeneous of degree |τ|): the estimate is capped there
            bound = tol if tol is not None else _tolerance(
                n, self.stages, min(spread[tree], n * float(np.abs(w) @ g_abs[tree])), expected)
            out.append(OrderCondition(tree, phi, expected, bound))
        return out

    def order(self, max_order: int = 8, weights: str = "b", tol: float | None = None) -> int:
        """The highest p ≤ ``max_order`` for which every condition with at most p nodes holds
        (0 when even Σ b_i = 1 fails). A residual beyond the largest tolerance the rounding
        spread can give (S(τ) ≤ |τ| Φ_abs(τ), Φ_abs the elementary weight of |A| and |b|) fails
        without the spread, so the spreads are estimated only below the first such order. The
        answer is remembered per tableau (a frozen value): a scheme checks its order whenever it
        is built."""
        return _order(self, _positive_int("max_order", max_order), weights, tol)

    def _order(self, max_order: int, weights: str, tol: float | None) -> int:
        w, A = self._weights(weights), self.matrix
        gs, g_abs = stage_weights(A, max_order), stage_weights(np.abs(A), max_order)
        limit = max_order
        for tree in trees_up_to(max_order):
            n = nodes(tree)
            widest = tol if tol is not None else _tolerance(n, self.stages, n * float(np.abs(w) @ g_abs[tree]),
                                                            1.0 / density(tree))
            if abs(float(w @ gs[tree]) - 1.0 / density(tree)) > widest:
                limit = n - 1
                break
        if limit == 0:
            return 0
        conditions = self.order_conditions(limit, weights, tol)
        for p in range(1, limit + 1):
            if not all(c.holds for c in conditions if c.order == p):
                return p - 1
        return limit

    def missing_condition(self, order: int, weights: str = "b") -> OrderCondition | None:
        """The first condition with at most ``order`` nodes that fails, or None when the order is
        certified: what a refusal of a declared order names."""
        if self.order(order, weights) >= order:
            return None
        return next(c for c in self.order_conditions(order, weights) if not c.holds)

    def embedded_order(self, max_order: int = 8, tol: float | None = None) -> int | None:
        """The order of the embedded solution (``b_hat``); None without one."""
        return None if self.b_hat is None else self.order(max_order, "b_hat", tol)

    def order_conditions_satisfied(self, order: int, tol: float | None = None) -> bool:
        """Whether every condition up to ``order`` holds (:meth:`order_conditions`)."""
        return all(c.holds for c in self.order_conditions(order, tol=tol))

    def stage_order(self, tol: float | None = None) -> int:
        """The largest q with B(q) and C(q) (Hairer & Wanner II, §IV.5): Σ_i b_i c_i^{k−1} = 1/k and
        Σ_j a_ij c_j^{k−1} = c_i^k / k for every stage and every k ≤ q (C(1) is c = A1, checked
        at construction); 0 when Σ b_i ≠ 1."""
        A, b, c = self.matrix, np.array(self.b), np.array(self.c)
        q = 0
        while q < 2 * self.stages:
            k = q + 1
            lhs = np.append(A @ c ** (k - 1), b @ c ** (k - 1))
            rhs = np.append(c**k / k, 1 / k)
            scale = np.append(np.abs(A) @ np.abs(c) ** (k - 1), np.abs(b) @ np.abs(c) ** (k - 1))
            bound = tol if tol is not None else 16 * (k + self.stages) * _EPS * np.maximum(scale, 1.0)
            if np.any(np.abs(lhs - rhs) > bound):
                break
            q = k
        return q

    # ------------------------------------------------------------------ geometry
    def is_symplectic(self, tol: float | None = None) -> bool:
        """Cooper's condition b_i a_ij + b_j a_ji − b_i b_j = 0 for all i, j."""
        A, b = self.matrix, np.array(self.b)
        M = b[:, None] * A + (b[:, None] * A).T - np.outer(b, b)
        scale = np.abs(b)[:, None] * np.abs(A) + (np.abs(b)[:, None] * np.abs(A)).T + np.abs(np.outer(b, b))
        return bool(np.all(np.abs(M) <= (tol if tol is not None else 16 * _EPS * np.maximum(scale, 1e-300))))

    def is_symmetric(self, tol: float | None = None) -> bool:
        """The tableau equals its adjoint (1bᵀ − A, b, 1 − c) after some permutation σ of the
        stages: a_{σ(i)σ(j)} = b_j − a_ij and b_{σ(i)} = b_i. The permutation is searched stage by
        stage among those with c_{σ(i)} = 1 − c_i and b_{σ(i)} = b_i, each choice checked against
        the stages placed before it. An explicit tableau is never symmetric: its R is a
        polynomial, and R(z)R(−z) = 1 only holds for a constant."""
        if self.is_explicit:
            return False
        A, b, c = self.matrix, np.array(self.b), np.array(self.c)
        adjoint = b[None, :] - A
        bound = tol if tol is not None else 64 * _EPS * (1 + np.abs(A).max() + np.abs(b).max())
        s = self.stages
        options = [[j for j in range(s) if abs(c[j] - (1 - c[i])) <= bound and abs(b[j] - b[i]) <= bound]
                   for i in range(s)]
        sigma: list[int] = []

        def place(i: int) -> bool:
            if i == s:
                return True
            for j in options[i]:
                if j in sigma or abs(A[j, j] - adjoint[i, i]) > bound:
                    continue
                if all(abs(A[j, sigma[k]] - adjoint[i, k]) <= bound and abs(A[sigma[k], j] - adjoint[k, i]) <= bound
                       for k in range(i)):
                    sigma.append(j)
                    if place(i + 1):
                        return True
                    sigma.pop()
            return False

        return place(0)

    # ------------------------------------------------------------------ linear stability
    def stability_function(self) -> StabilityFunction:
        """R(z) = det(I − z(A − 1bᵀ)) / det(I − zA), both determinants' coefficients by the
        Faddeev–LeVerrier recursion; for an explicit tableau the denominator is 1 and the
        numerator is computed as 1 + Σ_k (bᵀ A^{k−1} 1) z^k, exact in the coefficients."""
        if self.is_explicit:
            return StabilityFunction(self.stability_polynomial(), np.array([1.0]))
        A, b = self.matrix, np.array(self.b)
        return StabilityFunction(det_coefficients(A - np.outer(np.ones(self.stages), b)), det_coefficients(A))

    def stability_polynomial(self) -> np.ndarray:
        """Coefficients [1, r_1, …, r_s] of the explicit tableau's R(z) = Σ r_k z^k."""
        if not self.is_explicit:
            raise InvalidArgumentError(f"tableau {self.name or ''} is implicit: its stability function is rational; "
                                       "call stability_function()")
        A, b = self.matrix, np.array(self.b)
        coeffs, v = [1.0], np.ones(self.stages)
        for _ in range(self.stages):
            coeffs.append(float(b @ v))
            v = A @ v
        return np.array(coeffs)

    # ------------------------------------------------------------------ helpers
    def _weights(self, weights: str) -> np.ndarray:
        if weights == "b":
            return np.array(self.b)
        if weights == "b_hat":
            if self.b_hat is None:
                raise InvalidArgumentError(f"tableau {self.name!r} has no embedded weights b_hat")
            return np.array(self.b_hat)
        raise InvalidArgumentError(f"weights must be 'b' or 'b_hat', got {weights!r}")

    def summary(self, max_order: int = 8) -> dict:
        """Every certified property as plain values (for reports and JSON)."""
        R = self.stability_function()
        return dict(name=self.name, stages=self.stages, explicit=self.is_explicit, order=self.order(max_order),
                    embedded_order=self.embedded_order(max_order), stage_order=self.stage_order(),
                    symplectic=self.is_symplectic(), symmetric=self.is_symmetric(), fsal=self.is_fsal(),
                    real_stability_interval=R.real_interval(), imaginary_stability_interval=R.imaginary_interval(),
                    a_stable=R.is_a_stable())

    def to_markdown(self, digits: int = 6) -> str:
        """The Butcher array (c | A over b, and b̂) and the certificates, as Markdown."""
        def num(x):
            return f"{x:.{digits}g}"

        s = self.stages
        lines = [f"### {self.name or 'tableau'}", "", "| c | " + " | ".join(f"a·{j + 1}" for j in range(s)) + " |",
                 "|---|" + "---|" * s]
        lines += [f"| {num(ci)} | " + " | ".join(num(x) for x in row) + " |" for ci, row in zip(self.c, self.a)]
        lines.append("| **b** | " + " | ".join(num(x) for x in self.b) + " |")
        if self.b_hat is not None:
            lines.append("| **b̂** | " + " | ".join(num(x) for x in self.b_hat) + " |")
        cert = self.summary()

        lines += ["", "| property | value |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in (
            ("order (rooted trees)", cert["order"]), ("embedded order", "—" if cert["embedded_order"] is None
                                                      else cert["embedded_order"]),
            ("stage order", cert["stage_order"]), ("explicit", cert["explicit"]), ("symplectic", cert["symplectic"]),
            ("symmetric", cert["symmetric"]), ("FSAL", cert["fsal"]),
            ("real stability interval", interval_text(cert["real_stability_interval"])),
            ("imaginary stability interval", interval_text(cert["imaginary_stability_interval"])),
            ("A-stable", cert["a_stable"]))]
        return "\n".join(lines)


def interval_text(x: float) -> str:
    """A stability interval as it is printed: four digits, or ∞."""
    return "∞" if x == math.inf else f"{x:.4g}"


def _tolerance(nodes: int, stages: int, spread: float, expected: float) -> float:
    """What rounding accounts for in one condition: 16 √(|τ| + s) ε S(τ) + 4 ε/γ(τ)."""
    return 16 * math.sqrt(nodes + stages) * _EPS * spread + 4 * _EPS * expected


@functools.lru_cache(maxsize=4096)
def _order(tableau: ButcherTableau, max_order: int, weights: str, tol: float | None) -> int:
    return tableau._order(max_order, weights, tol)


#: random directions for the rounding spread S(τ) of :meth:`ButcherTableau.order_conditions`
SENSITIVITY_PROBES = 16


def _rounding_spread(A: np.ndarray, w: np.ndarray, order: int) -> dict:
    """S(τ) = (E[(D_v Φ(τ))²])^½ for v_k = x_k ξ_k, ξ_k ~ N(0, 1) (a fixed seed: the same tableau
    always gets the same tolerances), each directional derivative by one complex-step evaluation
    Im Φ(x + i t v)/t, exact for the polynomial Φ."""
    rng = np.random.default_rng(0)
    t = 1e-30
    total: dict = {}
    for _ in range(SENSITIVITY_PROBES):
        Ac = A + 1j * t * A * rng.standard_normal(A.shape)
        wc = w + 1j * t * w * rng.standard_normal(w.shape)
        for tree, g in stage_weights(Ac, order).items():
            total[tree] = total.get(tree, 0.0) + (float((wc @ g).imag) / t) ** 2
    return {tree: math.sqrt(v / SENSITIVITY_PROBES) for tree, v in total.items()}


def _positive_int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise InvalidArgumentError(f"{name} must be a positive integer, got {value!r}")
    return int(value)
