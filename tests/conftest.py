"""Test-suite settings.

* dtype: tests run in the dtype users get by default (float32). A test of the mathematics asks
  for float64 with the ``float64`` marker (on the test, or ``pytestmark`` on its module); torch's
  default dtype is then float64 for that test only, and put back afterwards.
* threads: the user's thread settings are kept (``OMP_NUM_THREADS`` or ``MKL_NUM_THREADS`` in the
  environment, as torch reads them); where none is set, torch uses 2 threads, the size of the CI
  machine, so that timings and a busy machine's tests behave alike.
* tiers: ``python -m pytest`` (the README's command) runs the fast tier; tests marked ``slow``
  (training runs, studies, subprocesses, torchrun, large analyses) run with ``--slow`` or
  ``-m slow`` (CI runs both).
"""

import os

import pytest
import torch
from hypothesis import HealthCheck, settings

if not any(os.environ.get(v) for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")):
    torch.set_num_threads(2)

settings.register_profile(
    "ci", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True
)
settings.load_profile("ci")

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def pytest_addoption(parser):
    parser.addoption("--slow", action="store_true", default=False,
                     help="run the slow tier too (tests marked slow); -m slow runs it alone")


def pytest_collection_modifyitems(config, items):
    """Without ``--slow`` and without a ``-m`` expression, the slow tests are deselected (the fast
    tier); ``-m slow`` or ``-m "slow or not slow"`` choose for themselves."""
    if config.getoption("--slow") or config.getoption("-m"):
        return
    keep, drop = [], []
    for item in items:
        (drop if item.get_closest_marker("slow") else keep).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture(autouse=True)
def _default_dtype(request):
    """float64 as torch's default dtype for tests marked ``float64``; the caller's dtype (float32)
    is put back after every test, whatever it did."""
    before = torch.get_default_dtype()
    if request.node.get_closest_marker("float64"):
        torch.set_default_dtype(torch.float64)
    try:
        yield
    finally:
        torch.set_default_dtype(before)


@pytest.fixture(params=DEVICES)
def device(request):
    return torch.device(request.param)
