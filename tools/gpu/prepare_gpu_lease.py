"""Get this checkout ready for a lent GPU machine, and print the command to run there.

    python tools/gpu/prepare_gpu_lease.py [--only PART ...] [--cap PART=MIN ...] [--budget-min 8.5]
                                           [--timeout-s 590] [--dry-run]

A lent machine reaches no network and starts bare, and its lease is short (15 minutes of device
time in all, at most 10 minutes a command), so everything it needs must travel with the working
tree and be checked here first:

1. **Fashion-MNIST** as its four IDX ``.gz`` files in ``data/fashion_mnist/`` (git-ignored). Where
   they are missing, they are copied from the Debian package ``dataset-fashion-mnist``
   (``/usr/share/datasets/fashion-mnist/``) if it is installed; otherwise the script says how to get
   them, and the campaign's ``trained_networks`` part will skip.
2. **Wheels** of the packages the GPU machine's Python lacks: torchode (with torchtyping and
   typeguard 2.x) for the adaptive benchmark's torchode rows, revlib for the reversible-gradient
   comparison. Downloaded into ``.whl/`` (git-ignored) with ``pip download --no-deps`` where missing;
   all are pure-Python wheels.
3. **What travels**: ``data``, ``.whl`` and ``runs`` (the studies' cached points, the logs and report trees of
   earlier leases) must stay under the tool's 64 MiB with the tracked tree; the tree must be
   committed, since the results are recorded against ``PDENET_COMMIT``.
4. ``--dry-run`` runs ``gpu_campaign.py --dry-run`` for the chosen parts (every part's script on the
   CPU at tiny sizes), so a broken part costs no device time.

It then prints the device command (within the tool's 2,000 characters) and its ``carry`` list.
The command installs the wheels, runs the campaign under ``timeout``, and packs
``benchmarks/results`` and ``runs`` into ``$OUT/results.tgz``: unpack that
here, commit the results, and keep ``runs/`` for the next lease.
"""

import argparse
import glob
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))

from gpu_campaign import check_parts, parse_caps  # noqa: E402  (this script's folder is on the path)

IDX_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
             "t10k-labels-idx1-ubyte.gz")
DEBIAN_FASHION = "/usr/share/datasets/fashion-mnist"
#: (wheel-name prefix, pip requirement) of what the GPU machine's Python lacks
WHEELS = (("torchode", "torchode"), ("torchtyping", "torchtyping"), ("typeguard", "typeguard<3"), ("revlib", "revlib"))
CARRY = ("data", ".whl", "runs")
CARRY_LIMIT_MIB = 64.0
COMMAND_LIMIT = 2000


def missing_idx(folder: str) -> list[str]:
    """The Fashion-MNIST files that ``folder`` lacks."""
    return [f for f in IDX_FILES if not os.path.isfile(os.path.join(folder, f))]


def missing_wheels(folder: str) -> list[str]:
    """The pip requirements in :data:`WHEELS` with no wheel in ``folder``."""
    return [req for prefix, req in WHEELS if not glob.glob(os.path.join(folder, f"{prefix}-*.whl"))]


def size_mib(path: str) -> float:
    """Bytes under ``path`` (a file or a folder; 0 where absent), in MiB."""
    if os.path.isfile(path):
        return os.path.getsize(path) / 2**20
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(path) for f in fs) / 2**20


def device_command(commit: str, budget_min: float, timeout_s: int, only=(), caps=()) -> str:
    """The shell command for the lent machine: install the carried wheels, run the campaign within
    ``timeout_s`` (the campaign itself within ``budget_min``), pack what it wrote into $OUT. Part
    names and caps are checked as the campaign checks them."""
    check_parts(list(only))
    parse_caps(list(caps))
    if budget_min * 60 > timeout_s - 20:
        raise SystemExit(f"--budget-min {budget_min:g} leaves the campaign no time to write its summary within "
                         f"--timeout-s {timeout_s}: keep budget-min below {(timeout_s - 20) / 60:.1f}")
    parts = (" --only " + " ".join(only) if only else "") + (" --cap " + " ".join(caps) if caps else "")
    cmd = (f"export PDENET_COMMIT={commit} PYTHONUNBUFFERED=1; "
           "python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl; "
           "export PYTHONPATH=$PWD:/tmp/site; "
           f"timeout {timeout_s - 10} python3 tools/gpu/gpu_campaign.py --budget-min {budget_min:g}{parts}; "
           "mkdir -p runs; tar czf $OUT/results.tgz benchmarks/results runs")
    if len(cmd) > COMMAND_LIMIT:
        raise SystemExit(f"the device command has {len(cmd)} characters, over the tool's {COMMAND_LIMIT}: "
                         "name fewer parts or caps")
    return cmd


def _git(*args: str) -> str:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", nargs="+", default=[], help="the campaign parts to run (default: all, in its order)")
    ap.add_argument("--cap", nargs="+", default=[], metavar="PART=MIN", help="at most MIN minutes for PART")
    ap.add_argument("--budget-min", type=float, default=8.5, help="the campaign's wall-clock minutes on the machine")
    ap.add_argument("--timeout-s", type=int, default=590, help="the device call's timeout_s (at most 600)")
    ap.add_argument("--dry-run", action="store_true", help="also run gpu_campaign.py --dry-run for those parts here")
    args = ap.parse_args()
    os.chdir(ROOT)
    problems = []

    data = os.path.join("data", "fashion_mnist")
    absent = missing_idx(data)
    if absent and os.path.isdir(DEBIAN_FASHION) and not missing_idx(DEBIAN_FASHION):
        os.makedirs(data, exist_ok=True)
        for f in absent:
            shutil.copy(os.path.join(DEBIAN_FASHION, f), os.path.join(data, f))
        print(f"copied {len(absent)} Fashion-MNIST files from {DEBIAN_FASHION} to {data}")
        absent = missing_idx(data)
    if absent:
        problems.append(f"Fashion-MNIST: {', '.join(absent)} missing in {data} (apt-get install dataset-fashion-mnist, "
                        "then run this again); the trained_networks part would skip")

    want = missing_wheels(".whl")
    for req in want:
        r = subprocess.run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", ".whl", req],
                           capture_output=True, text=True)
        print(f"pip download {req}: {'ok' if r.returncode == 0 else 'failed: ' + r.stderr.strip()[-200:]}")
    if missing_wheels(".whl"):
        problems.append(f"no wheel for {', '.join(missing_wheels('.whl'))} in .whl/: those rows of the benchmarks "
                        "would be left out")

    travel = {p: size_mib(p) for p in CARRY}
    tracked = sum(size_mib(f) for f in _git("ls-files").splitlines())
    total = tracked + sum(travel.values())
    print("travels: tracked tree {:.1f} MiB, ".format(tracked) + ", ".join(f"{p} {s:.1f} MiB" for p, s in travel.items())
          + f"; {total:.1f} of {CARRY_LIMIT_MIB:g} MiB")
    if total > CARRY_LIMIT_MIB:
        problems.append(f"{total:.1f} MiB would travel, over the tool's {CARRY_LIMIT_MIB:g} MiB")
    if _git("status", "--porcelain", "--untracked-files=no"):
        problems.append("the tree has uncommitted changes: commit them, or the results name a commit they were not "
                        "measured at")

    if args.dry_run:
        dry = [sys.executable, os.path.join("tools", "gpu", "gpu_campaign.py"), "--dry-run", "--jobs", "2"]
        dry += ["--only", *args.only] if args.only else []
        if subprocess.run(dry).returncode != 0:
            problems.append("gpu_campaign.py --dry-run failed for a part: mend it before spending device time")

    print("\ndevice command (timeout_s {}):\n{}\ncarry: {}".format(
        args.timeout_s, device_command(_git("rev-parse", "--short", "HEAD"), args.budget_min, args.timeout_s,
                                       args.only, args.cap), list(CARRY)))
    for p in problems:
        print(f"warning: {p}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
