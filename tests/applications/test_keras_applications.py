"""The Keras applications against real Keras 3: parameter counts, layer names, predictions with
Keras's weights copied in (by position and from a Keras weights file by name), and
`preprocess_input` / `decode_predictions`.

The parameter counts of the big models were computed with keras 3.15.1
(`keras.applications.X(weights=None).count_params()` and its trainable weights; for NASNet, which
Keras refuses on the torch backend, its generic `keras.src.applications.nasnet.NASNet` with the
two models' arguments); a few models are
also checked against live Keras below. Lamina's models are built on the meta device, so a
350M-parameter ConvNeXtXLarge costs no memory.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os

import numpy as np
import pytest
import torch

from lamina import applications
from lamina.applications import imagenet_utils

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
# Keras's tensor-to-numpy conversion under numpy 2 warns about the `copy` keyword (Keras's own
# code, as in tests/parity).
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:keras")

# name -> (total, trainable, non-trainable) with the top, then without it (include_top=False).
KERAS_COUNTS = {
    "ConvNeXtBase": ((88_591_464, 88_591_464, 0), (87_566_464, 87_566_464, 0)),
    "ConvNeXtLarge": ((197_767_336, 197_767_336, 0), (196_230_336, 196_230_336, 0)),
    "ConvNeXtSmall": ((50_223_688, 50_223_688, 0), (49_454_688, 49_454_688, 0)),
    "ConvNeXtTiny": ((28_589_128, 28_589_128, 0), (27_820_128, 27_820_128, 0)),
    "ConvNeXtXLarge": ((350_196_968, 350_196_968, 0), (348_147_968, 348_147_968, 0)),
    "DenseNet121": ((8_062_504, 7_978_856, 83_648), (7_037_504, 6_953_856, 83_648)),
    "DenseNet169": ((14_307_880, 14_149_480, 158_400), (12_642_880, 12_484_480, 158_400)),
    "DenseNet201": ((20_242_984, 20_013_928, 229_056), (18_321_984, 18_092_928, 229_056)),
    "EfficientNetB0": ((5_330_571, 5_288_548, 42_023), (4_049_571, 4_007_548, 42_023)),
    "EfficientNetB1": ((7_856_239, 7_794_184, 62_055), (6_575_239, 6_513_184, 62_055)),
    "EfficientNetB2": ((9_177_569, 9_109_994, 67_575), (7_768_569, 7_700_994, 67_575)),
    "EfficientNetB3": ((12_320_535, 12_233_232, 87_303), (10_783_535, 10_696_232, 87_303)),
    "EfficientNetB4": ((19_466_823, 19_341_616, 125_207), (17_673_823, 17_548_616, 125_207)),
    "EfficientNetB5": ((30_562_527, 30_389_784, 172_743), (28_513_527, 28_340_784, 172_743)),
    "EfficientNetB6": ((43_265_143, 43_040_704, 224_439), (40_960_143, 40_735_704, 224_439)),
    "EfficientNetB7": ((66_658_687, 66_347_960, 310_727), (64_097_687, 63_786_960, 310_727)),
    "EfficientNetV2B0": ((7_200_312, 7_139_704, 60_608), (5_919_312, 5_858_704, 60_608)),
    "EfficientNetV2B1": ((8_212_124, 8_141_052, 71_072), (6_931_124, 6_860_052, 71_072)),
    "EfficientNetV2B2": ((10_178_374, 10_096_086, 82_288), (8_769_374, 8_687_086, 82_288)),
    "EfficientNetV2B3": ((14_467_622, 14_358_406, 109_216), (12_930_622, 12_821_406, 109_216)),
    "EfficientNetV2L": ((119_027_848, 118_515_272, 512_576), (117_746_848, 117_234_272, 512_576)),
    "EfficientNetV2M": ((54_431_388, 54_139_356, 292_032), (53_150_388, 52_858_356, 292_032)),
    "EfficientNetV2S": ((21_612_360, 21_458_488, 153_872), (20_331_360, 20_177_488, 153_872)),
    "InceptionResNetV2": ((55_873_736, 55_813_192, 60_544), (54_336_736, 54_276_192, 60_544)),
    "InceptionV3": ((23_851_784, 23_817_352, 34_432), (21_802_784, 21_768_352, 34_432)),
    "NASNetLarge": ((88_949_818, 88_753_150, 196_668), (84_916_818, 84_720_150, 196_668)),
    "NASNetMobile": ((5_326_716, 5_289_978, 36_738), (4_269_716, 4_232_978, 36_738)),
    "MobileNet": ((4_253_864, 4_231_976, 21_888), (3_228_864, 3_206_976, 21_888)),
    "MobileNetV2": ((3_538_984, 3_504_872, 34_112), (2_257_984, 2_223_872, 34_112)),
    "MobileNetV3Large": ((5_507_432, 5_483_032, 24_400), (2_996_352, 2_971_952, 24_400)),
    "MobileNetV3Small": ((2_554_968, 2_542_856, 12_112), (939_120, 927_008, 12_112)),
    "ResNet50V2": ((25_613_800, 25_568_360, 45_440), (23_564_800, 23_519_360, 45_440)),
    "ResNet101V2": ((44_675_560, 44_577_896, 97_664), (42_626_560, 42_528_896, 97_664)),
    "ResNet152V2": ((60_380_648, 60_236_904, 143_744), (58_331_648, 58_187_904, 143_744)),
    "Xception": ((22_910_480, 22_855_952, 54_528), (20_861_480, 20_806_952, 54_528)),
}


def _counts(model) -> tuple[int, int, int]:
    total = model.count_params()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return total, trainable, total - trainable


def _keras_counts(model) -> tuple[int, int, int]:
    total = model.count_params()
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    return total, trainable, total - trainable


@pytest.mark.parametrize("name", sorted(KERAS_COUNTS))
def test_parameter_counts_equal_keras(name):
    with_top, without_top = KERAS_COUNTS[name]
    # InceptionV3 needs a known size (see its test below); the counts do not depend on it.
    size = {"input_shape": (299, 299, 3)} if name.startswith("Inception") else {}
    with torch.device("meta"):
        assert _counts(applications.create_model(name)) == with_top
        assert _counts(applications.create_model(name, include_top=False, **size)) == without_top


def _keras_weights(model) -> list[np.ndarray]:
    return [np.asarray(keras.ops.convert_to_numpy(v.value)) for v in model.weights]


def _perturbed_keras_weights(model, rng) -> list[np.ndarray]:
    """Keras's initial weights with batch-norm statistics and affine terms moved off their
    defaults, so a mix-up of moving mean, variance, gamma or beta changes the outputs."""
    weights = []
    for variable, value in zip(model.weights, _keras_weights(model)):
        path = variable.path
        if "moving_variance" in path:
            value = rng.uniform(0.5, 1.5, value.shape).astype(value.dtype)
        elif any(key in path for key in ("moving_mean", "gamma", "beta")):
            value = value + rng.normal(0, 0.1, value.shape).astype(value.dtype)
        weights.append(value)
    return weights


# (name, input shape): one of each family's block kinds at a small size.
PREDICTION_CASES = [("EfficientNetB0", (64, 64, 3)), ("MobileNetV3Small", (64, 64, 3)),
                    ("DenseNet121", (32, 32, 3)), ("ResNet50V2", (32, 32, 3)),
                    ("InceptionResNetV2", (75, 75, 3))]


@pytest.mark.parametrize("name, shape", PREDICTION_CASES, ids=[c[0] for c in PREDICTION_CASES])
def test_keras_weights_give_keras_predictions(name, shape, tmp_path):
    keras.utils.clear_session()  # Keras numbers auto-named layers per session: start afresh
    keras.utils.set_random_seed(0)
    reference = getattr(keras.applications, name)(weights=None, input_shape=shape,
                                                  classifier_activation=None)
    _check_predictions_equal_keras(
        reference, lambda **kwargs: applications.create_model(
            name, input_shape=shape, classifier_activation=None, **kwargs), shape, tmp_path)


# NASNet-A with one normal cell per stage and narrow cells: every cell kind and both `p` paths
# (`skip_reduction`) of the two published models, small enough for a quick test. (Keras refuses
# NASNetMobile on the torch backend; its generic `NASNet` builds the same graph.)
@pytest.mark.parametrize("skip_reduction", [False, True])
def test_nasnet_cells_give_keras_predictions(skip_reduction, tmp_path):
    from keras.src.applications import nasnet as keras_nasnet

    from lamina.applications import nasnet

    shape = (32, 32, 3)
    sizes = {"penultimate_filters": 96, "num_blocks": 1, "stem_block_filters": 8,
             "skip_reduction": skip_reduction, "default_size": 224}
    keras.utils.clear_session()
    keras.utils.set_random_seed(0)
    reference = keras_nasnet.NASNet(shape, filter_multiplier=2, weights=None, classes=10,
                                    classifier_activation=None, name="nasnet_mobile", **sizes)
    model = _check_predictions_equal_keras(
        reference, lambda **kwargs: nasnet._nasnet(
            **sizes, weights_file="NASNet-mobile", include_top=True, input_tensor=None,
            input_shape=shape, pooling=None, classes=10, classifier_activation=None,
            name="nasnet_mobile", data_format=None, **{"weights": None, **kwargs}),
        shape, tmp_path)
    # The layers Keras leaves unnamed get its automatic names too (`activation_7`, `add_1`, ...);
    # the input's name is numbered per session by both libraries.
    assert [layer.name for layer in model.layers[1:]] == \
        [layer.name for layer in reference.layers[1:]]


def _check_predictions_equal_keras(reference, build, shape, tmp_path):
    """`build(weights=...)` gives Keras's parameter counts and names, and Keras's predictions
    with Keras's weights copied in by position and loaded from a Keras weights file by name.
    Returns the model built."""
    from keras.src.legacy.saving import legacy_h5_format
    import h5py

    model = build()
    assert _counts(model) == _keras_counts(reference)
    assert [layer.name for layer in model.layers if layer.get_weights()] == \
        [layer.name for layer in reference.layers if layer.weights]

    rng = np.random.default_rng(0)
    reference.set_weights(_perturbed_keras_weights(reference, rng))
    model.set_weights(_keras_weights(reference))
    images = rng.uniform(0, 255, size=(2,) + shape).astype(np.float32)
    expected = keras.ops.convert_to_numpy(reference(images, training=False))
    model.eval()
    with torch.no_grad():
        got = model(torch.as_tensor(images)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4 * np.abs(expected).max())

    # Keras's weights files (the legacy layout of the published .h5 files) load by layer name.
    path = tmp_path / "keras_weights.h5"
    with h5py.File(path, "w") as file:
        legacy_h5_format.save_weights_to_hdf5_group(file, reference)
    loaded = build(weights=str(path))
    loaded.eval()
    with torch.no_grad():
        np.testing.assert_allclose(loaded(torch.as_tensor(images)).numpy(), expected,
                                   rtol=1e-4, atol=1e-4 * np.abs(expected).max())
    return model


# Lamina module -> Keras module whose `preprocess_input` it must equal.
FAMILIES = {family: family for family in (
    "efficientnet", "efficientnet_v2", "mobilenet", "mobilenet_v2", "mobilenet_v3", "densenet",
    "xception", "inception_v3", "inception_resnet_v2", "nasnet", "convnext", "resnet",
    "resnet_v2")} | {"vgg": "vgg16"}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_preprocess_input_equals_keras(family):
    ours = importlib.import_module(f"lamina.applications.{family}")
    theirs = importlib.import_module(f"keras.applications.{FAMILIES[family]}")
    images = np.random.default_rng(1).uniform(0, 255, size=(2, 5, 6, 3)).astype(np.float32)
    expected = keras.ops.convert_to_numpy(theirs.preprocess_input(images.copy()))
    np.testing.assert_allclose(ours.preprocess_input(images.copy()), expected, rtol=1e-6)
    tensor = ours.preprocess_input(torch.as_tensor(images))
    np.testing.assert_allclose(np.asarray(tensor), expected, rtol=1e-6)


@pytest.mark.parametrize("mode", ["caffe", "tf", "torch"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_imagenet_preprocess_input_modes_equal_keras(mode, data_format):
    from keras.src.applications import imagenet_utils as keras_utils

    rng = np.random.default_rng(2)
    shape = (2, 3, 4, 5) if data_format == "channels_first" else (2, 4, 5, 3)
    images = rng.integers(0, 256, size=shape).astype(np.uint8)
    expected = keras_utils.preprocess_input(images.astype(np.float32), data_format=data_format,
                                            mode=mode)
    got = imagenet_utils.preprocess_input(images, data_format=data_format, mode=mode)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-4)
    one = imagenet_utils.preprocess_input(torch.as_tensor(images[0]), data_format=data_format,
                                          mode=mode)
    np.testing.assert_allclose(one.numpy(), expected[0], rtol=1e-5, atol=1e-4)
    assert images.dtype == np.uint8 and images.max() > 1   # the input is left alone


def test_preprocess_input_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"`mode` must be one of .*Received: mode='pytorch'"):
        imagenet_utils.preprocess_input(np.zeros((1, 4, 4, 3)), mode="pytorch")
    with pytest.raises(ValueError, match=r"3 color channels on axis 3 .*shape \(1, 4, 4, 4\)"):
        imagenet_utils.preprocess_input(np.zeros((1, 4, 4, 4)))


def _write_class_index(folder) -> tuple[dict, str]:
    index = {str(i): [f"n{i:08d}", f"class_{i}"] for i in range(1000)}
    os.makedirs(folder / "models", exist_ok=True)
    path = folder / "models" / "imagenet_class_index.json"
    path.write_text(json.dumps(index))
    return index, hashlib.md5(path.read_bytes()).hexdigest()


def test_decode_predictions_equals_keras(tmp_path, monkeypatch):
    from keras.src.applications import imagenet_utils as keras_utils

    # The download code uses Keras's address and hash; the test serves its own small file.
    assert imagenet_utils.CLASS_INDEX_URL == keras_utils.CLASS_INDEX_PATH
    index, digest = _write_class_index(tmp_path)
    monkeypatch.setenv("LAMINA_DATA_DIR", str(tmp_path))
    monkeypatch.setattr(imagenet_utils, "CLASS_INDEX_HASH", digest)
    monkeypatch.setattr(imagenet_utils, "_class_index", None)
    monkeypatch.setattr(keras_utils, "CLASS_INDEX", index)

    preds = np.random.default_rng(3).dirichlet(np.ones(1000), size=3).astype(np.float32)
    expected = keras_utils.decode_predictions(preds, top=4)
    for decode in (imagenet_utils.decode_predictions,
                   applications.efficientnet.decode_predictions):
        got = decode(torch.as_tensor(preds), top=4)
        assert [[item[:2] for item in row] for row in got] == \
            [[item[:2] for item in row] for row in expected]
        np.testing.assert_allclose([[item[2] for item in row] for row in got],
                                   [[item[2] for item in row] for row in expected])
    with pytest.raises(ValueError, match=r"shape \(samples, 1000\).*\(3, 10\)"):
        imagenet_utils.decode_predictions(preds[:, :10])


def test_imagenet_weights_error_names_keras_file(tmp_path, monkeypatch):
    monkeypatch.setenv("LAMINA_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("HOME", str(tmp_path))
    with pytest.raises(ValueError, match=r"keras-applications/efficientnetb0_notop\.h5"):
        applications.EfficientNetB0(weights="imagenet", include_top=False)
    with pytest.raises(ValueError, match=r"`alpha` must be one of .*Received: alpha=0\.6"):
        applications.MobileNetV2(weights="imagenet", alpha=0.6)
    with pytest.raises(ValueError, match=r"InceptionV3 needs a known image size"):
        applications.InceptionV3(include_top=False)
    with pytest.raises(ValueError, match=r"NASNetMobile needs a known image size.*\(224, 224, 3\)"):
        applications.NASNetMobile(include_top=False, input_shape=(None, None, 3))
    with pytest.raises(ValueError, match=r"`name` must contain 'convnext_tiny'"):
        applications.ConvNeXtTiny(weights="imagenet", name="tiny")


def test_convnext_stochastic_depth_and_layer_scale():
    from lamina.applications._blocks import LayerScale, StochasticDepth

    torch.manual_seed(0)
    model = applications.ConvNeXtTiny(input_shape=(32, 32, 3), include_top=False,
                                      pooling="avg", drop_path_rate=0.5)
    images = torch.rand(8, 32, 32, 3) * 255
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(images), model(images))
    model.train()
    with torch.no_grad():
        assert not torch.allclose(model(images), model(images))
    drop = StochasticDepth(0.25)
    x = torch.ones(4000, 3)
    kept = drop(x, training=True)
    assert all(min(abs(v), abs(v - 1 / 0.75)) < 1e-6 for v in kept[:, 0].unique().tolist())
    assert abs(kept.mean().item() - 1.0) < 0.05          # unbiased in expectation
    for layer in (drop, LayerScale(1e-6, 3)):
        clone = type(layer).from_config(layer.get_config())
        assert clone.get_config() == layer.get_config()
    with pytest.raises(ValueError, match=r"drop_path_rate=1\.0"):
        StochasticDepth(1.0)
