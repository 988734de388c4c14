"""What a tableau's certificates cost on one core.

    python benchmarks/bench_tableau_order.py [--repeats 21] [--out PATH]

For a ladder of published tableaux up to Prince–Dormand 8(7) (13 stages, plus its FSAL stage),
the median time of (in one process, interleaved, torch and BLAS held to one thread):

* ``order``: :meth:`ButcherTableau.order` at ``max_order=8``, the 200 rooted trees with up to 8
  nodes, their elementary weights and the rounding spread of each (16 complex-step probes);
* ``embedded``: the same for the embedded weights b̂;
* ``stability``: the stability function and its real and imaginary intervals;
* ``summary``: every certificate at once (:meth:`ButcherTableau.summary`).

``order`` remembers its answer per tableau; each timed call starts with that memory cleared.

The ratio to ``order`` of RK4 is reported beside each time. Last, what building a scheme costs:
``get_scheme("rk4")`` (which checks the declared order against the tableau's) with the remembered
certificate and with it cleared.
"""

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core, before numpy's BLAS starts
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import torch  # noqa: E402

from pdenet_analysis.benchmarking import interleaved_medians, provenance, result_path, save  # noqa: E402
from pdenet_analysis.schemes import get_scheme, get_tableau  # noqa: E402
from pdenet_analysis.schemes import tableau as tableau_module  # noqa: E402

LADDER = ("rk4", "dopri5", "tsit5", "butcher6", "gauss6", "dopri8")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=21)
    ap.add_argument("--out", default=result_path("tableau-order", "cpu"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    cpu = torch.device("cpu")
    rows = []
    payload = dict(provenance=provenance(device=cpu), repeats=args.repeats, rows=rows)

    def certify(tab, what):
        def run():
            tableau_module._order.cache_clear()  # time the certificate, not the remembered answer
            if what == "order":
                return tab.order(max_order=8)
            if what == "embedded":
                return tab.embedded_order(max_order=8)
            if what == "stability":
                R = tab.stability_function()
                return R.real_interval(), R.imaginary_interval()
            return tab.summary(max_order=8)
        return run

    (base,) = interleaved_medians([certify(get_tableau("rk4"), "order")], args.repeats, cpu)
    for name in LADDER:
        tab = get_tableau(name)
        whats = ["order", "stability", "summary"] + (["embedded"] if tab.b_hat is not None else [])
        times = interleaved_medians([certify(tab, w) for w in whats], args.repeats, cpu)
        row = dict(tableau=name, stages=tab.stages, order=tab.order(), **{f"{w}_s": t for w, t in zip(whats, times)},
                   order_vs_rk4=times[0] / base)
        rows.append(row)
        print(f"{name:9s} {tab.stages:2d} stages, order {row['order']}: order certificate {1e3 * times[0]:7.1f} ms "
              f"({row['order_vs_rk4']:.1f}x RK4's), stability {1e3 * times[1]:7.1f} ms, all {1e3 * times[2]:7.1f} ms",
              flush=True)
        save(args.out, payload)

    def cold():
        tableau_module._order.cache_clear()
        return get_scheme("rk4")

    warm_s, cold_s = interleaved_medians([lambda: get_scheme("rk4"), cold], args.repeats, cpu)
    payload["get_scheme_rk4"] = dict(remembered_s=warm_s, certified_s=cold_s)
    print(f"get_scheme('rk4'): {1e3 * warm_s:.3f} ms with the certificate remembered, {1e3 * cold_s:.2f} ms certifying")
    save(args.out, payload)


if __name__ == "__main__":
    main()
