"""One BLAS thread for numpy/scipy inside the iterative solvers.

The Krylov solvers here alternate many times a second between torch (the operator's products,
on torch's OpenMP threads) and numpy/scipy (ARPACK's restarts, the small projected problems, on
OpenBLAS's own threads). Each pool busy-waits for a while after its work, so on a machine with
few cores the two pools take turns spinning on each other's cores, and an ARPACK product
becomes several times slower (measured on a 2-core machine at CIFAR-10's first unit:
docs/benchmarks.md). The solver's own numpy work is small, so one OpenBLAS thread loses
nothing. Torch's threads are not touched, and dense LAPACK calls outside the solvers
keep every thread.
"""

from __future__ import annotations

import contextlib
import functools

# threadpoolctl limits the libraries loaded when a limit is entered: load scipy's OpenBLAS (which
# ARPACK uses) now, or the first solver call would run with it unlimited
import scipy.sparse.linalg  # noqa: F401

try:
    from threadpoolctl import threadpool_limits
except ImportError:  # pragma: no cover - threadpoolctl is a dependency; degrade to no limit
    threadpool_limits = None


def serial_blas():
    """A context in which numpy's and scipy's BLAS use one thread (torch's pool is unchanged)."""
    if threadpool_limits is None:  # pragma: no cover
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def with_serial_blas(fn):
    """Decorator: run ``fn`` inside :func:`serial_blas`."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with serial_blas():
            return fn(*args, **kwargs)

    return wrapper
