"""Training throughput (images/s) of the CIFAR-10-sized presets against a plain PyTorch loop of
the same network in float32, in the same process.

    python benchmarks/bench_training.py [--device cpu|cuda] [--steps 5] [--batch 125] [--fast] [--compile ARCH ...] [--cuda-graph]

"ours" is one SGD step of the library's trainer: forward through integrate(), cross-entropy plus
the paper's regulariser (eq. 13), backward, SGD with momentum, box constraint. As in the trainer,
the blocks' own NaN checks (a host read per block) run only where the trainer checks every batch
(``TrainConfig.checks_each_batch``: on the CPU, not on CUDA); each row records the host reads
of one step of every variant (``host_reads_per_step``). "plain" is the
same network and parameters written as a hand loop (no integrate, no regulariser, no box).
"ours (no reg)" drops the regulariser and box for a like-for-like integrator comparison.
The Data/Training issue's goal (100 CIFAR-10 epochs of 40,000 images within 10 minutes on an
H100) needs ≥ 6,700 images/s on that GPU; this script measures it where a GPU is present.
"""

import argparse
import time
import traceback

import torch
import torch.nn.functional as nnf

import pdenet_analysis as pa
from pdenet_analysis.operators import functional as F
from pdenet_analysis.testing import HostReads
from pdenet_analysis.training import TrainConfig, apply_box_constraint, regulariser
from pdenet_analysis.training.cuda_graph import CapturedStep, warm_step

from pdenet_analysis.benchmarking import interleaved_medians, provenance, result_path, save


def sym(layer, j, y):
    return F.symmetric_layer(y, layer.weight[j], layer.scale[j], layer.shift[j], torch.relu, layer.eps, True)


def plain_block(block, x):
    op, n, h = block.operator, block.n_steps, block.T / block.n_steps
    kind = op.kind
    if kind == "first_order" and hasattr(op.layer, "weight1"):
        L = op.layer
        for j in range(n):
            x = x + h * F.resnet_layer(x, L.weight1[j], L.weight2[j], L.scale[j], L.shift[j], torch.relu, L.eps, True)
        return x
    if kind == "first_order":
        for j in range(n):
            x = x + h * sym(op.layer, j, x)
        return x
    if kind == "hamiltonian":
        c = x.shape[1] // 2
        Y, Z = x[:, :c], x[:, c:]
        for j in range(n):
            Y = Y + h * sym(op.layer_y, j, Z)
            Z = Z - h * sym(op.layer_z, j, Y)
        return torch.cat([Y, Z], 1)
    y, y_old = x, x
    for j in range(n):
        y, y_old = 2 * y - y_old + h * h * sym(op.layer, j, y), y
    return y


def plain_forward(model, x):
    x = model.opening(x)
    for u in model.units:
        x = u.pool(u.connector(plain_block(u.block, x)))
    return model.classifier(x.flatten(1))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch", type=int, default=125)
    ap.add_argument("--out", default=None)
    ap.add_argument("--fast", action="store_true", help="also ours with bf16 autocast and channels-last (GPU settings)")
    ap.add_argument("--compile", nargs="*", default=[], metavar="ARCH",
                    help="also the bf16 channels-last step under torch.compile for these architectures "
                         "(parabolic, hamiltonian, second_order, resnet); compiling takes tens of seconds each")
    ap.add_argument("--archs", nargs="+", default=["parabolic", "hamiltonian", "second_order", "resnet"])
    ap.add_argument("--cuda-graph", action="store_true",
                    help="also the whole step recorded as a CUDA graph and replayed (CUDA only)")
    args = ap.parse_args()
    dev = torch.device(args.device)
    cfg = TrainConfig()
    if dev.type == "cuda":
        torch.backends.cudnn.benchmark = True
    rows = []
    for arch in args.archs:
        torch.manual_seed(0)
        model = pa.build_preset(f"cifar10-{arch}").to(dev)
        for blk in model.blocks:  # the trainer's setting (plain and compiled variants alike)
            blk.check_finite = cfg.checks_each_batch(dev)
        opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9,  # the trainer's optimiser
                              **({"fused": True} if dev.type == "cuda" else {}))
        x = torch.randn(args.batch, 3, 32, 32, device=dev)
        y = torch.randint(0, 10, (args.batch,), device=dev)

        x_cl = x.contiguous(memory_format=torch.channels_last)

        def step(fwd, reg, amp=False, xb=x, graph=False):
            with torch.autocast(dev.type, dtype=torch.bfloat16, enabled=amp, cache_enabled=not graph):
                loss = nnf.cross_entropy(fwd(xb).float(), y)
            if reg:
                loss = loss + regulariser(model, cfg)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if reg:
                apply_box_constraint(model, 1.0)

        fns = {"ours": lambda: step(model, True), "ours (no reg)": lambda: step(model, False),
               "plain": lambda: step(lambda z: plain_forward(model, z), False)}
        if args.fast:  # the trainer's GPU settings (TrainConfig(amp=True, channels_last=True))
            fns["ours (bf16, channels-last)"] = lambda: step(model, True, amp=True, xb=x_cl)
        compile_note, graph_errors = None, {}
        if arch in args.compile:  # TrainConfig(compile=True): the trainer compiles the network, not the loss
            compiled = torch.compile(model)
            try:
                t0 = time.perf_counter()
                step(compiled, True, amp=args.fast, xb=x_cl if args.fast else x)
                step(compiled, True, amp=args.fast, xb=x_cl if args.fast else x)
                compile_note = dict(compile_and_first_steps_s=time.perf_counter() - t0)
                fns["ours (compiled" + (", bf16, channels-last)" if args.fast else ")")] = (
                    lambda: step(compiled, True, amp=args.fast, xb=x_cl if args.fast else x))
            except Exception as e:  # noqa: BLE001 — recorded: a compile failure is a result here
                compile_note = dict(compile_error=f"{type(e).__name__}: {e}"[:400])
        if args.cuda_graph and dev.type == "cuda":  # TrainConfig(cuda_graph=True): the whole step, replayed
            variants = [("ours (CUDA graph)", model, False, x)]
            if args.fast:
                variants.append(("ours (bf16, channels-last, CUDA graph)", model, True, x_cl))
            if "compile_error" not in (compile_note or {}) and arch in args.compile:
                variants.append(("ours (compiled, bf16, channels-last, CUDA graph)" if args.fast else
                                 "ours (compiled, CUDA graph)", compiled, args.fast, x_cl if args.fast else x))
            for label, fwd, amp, xb in variants:
                def one(xg, yg, fwd=fwd, amp=amp):
                    step(fwd, True, amp=amp, xb=xg, graph=True)
                    return ()
                try:
                    for _ in range(3):
                        warm_step(one, xb, y)
                    captured = CapturedStep(one, xb, y)
                    fns[label] = lambda cs=captured, xb=xb: cs(xb, y)
                except Exception as e:  # noqa: BLE001 — recorded: a capture failure is a result here
                    traceback.print_exc()
                    graph_errors[label] = f"{type(e).__name__}: {e}"[:400]
        med = interleaved_medians(list(fns.values()), args.steps, dev, warmup=1)
        reads = {}
        for k, fn in fns.items():
            if "compiled" in k:  # a dispatch mode around a compiled function would recompile it
                continue
            with HostReads() as meter:
                fn()
            reads[k] = meter.count
        ips = {k: args.batch / m for k, m in zip(fns, med)}
        row = dict(model=f"cifar10-{arch}", **{f"{k} img/s": v for k, v in ips.items()},
                   ratio_ours_to_plain=ips["ours"] / ips["plain"], ratio_noreg_to_plain=ips["ours (no reg)"] / ips["plain"],
                   epoch_40k_s=40_000 / ips["ours"], protocol_100_epochs_min=100 * 40_000 / ips["ours"] / 60)
        if args.fast:
            fast = ips["ours (bf16, channels-last)"]
            row.update(ratio_fast_to_plain=fast / ips["plain"], protocol_100_epochs_min_fast=100 * 40_000 / fast / 60)
        for k in ips:
            if k.startswith("ours (compiled"):
                row.update(ratio_compiled_to_plain=ips[k] / ips["plain"],
                           protocol_100_epochs_min_compiled=100 * 40_000 / ips[k] / 60)
        row.update(host_reads_per_step=reads)
        if compile_note:
            row.update(compile_note)
        if graph_errors:
            row.update(cuda_graph_errors=graph_errors)
        best = max((k for k in ips if k != "plain"), key=ips.get)
        row.update(best=best, ratio_best_to_plain=ips[best] / ips["plain"],
                   protocol_100_epochs_min_best=100 * 40_000 / ips[best] / 60)
        rows.append(row)
        print({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}, flush=True)
        # saved after every preset: a run stopped at its time keeps what it finished
        save(args.out or result_path("training", dev),
             dict(provenance=provenance(), batch=args.batch, steps=args.steps, results=rows))


if __name__ == "__main__":
    main()
