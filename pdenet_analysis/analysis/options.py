"""The two option objects every analysis takes, each validated once, when it is built.

* :class:`Certification` — how sure an answer must be: the relative residual a Krylov triplet
  must reach to be called converged, the chance a probable bound may fail, and the seed of the
  random start vectors those bounds are drawn from.
* :class:`Budget` — how much work an analysis may spend before it answers with the bound it
  certifiably has: the sizes up to which dense and reduced (active-unit) matrices are formed,
  and the caps of the ARPACK counts of unstable step-map modes.

Both are frozen dataclasses: pass one object down instead of the same knobs through four levels.
The adaptive solvers' tolerances are not analysis options: they belong to the scheme
(``get_scheme("dopri5", rtol=1e-8)``), whose accepted steps are analysed.

    from pdenet_analysis.analysis import Budget, Certification
    rep = pa.analyze(op, y0, "verlet", certification=Certification(seed=3), budget=Budget(count_budget=20_000))
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace

from ..errors import InvalidArgumentError, require_probability, require_seed, require_tolerance

#: the most rows of the reduced step form formed dense (:mod:`.stepmap`): per counted example and
#: step, one dense eigen-decomposition (or LU, for forward Euler's inverse) of that size
REDUCED_DENSE_MAX = 8192
#: forward Euler's exact inverse step maps: the most active units factorised by a sparse LU
#: (:mod:`.reduced_inverse`)
REDUCED_SPARSE_MAX = 131_072
#: the most Jacobian-vector products one ARPACK count of the modes outside may take
COUNT_BUDGET = 4000
BACKENDS = ("auto", "arpack", "torch")


def _count(name: str, value, minimum: int, meaning: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise InvalidArgumentError(f"{name} is {meaning}, an integer ≥ {minimum}, got {value!r}")
    return value


@dataclass(frozen=True)
class Certification:
    """How sure an analysis's answers must be.

    ``tol``: the relative residual ‖J u − σ v‖/σ (or ‖J x − λ x‖/|λ|) below which a Krylov
    triplet is reported "converged"; ``failure_probability`` δ: per example (and step, for the
    norm bound of a step map) the chance that a probable bound fails, over the random start
    vectors, whatever the spectrum (the Lanczos polynomial bound,
    :func:`~.krylov.lanczos_polynomial_bound`); ``seed``: of those start vectors (another seed
    draws other ones; the same seed repeats the analysis bit for bit); ``inner_tol``: of the GMRES
    solves where a route inverts step maps iteratively."""

    tol: float = 1e-8
    failure_probability: float = 1e-6
    seed: int = 0
    #: GMRES's relative residual per inner solve of the inverse-iteration route (None:
    #: tol·10⁻²/n_steps, at least 10⁻¹⁴)
    inner_tol: float | None = None

    def __post_init__(self) -> None:
        require_tolerance("Certification.tol", self.tol)
        if self.inner_tol is not None:
            require_tolerance("Certification.inner_tol", self.inner_tol)
        require_probability("Certification.failure_probability", self.failure_probability)
        require_seed(self.seed, "Certification.seed")
        object.__setattr__(self, "tol", float(self.tol))
        object.__setattr__(self, "failure_probability", float(self.failure_probability))


@dataclass(frozen=True)
class Budget:
    """How much work an analysis may spend before it answers with a bound.

    * ``dense_max``: up to this many unknowns per example, Jacobians are formed dense and their
      eigenvalues or singular values taken exactly;
    * ``reduced_dense_max``, ``reduced_sparse_max``: the reduced step forms through the active
      hidden units (two-level schemes, forward Euler on first-order blocks) are formed dense up
      to ``reduced_dense_max`` rows, and forward Euler's exact inverse step maps factorised by a
      sparse LU up to ``reduced_sparse_max`` active units (0: never);
    * ``count_max``, ``count_budget``: an ARPACK count of the unstable step-map modes asks for at
      most ``count_max`` eigenvalues and ``count_budget`` Jacobian-vector products; a count that
      stops there is reported as the lower bound it is ("≥");
    * ``count_examples``: above ``dense_max``, how many examples per step get the complete count
      (those with the largest certified lower bound on the radius); None: every example;
    * ``max_iter``: Golub–Kahan iterations of a singular-value run;
    * ``backend``: the eigenvalue solver, "arpack" (CPU), "torch" (any device) or "auto".
    """

    dense_max: int = 2048
    reduced_dense_max: int = REDUCED_DENSE_MAX
    reduced_sparse_max: int = REDUCED_SPARSE_MAX
    count_max: int = 256
    count_budget: int = COUNT_BUDGET
    count_examples: int | None = None
    max_iter: int = 300
    backend: str = "auto"

    def __post_init__(self) -> None:
        _count("Budget.dense_max", self.dense_max, 0, "the most unknowns per example formed dense (0: never)")
        _count("Budget.reduced_dense_max", self.reduced_dense_max, 0, "the most rows of a reduced form formed dense")
        _count("Budget.reduced_sparse_max", self.reduced_sparse_max, 0,
               "the most active units of a sparse LU (0: no sparse LU)")
        _count("Budget.count_max", self.count_max, 1, "the most eigenvalues one ARPACK count asks for")
        _count("Budget.count_budget", self.count_budget, 1,
               "the most Jacobian-vector products one ARPACK count of the modes outside may take")
        if self.count_examples is not None:
            _count("Budget.count_examples", self.count_examples, 1,
                   "the examples per step counted completely (None: every example)")
        _count("Budget.max_iter", self.max_iter, 1, "the most Golub–Kahan iterations of a singular-value run")
        if self.backend not in BACKENDS:
            raise InvalidArgumentError(f"Budget.backend is the eigenvalue solver, one of {', '.join(BACKENDS)}; "
                                       f"got {self.backend!r}")

    def but(self, **changes) -> "Budget":
        """A copy with ``changes`` (validated like a new one)."""
        return replace(self, **changes)


def option_names(cls) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def require_options(certification, budget) -> tuple[Certification, Budget]:
    """``certification`` and ``budget`` as the option objects (None: the defaults); anything
    else is refused with the way to build one."""
    certification = Certification() if certification is None else certification
    budget = Budget() if budget is None else budget
    if not isinstance(certification, Certification):
        raise InvalidArgumentError(f"certification must be a Certification (e.g. Certification(tol=1e-8, seed=0)), "
                                   f"got {type(certification).__name__}")
    if not isinstance(budget, Budget):
        raise InvalidArgumentError(f"budget must be a Budget (e.g. Budget(count_budget=20000)), got "
                                   f"{type(budget).__name__}")
    return certification, budget


#: the analyses' former keyword arguments, and the option object each now belongs to
_LEGACY = {**{k: "certification" for k in ("tol", "failure_probability", "seed", "inner_tol")},
           **{k: "budget" for k in ("dense_max", "reduced_dense_max", "reduced_sparse_max", "count_max", "count_budget",
                                    "count_examples", "max_iter", "backend")}}


def legacy_options(function: str, legacy: dict, scheme, certification, budget):
    """(scheme, certification, budget) with the former keyword arguments of ``function`` folded in,
    each with a DeprecationWarning naming the option object it now belongs to: ``tol=1e-10``
    becomes ``certification=Certification(tol=1e-10)``, ``dense_max=0`` ``budget=Budget(dense_max=0)``,
    and the adaptive tolerances ``rtol``/``atol`` go to the scheme (``get_scheme("dopri5", rtol=...)``).
    A keyword that was never an option is refused."""
    if not legacy:
        return scheme, certification, budget
    import warnings

    from ..schemes import get_scheme

    unknown = sorted(k for k in legacy if k not in _LEGACY and k not in ("rtol", "atol"))
    if unknown:
        raise InvalidArgumentError(f"{function}() got unexpected keyword argument(s) {', '.join(unknown)}; the options "
                                   "are certification=Certification(tol, failure_probability, seed, inner_tol) and "
                                   "budget=Budget(dense_max, reduced_dense_max, reduced_sparse_max, count_max, "
                                   "count_budget, count_examples, max_iter, backend)")
    groups = {"certification": {}, "budget": {}}
    for k, v in legacy.items():
        if k in _LEGACY:
            groups[_LEGACY[k]][k] = v
    tolerances = {k: legacy[k] for k in ("rtol", "atol") if k in legacy}
    if tolerances:
        sch = get_scheme(scheme)
        if not sch.adaptive:
            raise InvalidArgumentError(f"{', '.join(tolerances)} set the error control of an adaptive scheme; "
                                       f"{sch.name!r} takes fixed steps (give n_steps instead)")
        if not isinstance(scheme, str):
            raise InvalidArgumentError(f"{', '.join(tolerances)} were given with a scheme object, which holds its own "
                                       f"tolerances ({sch!r}); give them to get_scheme instead")
        scheme = get_scheme(scheme, **tolerances)
    hint = ", ".join(f"{k}=..." for k in legacy)
    warnings.warn(f"{function}({hint}): these keywords are deprecated; pass "
                  + "; ".join(f"{obj}={cls}({', '.join(f'{k}=...' for k in ks)})"
                              for obj, cls, ks in (("certification", "Certification", groups["certification"]),
                                                   ("budget", "Budget", groups["budget"])) if ks)
                  + ("; " if any(groups.values()) and tolerances else "")
                  + (f"and give {', '.join(tolerances)} to the scheme: get_scheme(name, {', '.join(f'{k}=...' for k in tolerances)})"
                     if tolerances else ""),
                  DeprecationWarning, stacklevel=5)
    if groups["certification"]:
        certification = replace(certification or Certification(), **groups["certification"])
    if groups["budget"]:
        budget = replace(budget or Budget(), **groups["budget"])
    return scheme, certification, budget
