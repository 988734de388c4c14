"""The study runner: a declared grid of configurations, one pure function per point, a cache.

A :class:`Study` is

* ``grid(quick) -> list[dict]``: the configurations (JSON values only); ``quick`` is the small
  grid that runs on digits in minutes on 2 CPU cores;
* ``run(config) -> dict``: one point, JSON-serialisable, seeded and deterministic, a module-level
  function (so that local processes and cluster engines can pickle it);
* ``aggregate(points, out, quick) -> str``: tables and PNG figures from the finished points, and
  the Markdown body of the study's page.

:func:`run_study` adds the device to every configuration, keys each point by the SHA-256 of its
canonical JSON (with the study's name and version), and writes one file per point,
``<out>/points/<key>.json``, atomically and with a checksum of its content. A re-run skips the
finished points, so a killed sweep resumes where it stopped; a file whose checksum or
configuration does not match is reported and re-run; a point whose ``run`` raised is recorded with
its error (and traceback) and the sweep goes on (``retry_failed`` runs those again). Points run in
this process (``jobs=1``), in local processes (``jobs>1``, spawned, each with
``cpu_count // jobs`` torch threads), or as a submitit job array (``executor="slurm"``, or
``"submitit-local"`` to try the same path on this machine) — ``run`` is the same function in all
three.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import InvalidArgumentError, PDENetError
from ..progress import Progress
from ..provenance import provenance

EXECUTORS = ("local", "submitit-local", "slurm")


@dataclass(frozen=True)
class Study:
    name: str
    title: str
    #: the question the study answers, in one sentence (shown by ``study --list`` and on its page)
    question: str
    grid: Callable[[bool], list[dict]]
    run: Callable[[dict], dict]
    aggregate: Callable[[list[dict], str, bool], str]
    #: bump when ``run`` changes what it computes, so that cached points are not reused
    version: int = 1


@contextlib.contextmanager
def default_dtype(dtype):
    """Run a point under torch's default ``dtype`` and restore the caller's afterwards (a point
    must not depend on, or change, the process it runs in)."""
    import torch

    before = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


def canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=True)


def point_key(study: Study, config: dict) -> str:
    """16 hex digits of the SHA-256 of the study's name, version and the configuration."""
    return hashlib.sha256(canonical([study.name, study.version, config]).encode()).hexdigest()[:16]


def _checksum(record: dict) -> str:
    body = {k: record[k] for k in ("study", "version", "key", "config", "status", "result", "error")}
    return hashlib.sha256(canonical(body).encode()).hexdigest()


def _write_atomic(path: str, text: str) -> None:
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def run_point(run: Callable[[dict], dict], name: str, version: int, key: str, config: dict, points_dir: str) -> dict:
    """Run one point, record it (result or error) in ``points_dir/key.json`` and return the record.

    Module-level so that a process pool or submitit can call it; ``run`` travels by reference."""
    t0 = time.perf_counter()
    try:
        result, status, error, tb = run(dict(config)), "ok", None, None
        json.dumps(result, allow_nan=True)  # a result that cannot be stored is a failure of the point
    except Exception as e:  # noqa: BLE001 — a failed point is recorded and the sweep goes on
        result, status, error, tb = None, "failed", f"{type(e).__name__}: {e}", traceback.format_exc()
    record = dict(study=name, version=version, key=key, config=config, status=status, result=result, error=error,
                  traceback=tb, seconds=time.perf_counter() - t0,
                  provenance=provenance(device=config.get("device")))
    record["checksum"] = _checksum(record)
    os.makedirs(points_dir, exist_ok=True)
    _write_atomic(os.path.join(points_dir, f"{key}.json"), json.dumps(record, indent=1, allow_nan=True))
    return record


def load_point(path: str, study: Study, key: str, config: dict) -> tuple[dict | None, str | None]:
    """(record, None) for a valid cached point, (None, why) for a corrupt or foreign one, (None, None) if absent."""
    if not os.path.exists(path):
        return None, None
    try:
        with open(path) as f:
            rec = json.load(f)
        if rec.get("checksum") != _checksum(rec):
            return None, "checksum mismatch"
    except (OSError, ValueError, KeyError, TypeError) as e:
        return None, f"unreadable ({type(e).__name__})"
    if rec["key"] != key or rec["config"] != config or rec["study"] != study.name or rec["version"] != study.version:
        return None, "holds another configuration"
    return rec, None


def _init_worker(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _run_local(pending, study, points_dir, jobs, progress):
    if jobs == 1:
        for key, cfg in pending:
            rec = run_point(study.run, study.name, study.version, key, cfg, points_dir)
            progress(1, label=f"{key} {rec['status']}")
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed

    threads = max(1, (os.cpu_count() or 1) // jobs)
    with ProcessPoolExecutor(jobs, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                             initargs=(threads,)) as pool:
        futs = [pool.submit(run_point, study.run, study.name, study.version, key, cfg, points_dir)
                for key, cfg in pending]
        for fut in as_completed(futs):
            rec = fut.result()
            progress(1, label=f"{rec['key']} {rec['status']}")


def _run_submitit(pending, study, points_dir, executor, progress, slurm_args):
    try:
        import submitit
    except ImportError as e:
        raise InvalidArgumentError(f"--executor {executor} needs submitit: pip install 'pdenet_analysis[cluster]'") from e
    folder = os.path.join(os.path.dirname(points_dir), "submitit")
    ex = submitit.LocalExecutor(folder=folder) if executor == "submitit-local" else submitit.AutoExecutor(folder=folder)
    if executor == "submitit-local":
        ex.update_parameters(timeout_min=int(slurm_args.pop("timeout_min", 60)))
    if slurm_args:
        ex.update_parameters(**slurm_args)
    n = len(pending)
    jobs = ex.map_array(run_point, [study.run] * n, [study.name] * n, [study.version] * n,
                        [k for k, _ in pending], [c for _, c in pending], [points_dir] * n)
    for job in jobs:
        rec = job.result()
        progress(1, label=f"{rec['key']} {rec['status']}")


def run_study(study: Study, out: str, quick: bool = False, device: str = "cpu", jobs: int = 1,
              executor: str = "local", retry_failed: bool = False, quiet: bool = False,
              slurm_args: dict | None = None, command: str | None = None) -> dict:
    """Run every point of ``study`` not yet in ``out``, then aggregate; returns the summary.

    The summary (also ``out/summary.json``) lists every point's key, configuration, status and
    result, the failed points by name, and how many points were run now and taken from the cache.
    ``out/README.md`` is the study's page: provenance, the aggregate's tables and figures."""
    if jobs < 1:
        raise InvalidArgumentError(f"jobs must be ≥ 1, got {jobs}")
    if executor not in EXECUTORS:
        raise InvalidArgumentError(f"unknown executor {executor!r}; valid executors: {', '.join(EXECUTORS)}")
    log = (lambda m: None) if quiet else (lambda m: print(m, file=sys.stderr, flush=True))
    configs = [dict(c, device=device) for c in study.grid(quick)]
    keys = [point_key(study, c) for c in configs]
    if len(set(keys)) != len(keys):
        raise PDENetError(f"study {study.name!r} declares the same configuration twice")
    points_dir = os.path.join(out, "points")
    os.makedirs(points_dir, exist_ok=True)
    done, pending = {}, []
    for key, cfg in zip(keys, configs):
        path = os.path.join(points_dir, f"{key}.json")
        rec, why = load_point(path, study, key, cfg)
        if why:
            log(f"study {study.name}: cached point {key} is {why}; running it again")
            os.replace(path, path + ".corrupt")
        if rec is not None and (rec["status"] == "ok" or not retry_failed):
            done[key] = rec
        else:
            pending.append((key, cfg))
    log(f"study {study.name}: {len(configs)} points, {len(done)} cached, {len(pending)} to run "
        f"({'quick' if quick else 'full'} grid, {executor}, jobs={jobs}) → {out}")
    t0 = time.perf_counter()
    progress = Progress(len(pending), f"study {study.name}", quiet=quiet)
    if pending:
        if executor == "local":
            _run_local(pending, study, points_dir, jobs, progress)
        else:
            _run_submitit(pending, study, points_dir, executor, progress, dict(slurm_args or {}))
    wall = time.perf_counter() - t0
    records = []
    for key, cfg in zip(keys, configs):
        rec, why = load_point(os.path.join(points_dir, f"{key}.json"), study, key, cfg)
        if rec is None:
            raise PDENetError(f"point {key} of study {study.name!r} left no valid record ({why or 'missing'})")
        records.append(rec)
    failed = [r for r in records if r["status"] != "ok"]
    body = study.aggregate([r for r in records if r["status"] == "ok"], out, quick)
    prov = provenance(command, device=device)
    summary = dict(study=study.name, version=study.version, quick=quick, provenance=prov, n_points=len(records),
                   run_now=len(pending), cached=len(records) - len(pending), wall_seconds=wall,
                   point_seconds=sum(r["seconds"] for r in records),
                   failed=[dict(key=r["key"], config=r["config"], error=r["error"]) for r in failed],
                   points=[{k: r[k] for k in ("key", "config", "status", "result", "error", "seconds")} for r in records])
    _write_atomic(os.path.join(out, "summary.json"), json.dumps(summary, indent=1, allow_nan=True))
    head = [f"# {study.title}", "", f"*Question.* {study.question}", "",
            f"Command: `{prov['command']}` · {prov['device']} · torch {prov['torch']} · commit {prov['commit'] or '—'} · "
            f"{prov['date']} · {len(records)} points ({'quick' if quick else 'full'} grid), "
            f"{sum(r['seconds'] for r in records):.0f} s of point time.", ""]
    if failed:
        head += ["**Failed points** (recorded, not aggregated):", ""]
        head += [f"- `{r['key']}` {canonical(r['config'])}: {r['error']}" for r in failed] + [""]
    _write_atomic(os.path.join(out, "README.md"), "\n".join(head) + "\n" + body.rstrip() + "\n")
    log(f"study {study.name}: {len(records) - len(failed)} ok, {len(failed)} failed, {wall:.1f} s; "
        f"page {os.path.join(out, 'README.md')}")
    return summary
