"""Every GPU measurement of the project, in one unattended command.

    python tools/gpu/gpu_campaign.py [--budget-min 12] [--data-root data] [--only PART ...]
                                      [--cap PART=MIN ...] [--compile ARCH ...]

Run it on any CUDA machine from the repository root. It checks the time it has, runs the
cheapest and most informative parts first, gives each part at most what is left, and rewrites
``benchmarks/results/gpu-campaign_<gpu>.json`` after every part — so a run cut short (or killed)
still leaves what it finished. Each benchmark's own JSON lands where its script writes it
(``benchmarks/results/<benchmark>_<gpu>.json``, the GPU's model such as ``h100`` or ``h200``),
with provenance: GPU name, driver, torch, CUDA, commit, date. The logs, the studies' points and
the report trees go to ``runs/gpu_campaign/`` (git-ignored; the lease carries it back).

Parts, in order (each with a generous least and most time; ``--cap PART=MIN`` shortens one):

1. ``training``: images/s of the four CIFAR-10 presets (synthetic CIFAR-sized tensors) against a
   plain PyTorch fp32 loop of the same network in the same process — ours in fp32, ours with
   bf16 autocast + channels-last, that under ``torch.compile`` for the presets named by
   ``--compile`` (default: all four), and each recorded as a CUDA graph — and the projected time of the paper's 100-epoch protocol (``bench_training.py``);
   then ``regulariser``: the regulariser's forward + backward and the box constraint, fused against
   per parameter, in kernels and time (``bench_regulariser.py``, a few seconds);
2. ``memory``: peak CUDA memory, saved bytes and time of forward + backward for Hamiltonian and
   leapfrog blocks at depth 4, 16, 64, 256 with backprop, reversible and the adjoint
   (``bench_memory.py``);
3. ``reversible_peers``: the reversible gradient against backprop, its expected cost and revlib on the
   identical computation, with the profiler's breakdown of the deepest blocks (device busy
   fraction, kernels, host syncs: ``bench_reversible_peers.py --profile``), and each of our methods
   recorded as a CUDA graph, the ratio a ``--cuda-graph`` training run pays; needs revlib — carry
   its wheel;
4. ``guards``: what the reversible and adjoint gradients' safety checks (replay guard, graph walk)
   cost per block call (``bench_guards.py``, half a minute);
5. ``tests``: the device-parametrised tests on CUDA (``pytest -k cuda``);
6. ``analysis``: the analysis benchmarks at CIFAR-10's and STL-10's first-unit sizes
   (``bench_analysis.py --stl10 --count-budget 20000``: on a GPU a product is cheap, so each
   ARPACK count may take five times the default's products, for complete counts at STL-10);
   ``analysis_stl10``: the STL-10 rows alone, the Hamiltonian block's count last (``--datasets
   stl10 --skip-dense``, into ``analysis-stl10_<gpu>.json``): for a lease whose ``analysis`` has
   already been run, so that its minutes go to the size not yet measured on a GPU;
7. ``analyze``: ``pdenet-analysis analyze cifar10-hamiltonian --all-blocks --examples 32`` on
   CUDA, the analysis issue's end-to-end case (its minutes are the measurement; the report lands
   in ``runs/gpu_campaign/analyze-cifar10-hamiltonian``);
8. ``adaptive``: dopri5 on torchdiffeq against torchode on the same field (``bench_adaptive.py``;
   torchode's rows only where the machine has torchode);
9. ``trained_networks``: the ``trained-networks`` study's full grid (``pdenet-analysis study
   trained-networks --device cuda``): the paper's protocol (100 epochs, best-validation weights)
   for the four architectures on Fashion-MNIST with the GPU settings (CUDA graph, bf16,
   channels-last), then every block analysed on 16 test images, from the IDX files in
   ``--data-root``/fashion_mnist (carry them: the machine has no network). Skipped, with the
   reason recorded, when the files are absent. The study caches each finished network in
   ``runs/gpu_campaign/trained-networks`` (carry that folder from one lease to the next);
10. ``study``: the discrete-vs-continuous study's quick grid on CUDA;
11. ``tests_full``: the whole test suite on the GPU machine.

Every script saves its JSON after each measurement, so a part stopped at its time keeps what it
finished.

``--dry-run`` runs every part's script on the CPU at its smallest sizes (the table ``DRY``: the
same scripts with ``--quick`` or tiny ``--depths``/``--batch``, the test parts only
collected), writing into ``--scratch`` and never into ``benchmarks/results``. It needs no GPU, takes
about a minute on 2 cores (``--jobs 2``: two parts at a time, as the test suite runs it), and runs
in the test suite, so that a part broken by a change is
found before lent GPU time is spent on it.

The package runs from this tree (``PYTHONPATH``), installed there or not; set ``PDENET_COMMIT``
where the tree has no ``.git``.

The parts' time estimates are deliberately generous; a part that would not fit is recorded as
skipped and the campaign goes on to the next one.
"""

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
RUNS = "runs/gpu_campaign"  # the parts' logs, checkpoints and report trees (git-ignored)

from pdenet_analysis.benchmarking import provenance, result_path  # noqa: E402

#: (name, minutes it needs at least, minutes it may take at most, command builder). The most a part
#: may take is also capped by what is left of the budget; ``--cap PART=MIN`` overrides it.
PY = sys.executable
PARTS = [
    ("training", 3, 8, lambda a: [PY, "benchmarks/bench_training.py", "--device", "cuda", "--steps", "20", "--fast",
                                  "--cuda-graph", "--compile", *a.compile]),
    ("regulariser", 0.5, 2, lambda a: [PY, "benchmarks/bench_regulariser.py", "--device", "cuda"]),
    ("memory", 2, 6, lambda a: [PY, "benchmarks/bench_memory.py", "--device", "cuda"]),
    ("reversible_peers", 1, 4, lambda a: [PY, "benchmarks/bench_reversible_peers.py", "--device", "cuda", "--profile"]),
    ("guards", 0.5, 2, lambda a: [PY, "benchmarks/bench_guards.py", "--device", "cuda"]),
    ("tests", 1, 4, lambda a: [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "cuda", "tests"]),
    ("analysis", 2, 12, lambda a: [PY, "benchmarks/bench_analysis.py", "--device", "cuda", "--stl10",
                                   "--count-budget", "20000"]),
    ("analysis_stl10", 3, 15, lambda a: [PY, "benchmarks/bench_analysis.py", "--device", "cuda", "--datasets", "stl10",
                                         "--skip-dense", "--count-budget", "20000"]),
    ("analyze", 2, 10, lambda a: [PY, "-m", "pdenet_analysis", "analyze", "cifar10-hamiltonian", "--all-blocks",
                                  "--examples", "32", "--device", "cuda", "--out",
                                  f"{RUNS}/analyze-cifar10-hamiltonian"]),
    ("adaptive", 1, 4, lambda a: [PY, "benchmarks/bench_adaptive.py", "--device", "cuda"]),
    ("trained_networks", 4, 30, lambda a: [PY, "-m", "pdenet_analysis", "study", "trained-networks", "--device", "cuda",
                                            "--data-root", a.data_root, "--out", f"{RUNS}/trained-networks"]),
    ("study", 5, 15, lambda a: [PY, "-m", "pdenet_analysis", "study", "discrete-vs-continuous", "--quick", "--device",
                                "cuda", "--out", f"{RUNS}/discrete-vs-continuous-quick"]),
    ("tests_full", 8, 20, lambda a: [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"]),
]

#: the dry run of each part (``--dry-run``): the same script on the CPU at the smallest sizes, writing
#: into the scratch folder ``a.scratch``, or why the part is left out of the dry run
DRY = {
    "training": lambda a: [PY, "benchmarks/bench_training.py", "--device", "cpu", "--steps", "1", "--batch", "4",
                           "--fast", "--out", os.path.join(a.scratch, "training.json")],
    "regulariser": lambda a: [PY, "benchmarks/bench_regulariser.py", "--device", "cpu", "--repeats", "1", "--archs",
                              "parabolic", "--out", os.path.join(a.scratch, "regulariser.json")],
    "memory": lambda a: [PY, "benchmarks/bench_memory.py", "--device", "cpu", "--depths", "2", "4", "--channels", "4",
                         "--size", "8", "--batch", "2", "--repeats", "1", "--out", os.path.join(a.scratch, "memory.json")],
    "reversible_peers": lambda a: [PY, "benchmarks/bench_reversible_peers.py", "--device", "cpu", "--quick",
                                   "--depths", "2", "4", "--repeats", "1", "--profile", "--recorded", "eager", "--out",
                                   os.path.join(a.scratch, "reversible_peers.json")],
    "guards": lambda a: [PY, "benchmarks/bench_guards.py", "--device", "cpu", "--repeats", "3", "--out",
                         os.path.join(a.scratch, "guards.json")],
    "tests": lambda a: [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only", "-k", "cuda", "tests"],
    "analysis": lambda a: [PY, "benchmarks/bench_analysis.py", "--device", "cpu", "--quick", "--count-budget", "20000",
                           "--out",
                           os.path.join(a.scratch, "analysis.json")],
    "analysis_stl10": lambda a: [PY, "benchmarks/bench_analysis.py", "--device", "cpu", "--quick", "--skip-dense",
                                 "--count-budget", "20000", "--out", os.path.join(a.scratch, "analysis_stl10.json")],
    "analyze": lambda a: [PY, "-m", "pdenet_analysis", "analyze", "digits-hamiltonian", "--all-blocks", "--examples", "1",
                          "--device", "cpu", "--quiet", "--out", os.path.join(a.scratch, "analyze")],
    "adaptive": lambda a: [PY, "benchmarks/bench_adaptive.py", "--device", "cpu", "--quick", "--repeats", "1", "--out",
                           os.path.join(a.scratch, "adaptive.json")],
    "trained_networks": lambda a: [PY, "-m", "pdenet_analysis", "study", "trained-networks", "--quick", "--quiet",
                                   "--out", os.path.join(a.scratch, "trained-networks")],
    "study": lambda a: "its --quick grid (36 points) takes about 18 minutes on 2 CPU cores; .ci/run runs it on the CPU",
    "tests_full": lambda a: [PY, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--collect-only", "tests"],
}


def parse_caps(items: list[str]) -> dict[str, float]:
    """``["training=2.5", ...]`` → ``{"training": 2.5}``; an unknown part or a bad number is refused."""
    names, caps = [p[0] for p in PARTS], {}
    for item in items:
        name, _, value = item.partition("=")
        try:
            minutes = float(value)
        except ValueError:
            minutes = -1.0
        if name not in names or minutes <= 0:
            raise SystemExit(f"gpu_campaign: --cap {item!r} must be PART=MINUTES with PART one of {names}")
        caps[name] = minutes
    return caps


def check_parts(names: list[str] | None) -> list[str] | None:
    """``--only``'s part names, each one of :data:`PARTS` (a misspelt part would otherwise run nothing
    and waste a lease)."""
    known = [p[0] for p in PARTS]
    unknown = [n for n in names or () if n not in known]
    if unknown:
        raise SystemExit(f"gpu_campaign: --only {' '.join(unknown)}: no such part; the parts are {known}")
    return names


def gpu_info() -> dict:
    import torch

    info = dict(cuda_available=torch.cuda.is_available(), cuda=torch.version.cuda)
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(name=p.name, memory_GiB=round(p.total_memory / 2**30, 1), count=torch.cuda.device_count())
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
        info["nvidia_smi"] = smi.stdout.strip()
    except (OSError, subprocess.SubprocessError) as e:
        info["nvidia_smi"] = f"unavailable: {e}"
    return info


def _tail(path: str, n: int = 15) -> list[str]:
    with open(path, errors="replace") as f:
        return [line.rstrip() for line in f.readlines()[-n:]]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget-min", type=float, default=12.0,
                    help="wall-clock minutes for the whole campaign (a lent GPU session has 15 minutes in all)")
    ap.add_argument("--data-root", default="data",
                    help="the folder holding fashion_mnist/ (its IDX .gz files) for the trained-networks study")
    ap.add_argument("--only", nargs="+", default=None, help=f"run only these parts: {[p[0] for p in PARTS]}")
    ap.add_argument("--cap", nargs="+", default=[], metavar="PART=MIN", help="at most MIN minutes for PART")
    ap.add_argument("--compile", nargs="*", default=["parabolic", "hamiltonian", "second_order", "resnet"],
                    help="presets whose training step is also measured under torch.compile (its compile time is long)")
    ap.add_argument("--dry-run", action="store_true",
                    help="run every part's script on the CPU at the smallest sizes, into --scratch (no GPU needed, "
                         "nothing under benchmarks/results is written): a broken part is found before GPU time is spent")
    ap.add_argument("--scratch", default=None, help="the dry run's folder (default: a new temporary one)")
    ap.add_argument("--jobs", type=int, default=1,
                    help="the dry run's parts run this many at a time (each is one process; the summary keeps "
                         "the parts' order)")
    args = ap.parse_args()
    caps = parse_caps(args.cap)
    check_parts(args.only)
    import torch

    os.chdir(ROOT)
    if args.dry_run:
        return dry_run(args)
    if not torch.cuda.is_available():
        print("gpu_campaign: no CUDA device here; nothing to measure (the CPU benchmarks run on their own; "
              "--dry-run tries every part on the CPU)", file=sys.stderr)
        return 2
    deadline = time.monotonic() + 60 * args.budget_min
    logs = os.path.join(RUNS, "logs")
    os.makedirs(logs, exist_ok=True)
    out = dict(provenance=provenance(device="cuda"), gpu=gpu_info(), budget_min=args.budget_min, parts=[])
    summary_path = result_path("gpu-campaign", "cuda")
    _write(out, summary_path)
    for name, need_min, max_min, cmd in PARTS:
        if args.only and name not in args.only:
            continue
        left = (deadline - time.monotonic()) / 60
        allowed = min(left, caps.get(name, max_min))
        entry = dict(part=name, command=" ".join(cmd(args)))
        fmnist = os.path.join(args.data_root, "fashion_mnist")
        if name == "trained_networks" and not os.path.isdir(fmnist):
            entry.update(status="skipped", why=f"no Fashion-MNIST files in {fmnist} (carry the IDX .gz files)")
        elif left < need_min:
            entry.update(status="skipped", why=f"{left:.1f} min left, the part needs at least {need_min}")
        else:
            run_part(entry, cmd(args), os.path.join(logs, f"{name}.log"), 60 * allowed)
        out["parts"].append(entry)
        _write(out, summary_path)
        print(f"gpu_campaign: {name}: {entry['status']}", flush=True)
    return 0


def dry_run(args) -> int:
    """Every part's script on the CPU at its smallest sizes (:data:`DRY`); 0 when every part that
    runs ends well, 1 otherwise. The summary and logs go to ``args.scratch``."""
    import tempfile

    args.scratch = os.path.abspath(args.scratch or tempfile.mkdtemp(prefix="gpu_campaign_dry_"))
    os.makedirs(args.scratch, exist_ok=True)
    out = dict(provenance=provenance(device="cpu"), dry_run=True, parts=[])
    summary_path = os.path.join(args.scratch, "gpu_campaign.json")
    entries = []
    for name, *_ in PARTS:
        if args.only and name not in args.only:
            continue
        dry = DRY[name](args)
        entry = dict(part=name)
        if isinstance(dry, str):
            entry.update(status="not run in the dry run", why=dry)
        else:
            entry["command"] = dry
        entries.append(entry)

    import threading
    from concurrent.futures import ThreadPoolExecutor

    lock, done = threading.Lock(), set()

    def run(entry):
        if "command" in entry:
            argv = entry["command"]
            entry["command"] = " ".join(argv)
            run_part(entry, argv, os.path.join(args.scratch, f"{entry['part']}.log"), 600,
                     threads=max(1, (os.cpu_count() or 1) // args.jobs) if args.jobs > 1 else None)
        with lock:  # the summary holds the finished parts in the campaign's order, kept if the dry run is stopped
            done.add(entry["part"])
            out["parts"] = [e for e in entries if e["part"] in done]
            _write(out, summary_path)
            print(f"gpu_campaign --dry-run: {entry['part']}: {entry['status']}", flush=True)

    with ThreadPoolExecutor(max(1, args.jobs)) as pool:  # threads that wait on child processes
        list(pool.map(run, entries))
    failed = [e["part"] for e in out["parts"] if "command" in e and e["status"] != "ok"]
    print(f"gpu_campaign --dry-run: {'failed: ' + ', '.join(failed) if failed else 'every part ran'}; "
          f"summary in {summary_path}", flush=True)
    return 1 if failed else 0


def run_part(entry: dict, argv: list[str], log: str, seconds: float, threads: int | None = None) -> None:
    """Run one part's command with its output in ``log``, at most ``seconds``; record how it ended.
    ``threads``: the part's CPU threads (parts run side by side must not oversubscribe the cores:
    OpenMP's waiting threads then spin, and two parts took 3× as long as one after the other)."""
    # the package runs from this tree whether or not it is installed there
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in (ROOT, os.environ.get("PYTHONPATH")) if p))
    if threads is not None:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    os.makedirs(os.path.dirname(log), exist_ok=True)
    t0 = time.monotonic()
    print(f"gpu_campaign: {entry['part']} (up to {seconds / 60:.1f} min): {' '.join(argv)}", flush=True)
    with open(log, "w") as f:
        try:
            rc = subprocess.run(argv, stdout=f, stderr=subprocess.STDOUT, env=env, timeout=max(seconds - 10, 30)).returncode
            entry["status"] = "ok" if rc == 0 else f"exit {rc}"
        except subprocess.TimeoutExpired:
            entry["status"] = "timed out (partial results in its log and JSON)"
    entry.update(minutes=(time.monotonic() - t0) / 60, log=os.path.relpath(log, ROOT), tail=_tail(log))


def _write(out: dict, path: str) -> None:
    with open(path + ".tmp", "w") as f:
        json.dump(out, f, indent=1)
    os.replace(path + ".tmp", path)


if __name__ == "__main__":
    sys.exit(main())
