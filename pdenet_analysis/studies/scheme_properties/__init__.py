"""Study ``scheme-properties``: property-testing a user's own schemes.

Four schemes a user might write, registered with :func:`~pdenet_analysis.schemes.register_scheme`
and run through :mod:`pdenet_analysis.testing`:

* ``ralston``: Ralston's second-order method, A = [[0, 0], [2/3, 0]], b = (1/4, 3/4) — correct;
* ``rk4_wrong_weight``: RK4 written by hand with b = (1/6, 1/6, 1/2, 1/6) instead of
  (1/6, 1/3, 1/3, 1/6). The weights still sum to 1, and even bᵀc = 1/2 and bᵀc² = 1/3 hold, but
  bᵀAc = 5/24 ≠ 1/6: the method is of order 2, not 4;
* ``verlet_inverse_sign``: Störmer–Verlet whose forward step is right but whose inverse step adds
  the last half kick instead of subtracting it — forward accuracy is untouched, reversal is not;
* ``midpoint_wrong_node``: the midpoint rule with its second stage evaluated at t instead of
  t + h/2 — exact on every autonomous problem, first order on time-dependent ones (θ(t) varies).

Checks: ``tableau`` (build the Butcher tableau with the declared order: the order conditions
are verified on construction; only for tableau schemes), ``order`` (:func:`check_order`: fitted
slopes on linear problems of every accepted kind and on a time-dependent one), ``inversion``
(:func:`check_inversion` on the linear Hamiltonian test problem and on a paper Hamiltonian
operator, every state component) and ``hypothesis`` (a Hypothesis property over random paper
operators from :func:`pdenet_analysis.testing.strategies.paper_operators`: forward then inverse
recovers the state, for reversible schemes; one step of size h agrees with RK4 at 12 sub-steps to
O(h^(p+1)) — the local error ratio for h and h/2 is at least 2^(p+1)·0.7 — for the others) and
``certificate`` (:func:`pdenet_analysis.testing.certify_scheme`, every check in one call).
"""

from __future__ import annotations

import time

import torch

from ...errors import InvalidArgumentError
from ...schemes import (ButcherTableau, ExplicitRungeKutta, Scheme, StormerVerlet, get_scheme, register_scheme,
                       stage_time, unregister_scheme)
from ..runner import Study, default_dtype

# ---------------------------------------------------------------------------------------------
# The user's schemes (the study's subject; its README.md walks through them)


def ralston() -> Scheme:
    return ExplicitRungeKutta(ButcherTableau.explicit([[2 / 3]], [1 / 4, 3 / 4]), order=2, name="ralston")


WRONG_RK4_WEIGHTS = (1 / 6, 1 / 6, 1 / 2, 1 / 6)


class WrongWeightRK4(Scheme):
    """RK4 by hand, with a wrong weight vector that still sums to one (declared order 4)."""

    name = "rk4_wrong_weight"
    order = 4
    kinds = frozenset({"first_order", "second_order", "hamiltonian"})

    def step(self, op, state, t, h):
        def add(y, k, a):
            return tuple(yi + a * ki for yi, ki in zip(y, k))

        k1 = op.vector_field(stage_time(t, 0.0, h), state)
        k2 = op.vector_field(stage_time(t, 0.5, h), add(state, k1, h / 2))
        k3 = op.vector_field(stage_time(t, 0.5, h), add(state, k2, h / 2))
        k4 = op.vector_field(stage_time(t, 1.0, h), add(state, k3, h))
        out = state
        for b, k in zip(WRONG_RK4_WEIGHTS, (k1, k2, k3, k4)):
            out = add(out, k, h * b)
        return out


def wrong_rk4_tableau() -> ButcherTableau:
    return ButcherTableau.explicit([[0.5], [0.0, 0.5], [0.0, 0.0, 1.0]], list(WRONG_RK4_WEIGHTS))


class VerletInverseSign(StormerVerlet):
    """Störmer–Verlet with a sign error in the last update of its inverse step."""

    name = "verlet_inverse_sign"

    def inverse_step(self, op, state, t, h):
        a, b = state
        b = torch.add(b, op.part_g(stage_time(t, 1.0, h), a), alpha=-0.5 * h)
        a = torch.add(a, op.part_f(stage_time(t, 0.5, h), b), alpha=-h)
        b = torch.add(b, op.part_g(stage_time(t, 0.0, h), a), alpha=+0.5 * h)  # should be −h/2
        return (a, b)


class MidpointWrongNode(Scheme):
    """The midpoint rule with its second stage at time t instead of t + h/2."""

    name = "midpoint_wrong_node"
    order = 2
    kinds = frozenset({"first_order", "second_order", "hamiltonian"})

    def step(self, op, state, t, h):
        k1 = op.vector_field(stage_time(t, 0.0, h), state)
        mid = tuple(y + (h / 2) * k for y, k in zip(state, k1))
        k2 = op.vector_field(stage_time(t, 0.0, h), mid)  # should be stage_time(t, 0.5, h)
        return tuple(y + h * k for y, k in zip(state, k2))


USER_SCHEMES = {"ralston": ralston, "rk4_wrong_weight": WrongWeightRK4, "verlet_inverse_sign": VerletInverseSign,
                "midpoint_wrong_node": MidpointWrongNode}
#: the tableau (and declared order) each tableau scheme would be built from. A wrong stage time
#: cannot be written as a tableau at all: c is derived from the rows of A.
TABLEAUX = {"ralston": (lambda: ButcherTableau.explicit([[2 / 3]], [1 / 4, 3 / 4]), 2),
            "rk4_wrong_weight": (wrong_rk4_tableau, 4)}
CHECKS = ("tableau", "order", "inversion", "hypothesis", "certificate")
DEFECT = {"ralston": "none (correct)", "rk4_wrong_weight": "wrong weight b (sums to 1)",
          "verlet_inverse_sign": "sign error in the inverse step", "midpoint_wrong_node": "wrong stage time c₂"}

# ---------------------------------------------------------------------------------------------
# The checks


def _check_tableau(name, scheme):
    if name not in TABLEAUX:
        return None
    make, order = TABLEAUX[name]
    tab = make()
    ExplicitRungeKutta(tab, order=order, name=name)  # raises when the order conditions fail
    return dict(stages=tab.stages, c=list(tab.c))


def _check_order(name, scheme):
    from ...testing import check_order

    return dict(observed=check_order(scheme))


def _check_inversion(name, scheme):
    from ...operators import hamiltonian
    from ...testing import check_inversion, linear_problem

    if not scheme.reversible:
        return None
    op, y0 = linear_problem("hamiltonian")
    errs = dict(linear=check_inversion(scheme, op, y0, n_steps=8, T=2.0))
    torch.manual_seed(0)
    ham = hamiltonian(4, T=1.0, n_pieces=2, activation="tanh", normalise=False).double()
    errs["paper_hamiltonian"] = check_inversion(scheme, ham, torch.randn(2, 4, 5, 5, dtype=torch.float64), n_steps=4)
    return dict(errors=errs)


def _check_certificate(name, scheme):
    from ...testing import certify_scheme

    cert = certify_scheme(scheme)  # raises AssertionError listing every failure
    return dict(observed=cert.observed_orders, tree_order=cert.tree_order, inversion_error=cert.inversion_error)


def _check_hypothesis(name, scheme, max_examples: int):
    from ...testing import inversion_property, local_error_property

    prop = (inversion_property(scheme, max_examples) if scheme.reversible
            else local_error_property(scheme, max_examples))
    prop()
    return dict(examples=max_examples)


def run(config: dict) -> dict:
    """One (scheme, check) pair: did the check catch a defect, with its message and time (float64)."""
    with default_dtype(torch.float64):
        return _run(config)


def _run(config: dict) -> dict:
    name, check = config["scheme"], config["check"]
    register_scheme(name, USER_SCHEMES[name], overwrite=True)
    try:
        scheme = get_scheme(name)  # through the registry, as the user's code and the strategies see it
        t0 = time.perf_counter()
        try:
            if check == "tableau":
                measured = _check_tableau(name, scheme)
            elif check == "order":
                measured = _check_order(name, scheme)
            elif check == "inversion":
                measured = _check_inversion(name, scheme)
            elif check == "hypothesis":
                measured = _check_hypothesis(name, scheme, config.get("max_examples", 30))
            elif check == "certificate":
                measured = _check_certificate(name, scheme)
            else:
                raise InvalidArgumentError(f"unknown check {check!r}; valid checks: {', '.join(CHECKS)}")
            caught, message = False, ""
        except (AssertionError, InvalidArgumentError) as e:
            measured, caught, message = None, True, str(e).splitlines()[0][:300]
        seconds = time.perf_counter() - t0
    finally:
        unregister_scheme(name)
    applicable = caught or measured is not None
    return dict(scheme=name, check=check, defect=DEFECT[name], applicable=applicable, caught=caught,
                message=message, measured=measured, seconds=seconds)


def grid(quick: bool) -> list[dict]:
    return [dict(scheme=s, check=c, max_examples=20 if quick else 60) for s in USER_SCHEMES for c in CHECKS]


def aggregate(points: list[dict], out: str, quick: bool) -> str:
    res = {(p["result"]["scheme"], p["result"]["check"]): p["result"] for p in points}
    lines = ["| scheme | defect | " + " | ".join(CHECKS) + " |", "|---|---|" + "---|" * len(CHECKS)]
    for s in USER_SCHEMES:
        cells = []
        for c in CHECKS:
            r = res.get((s, c))
            if r is None:
                cells.append("(failed)")
            elif not r["applicable"]:
                cells.append("n/a")
            else:
                cells.append(f"{'**caught**' if r['caught'] else 'passes'} ({r['seconds']:.2f} s)")
        lines.append(f"| {s} | {DEFECT[s]} | " + " | ".join(cells) + " |")
    lines += ["", "What each check said:", ""]
    for (s, c), r in sorted(res.items()):
        if r["caught"]:
            lines.append(f"- {s} · {c}: {r['message']}")
        elif r["applicable"] and c == "order":
            obs = ", ".join(f"{k} {v:.2f}" for k, v in r["measured"]["observed"].items())
            lines.append(f"- {s} · order passes: observed {obs}")
    return "\n".join(lines) + "\n"


STUDY = Study(
    name="scheme-properties",
    title="Property-testing your own schemes",
    question="Which of the library's property checks catches which defect in a user's scheme, and how fast?",
    # version 2: check_order fits its slopes at 32–512 steps (h·ρ ≤ 1/8), not 8–128
    # version 3: the tableau check certifies by rooted trees; the Hypothesis property is testing's;
    # the one-call certificate is a fifth check
    grid=grid, run=run, aggregate=aggregate, version=3,
)
