"""The studies that train or analyse networks, one point each, end to end on digits."""

import json
import os

import pytest
import torch

import pdenet_analysis as pa
from pdenet_analysis.studies import available_studies, get_study, study_folder


@pytest.mark.slow
def test_trained_networks_point_trains_reloads_and_analyses_every_block(tmp_path):
    study = get_study("trained-networks")
    config = dict(study.grid(True)[0], arch="hamiltonian", epochs=1, examples=2, device="cpu")
    r = study.run(config)
    assert r["arch"] == "hamiltonian" and r["scheme"] == "symplectic_euler" and len(r["history"]) == 1
    assert 0.1 < r["test_accuracy"] <= 1 and r["best_epoch"] == 1
    assert len(r["blocks"]) == len(pa.build_preset("digits-hamiltonian").blocks)
    for block in r["blocks"]:
        assert block["scheme"] == "symplectic_euler" and len(block["steps"]) == 3
        assert all(s["exact"] for s in block["steps"])  # every mode of every example counted
        for s in block["steps"]:
            assert s["examples"] == 2 and (s["unstable_examples"] > 0) == (s["radius"] > 1 + 1e-6)
        c = block["conditioning"]
        assert c["all_converged"] and c["certified"] == 2 and c["p5"] <= c["median"] <= c["max"]
        rev = block["reversibility"]  # the reversible block inverts to each precision's round-off
        assert rev["float64"] < 1e-12 and rev["float32"] < 1e-5 and rev["bfloat16"] < 0.1
    page = study.aggregate([dict(config=config, result=r)], str(tmp_path), True)
    assert "| hamiltonian | symplectic_euler |" in page and "### hamiltonian (symplectic_euler" in page
    assert (tmp_path / "trained_networks.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow
@pytest.mark.float64
def test_initial_blocks_point_matrix_free_kappa_matches_the_dense_svd():
    study = get_study("initial-blocks")
    config = dict(study.grid(True)[1], device="cpu")  # the Hamiltonian block
    r = study.run(config)
    assert r["arch"] == "hamiltonian" and all(r["count_exact"])
    for route in ("kappa_default", "kappa_matrix_free"):
        assert r[route]["relative_error"] < 1e-9, (route, r[route])
    assert r["kappa_dense"] > 1


@pytest.mark.parametrize("name", available_studies())
def test_every_study_has_its_page_and_committed_results(name):
    """Each study's subpackage holds its page (README.md) and the results of its committed run,
    whose points are those of the study's current version."""
    folder = study_folder(name)
    assert os.path.isfile(os.path.join(folder, "README.md"))
    summary = json.loads(open(os.path.join(folder, "results", "summary.json")).read())
    assert summary["n_points"] >= 1 and not summary["failed"]
    assert os.path.isfile(os.path.join(folder, "results", "README.md"))
