"""Butcher tableaux of explicit Runge–Kutta methods, validated when built.

A tableau (A, b, c) defines the s-stage method
    k_i = f(t + c_i h, y + h Σ_{j<i} a_ij k_j),      y⁺ = y + h Σ_i b_i k_i.
Construction checks: A is s×s and strictly lower triangular (explicit), the row sums of A equal
c (so every stage is consistent), and Σ b_i = 1 (order ≥ 1). The stability function on
y' = λy, z = hλ, is the polynomial R(z) = 1 + Σ_{k≥1} (bᵀ A^{k−1} 1) z^k.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import InvalidArgumentError


@dataclass(frozen=True)
class ButcherTableau:
    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    c: tuple[float, ...]
    tol: float = field(default=1e-12, repr=False)

    def __post_init__(self) -> None:
        s = len(self.b)
        if s == 0:
            raise InvalidArgumentError("a Butcher tableau needs at least one stage")
        if len(self.c) != s or len(self.a) != s or any(len(row) != s for row in self.a):
            raise InvalidArgumentError(f"tableau shapes disagree: A must be {s}×{s} and c of length {s}")
        A = self.matrix
        if np.any(np.triu(A) != 0):
            raise InvalidArgumentError("A must be strictly lower triangular for an explicit method")
        if not np.allclose(A.sum(axis=1), self.c, atol=self.tol, rtol=0):
            raise InvalidArgumentError(f"row sums of A {A.sum(axis=1).tolist()} must equal c {list(self.c)}")
        if abs(sum(self.b) - 1.0) > self.tol:
            raise InvalidArgumentError(f"weights b must sum to 1, got {sum(self.b)!r}")

    @classmethod
    def explicit(cls, a_lower: list[list[float]], b: list[float]) -> "ButcherTableau":
        """Build from the rows below the diagonal (row i has i entries); c is derived."""
        s = len(b)
        if len(a_lower) != s - 1:
            raise InvalidArgumentError(f"{s} stages need {s - 1} rows below the diagonal, got {len(a_lower)}")
        rows = [tuple([0.0] * s)]
        for i, row in enumerate(a_lower, start=1):
            if len(row) != i:
                raise InvalidArgumentError(f"row {i} of A below the diagonal must have {i} entries, got {len(row)}")
            rows.append(tuple(float(x) for x in row) + (0.0,) * (s - i))
        c = tuple(float(sum(r)) for r in rows)
        return cls(tuple(rows), tuple(float(x) for x in b), c)

    @property
    def stages(self) -> int:
        return len(self.b)

    @property
    def matrix(self) -> np.ndarray:
        return np.array(self.a, dtype=float)

    def stability_polynomial(self) -> np.ndarray:
        """Coefficients [1, r_1, ..., r_s] of R(z) = Σ r_k z^k."""
        A, b = self.matrix, np.array(self.b)
        coeffs, v = [1.0], np.ones(self.stages)
        for _ in range(self.stages):
            coeffs.append(float(b @ v))
            v = A @ v
        return np.array(coeffs)

    def order_conditions_satisfied(self, order: int, tol: float = 1e-12) -> bool:
        """Check the classical order conditions up to order 4 (enough for the methods here)."""
        A, b, c = self.matrix, np.array(self.b), np.array(self.c)
        conds = [(b.sum(), 1.0)]
        if order >= 2:
            conds.append((b @ c, 1 / 2))
        if order >= 3:
            conds += [(b @ c**2, 1 / 3), (b @ A @ c, 1 / 6)]
        if order >= 4:
            conds += [(b @ c**3, 1 / 4), (b @ (c * (A @ c)), 1 / 8), (b @ A @ c**2, 1 / 12), (b @ A @ A @ c, 1 / 24)]
        return all(abs(v - e) < tol for v, e in conds)
