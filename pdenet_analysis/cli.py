"""The ``pdenet-analysis`` command.

    pdenet-analysis demo                 integrate the paper's three operators and print what happened
    pdenet-analysis schemes              list the schemes and their metadata
    pdenet-analysis presets              list the network presets and their weight counts
"""

from __future__ import annotations

import argparse
import sys
import time

import torch


def _cmd_schemes(args) -> int:
    from . import schemes

    print(f"{'name':20s} {'order':>5s}  {'kinds':40s} symplectic reversible adaptive")
    for n in schemes.available_schemes():
        s = schemes.get_scheme(n)
        print(f"{n:20s} {s.order:5d}  {','.join(sorted(s.kinds)):40s} {str(s.symplectic):10s} {str(s.reversible):10s} {s.adaptive}")
    return 0


def _cmd_presets(args) -> int:
    from .networks import available_presets, build_preset

    for n in available_presets():
        print(f"{n:28s} {build_preset(n).n_parameters():>10,d} weights")
    return 0


def _cmd_demo(args) -> int:
    """Integrate the paper's three operators with their own and with other schemes."""
    from . import integrate, reverse
    from .operators import hamiltonian, parabolic, second_order

    torch.manual_seed(args.seed)
    y0 = torch.randn(4, 16, 32, 32)
    rows = []
    for name, op, schemes in (
        ("parabolic", parabolic(16), ("euler", "rk4", "dopri5")),
        ("hamiltonian", hamiltonian(16), ("symplectic_euler", "verlet", "dopri5")),
        ("second_order", second_order(16), ("leapfrog", "leapfrog_symmetric", "dopri5")),
    ):
        with torch.no_grad():
            for sch in schemes:
                t0 = time.perf_counter()
                sol = integrate(op, y0, sch, rtol=1e-5, atol=1e-7) if sch == "dopri5" else integrate(op, y0, sch)
                dt = time.perf_counter() - t0
                rev = ""
                if sol.scheme.reversible:
                    back = op.from_state(reverse(op, sol), y0)
                    rev = f"{float((back - y0).abs().max()):.1e}"
                rows.append((name, sch, sol.stats.n_steps, sol.stats.n_evals,
                             float(sol.y.norm() / y0.norm()), rev, dt))
    print(f"{'operator':13s} {'scheme':20s} {'steps':>5s} {'evals':>6s} {'|Y_T|/|Y_0|':>11s} {'inverse err':>11s} {'time s':>7s}")
    for r in rows:
        print(f"{r[0]:13s} {r[1]:20s} {r[2]:5d} {r[3]:6.1f} {r[4]:11.4f} {r[5]:>11s} {r[6]:7.3f}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="pdenet-analysis", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    d = sub.add_parser("demo", help="integrate the paper's three operators and print the results")
    d.add_argument("--seed", type=int, default=0)
    d.set_defaults(func=_cmd_demo)
    sub.add_parser("schemes", help="list schemes and their metadata").set_defaults(func=_cmd_schemes)
    sub.add_parser("presets", help="list network presets and weight counts").set_defaults(func=_cmd_presets)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
