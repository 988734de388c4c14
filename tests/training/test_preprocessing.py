"""A reloaded network applies its own preprocessing: raw test images give the accuracy the run
recorded; checkpoints of other format versions are read or refused, naming both versions."""

import json

import pytest
import torch

import pdenet_analysis as pa
from pdenet_analysis.cli import main
from pdenet_analysis.data import load_dataset, standardize
from pdenet_analysis.training import TrainConfig, evaluate, load_model, save_checkpoint, train
from pdenet_analysis.training.checkpoint import FORMAT_VERSION


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A digits network trained for three epochs into a run directory, and its summary."""
    out = tmp_path_factory.mktemp("run")
    torch.manual_seed(0)
    model = pa.build_preset("digits-parabolic")
    data = load_dataset("digits")
    summary = train(model, data, TrainConfig(epochs=3, batch_size=32, augment=False, progress=False, out=str(out),
                                             dataset="digits"))
    return out, summary, data


def test_raw_images_give_the_recorded_accuracy(trained):
    out, summary, data = trained
    net = load_model(str(out / "checkpoint.pt"))
    assert net.config["preprocessing"] == "standardize"
    got = evaluate(net, data.x_test, data.y_test)  # raw images, as a user has them
    assert got["accuracy"] == summary["test_accuracy"] and got["loss"] == pytest.approx(summary["test_loss"], rel=1e-6)
    assert summary["test_accuracy"] > 0.5
    # the network standardises each image itself: giving it standardised ones changes nothing
    again = evaluate(net, standardize(data.x_test), data.y_test)
    assert again["accuracy"] == got["accuracy"]


def test_the_cli_evaluates_a_checkpoint_at_its_recorded_accuracy(trained, capsys):
    out, summary, _ = trained
    assert main(["evaluate", str(out), "--json"]) == 0
    row = json.loads(capsys.readouterr().out)
    assert row["accuracy"] == summary["test_accuracy"] and row["dataset"] == "digits" and row["scheme"] == "euler"
    assert row["evals_per_forward"] == 6 and row["images_per_s"] > 0  # two blocks × 3 Euler steps


def test_evaluate_grid_writes_a_table_under_every_integration(trained, tmp_path, capsys):
    out, summary, _ = trained
    table = tmp_path / "grid"
    assert main(["evaluate", str(out), "--grid", "--scheme", "euler,rk4,dopri5", "--steps", "3,6", "--rtol", "1e-3",
                 "--out", str(table), "--quiet"]) == 0
    rows = json.loads((table / "evaluate.json").read_text())["data"]["rows"]
    assert [r["label"] for r in rows] == ["euler 3 steps", "euler 6 steps", "rk4 3 steps", "rk4 6 steps",
                                          "dopri5 rtol 1e-03"]
    assert rows[0]["accuracy"] == summary["test_accuracy"]  # the integration it was trained with
    assert rows[2]["evals_per_forward"] == 4 * rows[0]["evals_per_forward"]  # RK4: four stages
    assert (table / "evaluate.png").read_bytes()[:4] == b"\x89PNG" and "| rk4 6 steps |" in (table / "evaluate.md").read_text()


def test_a_format_2_checkpoint_reloads_with_the_per_image_standardisation(trained, tmp_path):
    """Checkpoints written before the network owned its preprocessing were all trained on
    standardised images: they reload with it."""
    out, summary, data = trained
    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    ck["model_config"].pop("preprocessing")
    old = tmp_path / "old.pt"
    body = {k: v for k, v in ck.items() if k not in ("tensor_sha256", "format_version")}
    save_checkpoint(str(old), body)
    raw = torch.load(old, weights_only=True)
    raw["format_version"] = 2
    torch.save(raw, old)
    net = load_model(str(old))
    assert evaluate(net, data.x_test, data.y_test)["accuracy"] == summary["test_accuracy"]


def test_a_checkpoint_of_a_newer_format_is_refused_naming_both_versions(trained, tmp_path):
    out, _, _ = trained
    ck = torch.load(out / "checkpoint.pt", weights_only=True)
    ck["format_version"] = FORMAT_VERSION + 1
    newer = tmp_path / "newer.pt"
    torch.save(ck, newer)
    with pytest.raises(pa.DataError, match=rf"format version {FORMAT_VERSION + 1}, written by a newer .*up to "
                                           rf"{FORMAT_VERSION}: upgrade"):
        load_model(str(newer))


def test_resume_with_nothing_to_resume_says_so_and_starts_fresh(tmp_path, capsys):
    out = tmp_path / "fresh"
    assert main(["train", "--dataset", "digits", "--model", "digits-parabolic", "--epochs", "1", "--out", str(out),
                 "--resume", "--quiet", "--no-augment"]) == 0
    err = capsys.readouterr().err
    assert f"nothing to resume in {out} (no checkpoint.pt there); starting fresh" in err
    assert json.loads((out / "summary.json").read_text())["epochs"] == 1


@pytest.mark.slow  # a training run with an adaptive solver
def test_train_takes_the_continuous_depth_settings(tmp_path, capsys):
    """--scheme dopri5 --rtol --atol --interpolation linear: the discrete-vs-continuous study's
    continuous-depth training, recorded in the checkpoint so that it reloads as trained."""
    out = tmp_path / "ode"
    assert main(["train", "--dataset", "digits", "--model", "digits-parabolic", "--epochs", "1", "--out", str(out),
                 "--scheme", "dopri5", "--rtol", "1e-2", "--atol", "1e-3", "--interpolation", "linear", "--quiet",
                 "--no-augment"]) == 0
    net = load_model(str(out / "checkpoint.pt"))
    assert net.config["interpolation"] == "linear" and net.config["scheme"] == "dopri5"
    assert (net.blocks[0].scheme.rtol, net.blocks[0].scheme.atol) == (1e-2, 1e-3)
