"""Memory of forward + backward through deep reversible blocks: backprop, reversible, adjoint.

    python benchmarks/bench_memory.py [--device cpu|cuda] [--depths 4 16 64 256] [--channels 32] [--size 32]

The paper's claim (§3.2): a reversible network back-propagates with O(1) stored states in its
depth, because every earlier state is rebuilt by the exact inverse step. For a Hamiltonian block
(Verlet) and a second-order block (leapfrog) at depth n (n steps of h = 1, θ with one weight set per
step), one forward + backward pass is measured with

* ``backprop``: autograd stores every stage of every step;
* ``reversible``: only the final state (gradient rebuilt step by step, one evaluation per
  forward evaluation), and beside it the generic route that evaluates everything twice and
  ``Reversible(keep_last=1)``, which keeps the last step's graph (one step less rebuilt);
* ``adjoint``: torchdiffeq's adjoint with dopri5 (rtol = atol = 1e-3) over the same T.

Measured: the bytes autograd saves for backward during the forward pass (saved-tensor hooks,
every device — the quantity the claim is about; views of the weights are not counted, the
weights being held anyway), the peak CUDA memory above the inputs and weights
(CUDA only), the time, and the gradient's agreement with backprop. The memory ratio backprop /
reversible at depth 256 is the headline number.
"""

import argparse
import functools
import statistics
import time

import torch

import pdenet_analysis as pa
from pdenet_analysis.gradients import Reversible
from pdenet_analysis.networks import PDEBlock
from pdenet_analysis.schemes.base import Scheme
from pdenet_analysis.testing import SavedBytes

from pdenet_analysis.benchmarking import provenance, result_path, save


#: the reversible gradient's generic route (every evaluation twice), measured beside the scheme's own
GENERIC = "reversible (generic route)"
#: the reversible gradient with the last step's graph kept (memory of one step, one step less rebuilt)
KEEP1 = "reversible (keep_last=1)"
GRADIENTS = ("backprop", "reversible", KEEP1, GENERIC, "adjoint")


def deep_operator(arch: str, depth: int, channels: int, dev):
    """The Hamiltonian or second-order operator with one weight set per step over T = depth, its
    kernels scaled by 0.3: small weights keep deep blocks well inside the stability region."""
    torch.manual_seed(0)
    op = (pa.hamiltonian if arch == "hamiltonian" else pa.second_order)(channels, T=float(depth), n_pieces=depth)
    with torch.no_grad():
        for layer in op.layers():
            for w in layer.kernels():
                w.mul_(0.3)
    return op.to(dev)


def block(arch: str, depth: int, channels: int, dev, gradient: str):
    op = deep_operator(arch, depth, channels, dev)
    scheme = {"hamiltonian": "verlet", "second_order": "leapfrog"}[arch]
    if gradient == "adjoint":
        return PDEBlock(op, "dopri5", gradient="adjoint", rtol=1e-3, atol=1e-3)
    if gradient == GENERIC:  # the baseline: rebuild with inverse_step, then differentiate step again
        blk = PDEBlock(op, scheme, n_steps=depth, gradient="reversible")
        blk.scheme.step_back = functools.partial(Scheme.step_back, blk.scheme)
        return blk
    if gradient == KEEP1:
        return PDEBlock(op, scheme, n_steps=depth, gradient=Reversible(keep_last=1))
    return PDEBlock(op, scheme, n_steps=depth, gradient=gradient)


def measure(arch, depth, channels, size, dev, gradient, batch, repeats=3):
    """Saved bytes and peak memory of one forward + backward; its time as the median of
    ``repeats`` runs (the caller warms up first, so no run pays for start-up)."""
    blk = block(arch, depth, channels, dev, gradient)
    x = torch.randn(batch, channels, size, size, device=dev, requires_grad=True)
    times, saved_bytes, peak = [], None, None
    for _ in range(repeats):
        blk.zero_grad(set_to_none=True)
        x.grad = None
        if dev.type == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
        t0 = time.perf_counter()
        with SavedBytes(exclude=blk.parameters()) as saved:
            y = blk(x)
        (y * y).mean().backward()
        if dev.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        del y
        saved_bytes = saved.bytes
        if dev.type == "cuda":
            peak = torch.cuda.max_memory_allocated() - base
    grad = torch.cat([p.grad.flatten() for p in blk.operator.parameters()] + [x.grad.flatten()])
    return dict(arch=arch, depth=depth, gradient=gradient, saved_MiB=saved_bytes / 2**20,
                peak_MiB=None if peak is None else peak / 2**20, seconds=statistics.median(times), repeats=repeats,
                evals=blk.last_stats.n_evals if blk.last_stats else None), grad


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--depths", type=int, nargs="+", default=None)
    ap.add_argument("--channels", type=int, default=None)
    ap.add_argument("--size", type=int, default=None)
    ap.add_argument("--batch", type=int, default=None)
    ap.add_argument("--out", default=None)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per configuration (median reported)")
    args = ap.parse_args()
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    depths = args.depths or ([4, 16, 64, 256] if cuda else [4, 16, 64])
    channels, size = args.channels or (32 if cuda else 16), args.size or (32 if cuda else 16)
    batch = args.batch or (64 if cuda else 4)
    torch.set_default_dtype(torch.float32)
    rows = []
    out = args.out or result_path("memory", dev)
    for arch in ("hamiltonian", "second_order"):  # warm-up: CUDA start-up, cuDNN's algorithm search
        for gradient in GRADIENTS:
            measure(arch, min(depths), channels, size, dev, gradient, batch, repeats=1)
    for arch in ("hamiltonian", "second_order"):
        for depth in depths:
            ref = None
            for gradient in GRADIENTS:
                try:
                    row, grad = measure(arch, depth, channels, size, dev, gradient, batch, args.repeats)
                    if gradient == "backprop":
                        ref = grad
                    row["grad_rel_diff_vs_backprop"] = float((grad - ref).norm() / ref.norm()) if ref is not None else None
                except Exception as e:  # noqa: BLE001 — e.g. out of memory for backprop at depth 256
                    row = dict(arch=arch, depth=depth, gradient=gradient, error=f"{type(e).__name__}: {e}"[:300])
                rows.append(row)
                print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in row.items()}, flush=True)
                save(out, dict(provenance=provenance(), channels=channels, size=size, batch=batch, depths=depths,
                               results=rows, ratios=None))  # kept if the run is stopped
                if cuda:
                    torch.cuda.empty_cache()
    ratios = {}
    for arch in ("hamiltonian", "second_order"):
        d = max(depths)
        get = {r["gradient"]: r for r in rows if r["arch"] == arch and r["depth"] == d and "error" not in r}
        if "backprop" in get and "reversible" in get:
            ratios[f"{arch}_depth{d}_saved_backprop_over_reversible"] = get["backprop"]["saved_MiB"] / max(
                get["reversible"]["saved_MiB"], 1e-9)
            ratios[f"{arch}_depth{d}_time_reversible_over_backprop"] = get["reversible"]["seconds"] / get["backprop"]["seconds"]
            if KEEP1 in get:
                ratios[f"{arch}_depth{d}_time_keep_last1_over_backprop"] = get[KEEP1]["seconds"] / get["backprop"]["seconds"]
            if GENERIC in get:
                ratios[f"{arch}_depth{d}_time_generic_route_over_backprop"] = get[GENERIC]["seconds"] / get["backprop"]["seconds"]
    save(out,
         dict(provenance=provenance(), channels=channels, size=size, batch=batch, depths=depths, results=rows,
              ratios=ratios))
    print(ratios)


if __name__ == "__main__":
    main()
