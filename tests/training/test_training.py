"""Data readers, training, checkpoints and the CLI on the embedded digits data."""

import gzip
import os
import struct

import numpy as np
import pytest
import torch

import pdenet_analysis as pa
from pdenet_analysis.cli import main
from pdenet_analysis.data import load_dataset, standardize
from pdenet_analysis.data.datasets import read_idx
from pdenet_analysis.training import TrainConfig, load_checkpoint, load_model, train


def _write_idx(path, arr, gz=False, truncate=0, magic=0x08):
    raw = bytes([0, 0, magic, arr.ndim]) + struct.pack(">" + "I" * arr.ndim, *arr.shape) + arr.astype(np.uint8).tobytes()
    raw = raw[: len(raw) - truncate]
    (gzip.open if gz else open)(path, "wb").write(raw)


def test_idx_reader_roundtrip_and_errors(tmp_path):
    a = np.random.default_rng(0).integers(0, 255, (5, 28, 28))
    p = str(tmp_path / "x-idx3-ubyte.gz")
    _write_idx(p, a, gz=True)
    np.testing.assert_array_equal(read_idx(p, 3), a)
    _write_idx(str(tmp_path / "t"), a, truncate=10)
    with pytest.raises(pa.DataError, match="truncated"):
        read_idx(str(tmp_path / "t"), 3)
    _write_idx(str(tmp_path / "m"), a, magic=0x0D)
    with pytest.raises(pa.DataError, match="magic"):
        read_idx(str(tmp_path / "m"), 3)
    with pytest.raises(pa.DataError, match="missing"):
        read_idx(str(tmp_path / "nope"), 3)


def test_idx_dataset_from_directory(tmp_path):
    rng = np.random.default_rng(0)
    for stem, arr in [("train-images-idx3-ubyte", rng.integers(0, 255, (20, 28, 28))), ("train-labels-idx1-ubyte", rng.integers(0, 10, 20)),
                      ("t10k-images-idx3-ubyte", rng.integers(0, 255, (8, 28, 28))), ("t10k-labels-idx1-ubyte", rng.integers(0, 10, 8))]:
        _write_idx(str(tmp_path / stem), arr)
    s = load_dataset("fashion_mnist", str(tmp_path))
    assert s.x_train.shape == (20, 1, 28, 28) and s.x_test.shape == (8, 1, 28, 28) and s.x_train.max() <= 1


def test_unknown_dataset_lists_valid():
    with pytest.raises(pa.UnknownNameError, match="digits"):
        load_dataset("cifar11")


def test_standardize_per_image():
    x = torch.rand(4, 3, 8, 8) * 5 + 2
    z = standardize(x).flatten(1)
    torch.testing.assert_close(z.mean(1), torch.zeros(4), atol=1e-6, rtol=0)
    torch.testing.assert_close(z.std(1, unbiased=False), torch.ones(4), atol=1e-6, rtol=0)


@pytest.fixture(scope="module")
def digits():
    d = load_dataset("digits")
    return type(d)(d.x_train[:400], d.y_train[:400], d.x_test[:200], d.y_test[:200], "digits")


def test_training_learns_and_checkpoint_rebuilds(tmp_path, digits):
    torch.manual_seed(0)
    model = pa.build_preset("digits-hamiltonian").float()
    out = str(tmp_path / "run")
    r = train(model, digits, TrainConfig(epochs=4, batch_size=32, augment=False, progress=False, out=out, lr=0.1))
    assert r["test_accuracy"] > 0.6
    ck = load_checkpoint(os.path.join(out, "checkpoint.pt"))
    assert ck["epoch"] == 4 and len(ck["metrics"]) == 4
    assert len(open(os.path.join(out, "metrics.jsonl")).read().splitlines()) == 4
    m2 = load_model(os.path.join(out, "checkpoint.pt"), scheme="verlet", n_steps=6)
    assert m2.blocks[0].scheme.name == "verlet" and m2.n_parameters() == model.n_parameters()
    for k in m2.blocks[0].operator.layers():
        assert float(k.weight.detach().abs().max()) <= 1.0  # box constraint


def test_resume_continues_where_it_stopped(tmp_path, digits, device):
    """On CUDA too: the checkpoint is loaded onto the training device, and its RNG states must go
    back to the CPU before they are restored (a GPU lease's resume once failed there). On CUDA the
    runs repeat to the bit only with deterministic kernels (without, the first epoch's losses of
    two runs differed by 2·10⁻⁶ on an H200)."""
    cfg = dict(augment=False, progress=False, out=str(tmp_path / "r"), lr=0.1, batch_size=32, lr_milestones=(),
               device=str(device), deterministic=True)
    torch.manual_seed(0)
    full = train(pa.build_preset("digits-parabolic").float(), digits, TrainConfig(epochs=3, **{**cfg, "out": str(tmp_path / "f")}))
    torch.manual_seed(0)
    train(pa.build_preset("digits-parabolic").float(), digits, TrainConfig(epochs=2, **cfg))
    torch.manual_seed(0)
    resumed = train(pa.build_preset("digits-parabolic").float(), digits, TrainConfig(epochs=3, resume=True, **cfg))
    assert [round(h["train_loss"], 10) for h in resumed["history"]] == [round(h["train_loss"], 10) for h in full["history"]]


@pytest.mark.parametrize("on", [False, True])
@pytest.mark.parametrize("start", [(False, False, False, False), (True, False, True, True)])
def test_deterministic_kernels_set_their_mode_and_restore_the_process_settings(on, start):
    """Whatever the process had before (the defaults, or strict determinism with autotuning on),
    it has again after training, also when training raises."""
    from pdenet_analysis.training.kernels import deterministic_kernels, kernel_settings, set_kernel_settings

    before = kernel_settings()
    try:
        set_kernel_settings(start)
        assert kernel_settings() == start
        with pytest.raises(RuntimeError, match="inside"):
            with deterministic_kernels(on):
                inside = kernel_settings()
                raise RuntimeError("inside")
        assert kernel_settings() == start
        assert inside == ((True, True, True, False) if on else (start[0], start[1], False, True))
    finally:
        set_kernel_settings(before)


def test_a_training_epoch_reads_the_device_a_fixed_number_of_times(digits):
    """No host synchronisation per batch: with the running loss read every 50 batches (the
    default on CUDA, where each read stalls the queue), the host reads of an epoch (validation
    and test included) do not grow with its number of batches; read every batch, they do."""
    from pdenet_analysis.testing import HostReads

    def reads(batch_size, sync_every):
        torch.manual_seed(0)
        model = pa.build_preset("digits-hamiltonian").float()
        with HostReads() as meter:
            train(model, digits, TrainConfig(epochs=1, batch_size=batch_size, sync_every=sync_every, progress=False))
        return meter.count

    assert reads(32, 50) == reads(16, 50)  # 10 and 20 batches
    assert reads(16, 1) >= reads(32, 1) + 10  # the check itself sees per-batch reads


def test_nan_loss_stops_with_epoch_and_hint(tmp_path, digits):
    model = pa.build_preset("digits-parabolic").float()
    with pytest.raises(pa.NonFiniteError, match=r"epoch 1.*learning rate"):
        train(model, digits, TrainConfig(epochs=1, augment=False, progress=False, lr=float("inf")))


def test_corrupt_checkpoint_names_the_file(tmp_path):
    p = tmp_path / "bad.pt"
    p.write_bytes(b"not a checkpoint")
    with pytest.raises(pa.DataError, match="bad.pt"):
        load_model(str(p))


@pytest.mark.slow
def test_cli_analyze_preset_writes_reports(tmp_path, capsys):
    assert main(["analyze", "digits-second_order", "--out", str(tmp_path), "--no-conditioning", "--examples", "1"]) == 0
    for name in ("stability", "energy", "reversibility", "convergence"):
        assert os.path.exists(tmp_path / "block0" / f"{name}.png")
    index = open(tmp_path / "report.md").read()  # the index: one row per block, links to every page
    assert "| block0 | leapfrog |" in index and "(block0/stability.md)" in index and "(network/features.md)" in index
    assert not os.path.exists(tmp_path / "block0" / "conditioning.md")
    assert main(["analyze", "nope-model", "--out", str(tmp_path)]) == 2
    assert "no file or preset named" in capsys.readouterr().err


def test_continuous_depth_training_logs_evaluations(digits):
    """An adaptive solver trains (piecewise-linear θ); its evaluations are logged per epoch."""
    torch.manual_seed(0)
    model = pa.networks.PDECNN("parabolic", [8, 16], in_channels=1, interpolation="linear", scheme="bosh3",
                               scheme_kwargs=dict(rtol=5e-2, atol=1e-2)).float()
    small = type(digits)(digits.x_train[:250], digits.y_train[:250], digits.x_test, digits.y_test, "digits")
    r = train(model, small, TrainConfig(epochs=3, batch_size=20, augment=False, progress=False, lr=0.1))
    evals = [h["operator_evals_per_forward"] for h in r["history"]]
    assert len(evals) == 3 and all(e >= 4 for e in evals)  # bosh3: ≥ 1 initial + 3 per accepted step
    losses = [h["train_loss"] for h in r["history"]]
    assert losses[0] > losses[1] > losses[2], losses  # it learns


def test_bfloat16_autocast_and_channels_last_train(digits):
    torch.manual_seed(0)
    model = pa.build_preset("digits-hamiltonian").float()
    r = train(model, digits, TrainConfig(epochs=3, batch_size=32, augment=False, progress=False, amp=True, channels_last=True))
    losses = [h["train_loss"] for h in r["history"]]
    assert losses[-1] < 0.8 * losses[0] and r["test_accuracy"] > 0.3, (losses, r["test_accuracy"])  # chance is 0.1
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_truncated_and_other_version_model_files_name_the_file(tmp_path):
    from pdenet_analysis.training import save_checkpoint

    model = pa.build_preset("digits-parabolic")
    good = str(tmp_path / "good.pt")
    save_checkpoint(good, dict(model_config=model.config, model_state=model.state_dict()))
    assert load_model(good).n_parameters() == model.n_parameters()
    data = open(good, "rb").read()
    (tmp_path / "cut.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(pa.DataError, match="cut.pt.*truncated"):
        load_model(str(tmp_path / "cut.pt"))
    old = str(tmp_path / "old.pt")
    torch.save(dict(format_version=0, model_config=model.config, model_state=model.state_dict()), old)
    with pytest.raises(pa.DataError, match="old.pt has format version 0"):
        load_model(old)
    with pytest.raises(pa.DataError, match="missing.pt is missing"):
        load_model(str(tmp_path / "missing.pt"))


def test_augmentation_flips_half_and_crops_windows_of_the_padded_image():
    from pdenet_analysis.data import random_crop, random_flip

    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 3, 16, 16)
    f = random_flip(x, g)
    flipped = [bool(torch.equal(f[i], x[i].flip(-1))) for i in range(8)]
    assert sum(flipped) == 4 and all(flipped[i] or torch.equal(f[i], x[i]) for i in range(8))
    pad = 16 // 16
    c = random_crop(x, pad, g)
    xp = torch.nn.functional.pad(x, (pad,) * 4)
    for i in range(8):
        assert any(torch.equal(c[i], xp[i, :, r:r + 16, s:s + 16]) for r in range(2 * pad + 1) for s in range(2 * pad + 1))


def _flip_one_bit_in_largest_tensor(path):
    import zipfile

    big = max(zipfile.ZipFile(path).infolist(), key=lambda i: i.file_size)
    raw = bytearray(open(path, "rb").read())
    n, e = struct.unpack("<HH", raw[big.header_offset + 26 : big.header_offset + 30])
    raw[big.header_offset + 30 + n + e + big.file_size // 2] ^= 0x10
    open(path, "wb").write(raw)


def test_checkpoint_bit_flip_is_detected_and_the_tensor_named(tmp_path):
    from pdenet_analysis.training import save_checkpoint

    model = pa.build_preset("digits-parabolic")
    p = str(tmp_path / "c.pt")
    save_checkpoint(p, dict(model_config=model.config, model_state=model.state_dict()))
    _flip_one_bit_in_largest_tensor(p)
    with pytest.raises(pa.DataError, match=r"c.pt is corrupt: 1 tensor\(s\).*model_state/units\.\d\.block"):
        load_model(p)


class _Payload:
    """An object whose unpickling would run code (here: only record that it did)."""

    ran = False

    def __reduce__(self):
        return (_mark_ran, ())


def _mark_ran():
    _Payload.ran = True
    return "ran"


def test_model_files_that_could_run_code_are_refused(tmp_path):
    model = pa.build_preset("digits-parabolic")
    p = str(tmp_path / "evil.pt")
    torch.save(dict(format_version=2, model_config=model.config, model_state=model.state_dict(), x=_Payload()), p)
    with pytest.raises(pa.DataError, match="evil.pt holds Python objects other than tensors.*could run code") as e:
        load_model(p)
    assert not _Payload.ran
    assert "weights_only" not in str(e.value)  # no message suggests loading it unsafely


def test_a_file_that_is_not_a_checkpoint_is_not_a_model_file(tmp_path):
    p = tmp_path / "metrics.jsonl"
    p.write_text('{"epoch": 1, "train_loss": 0.5}\n')
    with pytest.raises(pa.DataError, match="metrics.jsonl is not a model file") as e:
        load_model(str(p))
    assert "could run code" not in str(e.value) and "weights_only" not in str(e.value)


def test_weights_that_disagree_with_the_config_are_named(tmp_path):
    from pdenet_analysis.training import save_checkpoint

    a, b = pa.build_preset("digits-parabolic"), pa.build_preset("digits-hamiltonian")
    p = str(tmp_path / "mixed.pt")
    save_checkpoint(p, dict(model_config=a.config, model_state=b.state_dict()))
    with pytest.raises(pa.DataError, match="mixed.pt: the weights do not fit the network"):
        load_model(p)


def test_stale_temporary_checkpoints_are_removed_by_the_next_save(tmp_path):
    from pdenet_analysis.training import save_checkpoint

    p = tmp_path / "checkpoint.pt"
    (tmp_path / "checkpoint.pt.tmp-999999").write_bytes(b"torn")
    save_checkpoint(str(p), dict(model_config={}, model_state={}))
    assert sorted(os.listdir(tmp_path)) == ["checkpoint.pt"]


def test_non_finite_validation_stops_training_before_its_checkpoint(tmp_path, digits):
    """Weights whose validation logits are not finite are never saved as the last good checkpoint."""
    model = pa.build_preset("digits-parabolic").float()
    out = str(tmp_path / "run")
    bad = type(digits)(digits.x_train.clone(), digits.y_train, digits.x_test, digits.y_test, "digits")
    perm = torch.randperm(len(bad.y_train), generator=torch.Generator().manual_seed(0))
    bad.x_train[perm[0]] = float("inf")  # lands in the validation split (the first 20% of the seeded permutation)
    with pytest.raises(pa.NonFiniteError, match="validation loss became"):
        train(model, bad, TrainConfig(epochs=1, augment=False, progress=False, out=out, batch_size=32))
    assert not os.path.exists(os.path.join(out, "checkpoint.pt"))


def test_resume_refuses_another_network_or_other_settings_and_says_when_nothing_to_resume(tmp_path, digits):
    out = str(tmp_path / "r")
    small = type(digits)(digits.x_train[:100], digits.y_train[:100], digits.x_test[:50], digits.y_test[:50], "digits")
    kw = dict(augment=False, progress=False, out=out, batch_size=25)
    logged = []
    train(pa.build_preset("digits-parabolic").float(), small, TrainConfig(epochs=1, resume=True, **kw), log=logged.append)
    assert any("nothing to resume" in line for line in logged)
    with pytest.raises(pa.ConfigMismatchError, match="another network.*preset"):
        train(pa.build_preset("digits-hamiltonian").float(), small, TrainConfig(epochs=2, resume=True, **kw))
    with pytest.raises(pa.ConfigMismatchError, match="seed 0 → 1"):
        train(pa.build_preset("digits-parabolic").float(), small, TrainConfig(epochs=2, resume=True, seed=1, **kw))
    with pytest.raises(pa.ConfigMismatchError, match="weights are float32, the model's float64"):
        train(pa.build_preset("digits-parabolic").double(), small, TrainConfig(epochs=2, resume=True, **kw))


def test_a_compile_failure_warns_once_and_trains_as_without_compile(digits, monkeypatch):
    """torch.compile failing on the first step (here: a backend that raises) costs one warning;
    training goes on without it and gives the weights of a run that never asked for it."""
    calls = []

    class Broken(torch.nn.Module):
        def forward(self, x, preprocessed=False):
            calls.append(1)
            raise RuntimeError("backend exploded\nsecond line")

    def run(**kw):
        torch.manual_seed(0)
        model = pa.build_preset("digits-parabolic").float()
        train(model, digits, TrainConfig(epochs=2, batch_size=64, progress=False, **kw))
        return model

    ref = run()
    monkeypatch.setattr(torch, "compile", lambda m, **kw: Broken())
    with pytest.warns(RuntimeWarning, match=r"torch.compile failed on the first step \(RuntimeError: backend exploded\)"):
        got = run(compile=True)
    assert calls == [1]  # tried once, then never again
    for (name, a), b in zip(ref.state_dict().items(), got.state_dict().values()):
        assert torch.equal(a, b), name


def _regulariser_per_parameter(model, cfg):
    """R of eq. 13 written out parameter by parameter (the reference for the fused version)."""
    from pdenet_analysis.operators.layers import TimeDependentLayer

    r = torch.zeros((), dtype=torch.float64)
    for m in model.modules():
        if isinstance(m, TimeDependentLayer):
            h = m.grid.spacing
            for p in m.parameters(recurse=False):
                if p.shape[0] > 1:
                    r = r + cfg.alpha_tv * h * torch.sqrt(((p[1:] - p[:-1]) / h).square() + cfg.tau).sum()
            r = r + 0.5 * cfg.alpha_decay * h * sum(k.square().sum() for k in m.kernels())
    for mod in list(model.opening) + [u.connector[0] for u in model.units]:
        if isinstance(mod, torch.nn.Conv2d):
            r = r + 0.5 * cfg.alpha_decay * mod.weight.square().sum()
    return r + 0.5 * cfg.alpha_decay * (model.classifier.weight.square().sum() + model.classifier.bias.square().sum())


@pytest.mark.parametrize("preset", ["digits-parabolic", "digits-hamiltonian", "digits-second_order", "digits-resnet",
                                    "cifar10-hamiltonian"])
@pytest.mark.parametrize("alphas", [(2e-4, 2e-4), (0.3, 0.0), (0.0, 0.7), (1.0, 1.0)])
def test_regulariser_value_and_gradient_are_eq13(preset, alphas):
    """The foreach regulariser with its closed-form gradient equals eq. 13 written per parameter:
    the value and every parameter's gradient to round-off in float64, with weights that differ
    between time nodes (not the initial ones); the loss gradient adds to it as usual."""
    from pdenet_analysis.training import regulariser, regulariser_per_parameter

    torch.manual_seed(1)
    model = pa.build_preset(preset).double()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    cfg = TrainConfig(alpha_tv=alphas[0], alpha_decay=alphas[1], tau=1e-2)
    params = list(model.parameters())
    ref = _regulariser_per_parameter(model, cfg)
    got = regulariser(model, cfg)
    assert float(got.detach()) == pytest.approx(float(ref.detach()), rel=1e-13, abs=1e-300)
    assert float(regulariser_per_parameter(model, cfg).detach()) == pytest.approx(float(ref.detach()), rel=1e-13, abs=1e-300)
    g_ref = torch.autograd.grad(ref, params, allow_unused=True)
    g_got = torch.autograd.grad(3.0 * regulariser(model, cfg), params, allow_unused=True)
    for p, a, b in zip(params, g_ref, g_got):
        a = torch.zeros_like(p) if a is None else a
        b = torch.zeros_like(p) if b is None else b
        # entries where g_j and g_{j-1} nearly cancel: round-off relative to the largest entry
        torch.testing.assert_close(b, 3.0 * a, rtol=1e-12, atol=1e-13 * float(a.abs().max()) + 1e-300)


def test_box_constraint_clips_the_pde_kernels_only():
    from pdenet_analysis.operators.layers import TimeDependentLayer
    from pdenet_analysis.training import apply_box_constraint

    model = pa.build_preset("digits-hamiltonian")
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(5 * torch.randn_like(p))
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    apply_box_constraint(model, 0.5)
    kernels = {id(k) for m in model.modules() if isinstance(m, TimeDependentLayer) for k in m.kernels()}
    for n, p in model.named_parameters():
        expected = before[n].clamp(-0.5, 0.5) if id(p) in kernels else before[n]
        assert torch.equal(p, expected), n
    assert kernels


def test_regulariser_sums_accurately_in_float32():
    """R of a float32 CIFAR-10 network (terms in tensors of up to 10⁵ entries) equals the float64
    value to float32 round-off: the sums must not add their terms one after another (a float32
    1-norm on the CPU does, and was 1.5·10⁻⁴ low here)."""
    from pdenet_analysis.training import regulariser

    torch.manual_seed(0)
    model = pa.build_preset("cifar10-parabolic")
    cfg = TrainConfig()
    exact = float(_regulariser_per_parameter(model.double(), cfg).detach())
    assert float(regulariser(model.float(), cfg).detach()) == pytest.approx(exact, rel=2e-6)
