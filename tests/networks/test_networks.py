import pytest
import torch

import pdenet_analysis as pa

TABLE1 = {
    "stl10": (618_554, 324_794, 618_554),
    "cifar10": (502_570, 264_106, 502_570),
    "cifar100": (652_484, 362_180, 652_484),
}


@pytest.mark.parametrize("dataset", TABLE1)
def test_table1_parameter_counts(dataset):
    got = tuple(pa.build_preset(f"{dataset}-{a}").n_parameters() for a in ("parabolic", "hamiltonian", "second_order"))
    assert got == TABLE1[dataset]


@pytest.mark.parametrize("name", ["digits-parabolic", "digits-hamiltonian", "digits-second_order", "digits-resnet",
                                  "mnist-parabolic", "fashion_mnist-hamiltonian"])
def test_small_presets_forward(name):
    m = pa.build_preset(name)
    shape = pa.networks.DATASET_SHAPES[name.split("-")[0]]
    x = torch.randn(3, shape.in_channels, shape.image_size, shape.image_size)
    assert m(x).shape == (3, shape.n_classes)
    assert m.evaluations() == 3 * (len(shape.widths) - 1)


def test_default_schemes_are_the_papers():
    names = {a: [b.scheme.name for b in pa.build_preset(f"digits-{a}").blocks] for a in
             ("parabolic", "hamiltonian", "second_order", "resnet")}
    assert names == {"parabolic": ["euler"] * 2, "hamiltonian": ["symplectic_euler"] * 2,
                     "second_order": ["leapfrog"] * 2, "resnet": ["euler"] * 2}


def test_with_scheme_shares_weights_and_converges():
    m = pa.build_preset("digits-parabolic").eval()
    x = torch.randn(2, 1, 8, 8)
    fine = m.with_scheme("rk4", n_steps=48)
    assert fine.opening is m.opening and fine.blocks[0].operator is m.blocks[0].operator
    assert fine.blocks[0].scheme.name == "rk4" and m.blocks[0].scheme.name == "euler"
    finer = m.with_scheme("rk4", n_steps=96)
    assert torch.allclose(fine(x), finer(x), atol=1e-6)
    ada = m.with_scheme("dopri5", rtol=1e-8, atol=1e-10)
    assert torch.allclose(ada(x), finer(x), atol=1e-5)


def test_unknown_preset_lists_valid_names():
    with pytest.raises(pa.UnknownNameError, match="cifar10-parabolic"):
        pa.build_preset("cifar11-parabolic")


def test_from_config_rebuilds_same_architecture():
    m = pa.build_preset("digits-hamiltonian").with_scheme("verlet", n_steps=6)
    m2 = pa.networks.from_config(m.config)
    assert m2.n_parameters() == m.n_parameters()
    assert m2.blocks[0].scheme.name == "verlet" and m2.blocks[0].n_steps == 6


def test_every_scheme_object_is_rebuilt_from_its_name_and_options():
    """Registry-driven: a network given a scheme object records its name and ``options()``, and
    its configuration rebuilds the same scheme (e.g. a dopri5 with rtol 1e-4, not the default
    1e-6). Options given beside an object are refused, not dropped."""
    from pdenet_analysis.networks import from_config

    net = pa.build_preset("digits-parabolic")
    for name in pa.available_schemes():
        scheme = pa.get_scheme(name)
        if not scheme.accepts("first_order"):
            continue
        if scheme.adaptive:
            scheme = pa.get_scheme(name, rtol=1e-4, atol=1e-7)
        rebuilt = from_config(net.with_scheme(scheme).config).blocks[0].scheme
        assert repr(rebuilt) == repr(scheme) and rebuilt.options() == scheme.options(), name
    with pytest.raises(pa.InvalidArgumentError, match="given with a scheme object"):
        net.with_scheme(pa.get_scheme("dopri5"), rtol=1e-9)
