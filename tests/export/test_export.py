"""`Model.export` (ONNX checked in onnxruntime, torch.export programs reloaded by torch) and
weights files (`.safetensors`, torch `.pt`/`.pth`) on the zoo's models, against `predict`, the
plain-torch readers, and reference torch modules; hostile and mismatched files leave the model
unchanged."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
import torch

import lamina
from lamina import applications
from lamina.export import map_keys
from lamina.errors import FileFormatError, UnsafeLoadError

from tests.applications import torch_reference
from tests.applications.cases import BY_NAME

ort = pytest.importorskip("onnxruntime")
safetensors_torch = pytest.importorskip("safetensors.torch")

# Small builds of zoo models, and the input signature of those whose time axis a loop fixes.
SMALL = {
    "LeNet5": {},
    "resnet18": {"input_shape": (32, 32, 3), "num_classes": 3},
    "GPT": {},
    "LSTMModel": {},
}
SIGNATURES = {"LSTMModel": [(None, 5, 4)]}


def _zoo(name: str, seed: int = 0) -> tuple[lamina.Model, np.ndarray]:
    torch.manual_seed(seed)
    case = BY_NAME[name]
    model = applications.create_model(name, **{**case.kwargs, **SMALL[name]})
    x, _ = case.make_data(np.random.default_rng(seed))
    if name == "resnet18":
        x = np.random.default_rng(seed).normal(size=(4, 32, 32, 3)).astype(np.float32)
    model.eval()
    return model, x[:3]


def _snapshot(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_unchanged(model: torch.nn.Module, before: dict[str, torch.Tensor]) -> None:
    after = model.state_dict()
    assert set(after) == set(before)
    for key, value in before.items():
        assert torch.equal(after[key], value), key


# ------------------------------------------------------------------------------ export formats

def test_onnx_export_runs_in_onnxruntime_like_predict_at_any_batch_size(tmp_path):
    # One zoo model: torch's ONNX exporter takes ~10 s a model on a shared CPU.
    model, x = _zoo("resnet18")
    path = tmp_path / "model.onnx"
    model.export(str(path), verbose=False)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (graph_input,) = session.get_inputs()
    assert graph_input.shape[0] == "batch"  # dynamic, not the traced size
    for batch in (x, x[:1]):
        (got,) = session.run(None, {graph_input.name: batch})
        np.testing.assert_allclose(got, model.predict(batch, verbose=0), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["LeNet5", "GPT", "LSTMModel"])
def test_torch_export_program_reloads_and_matches_predict(tmp_path, name):
    model, x = _zoo(name)
    path = tmp_path / "model.pt2"
    model.export(str(path), format="torch", verbose=False, input_signature=SIGNATURES.get(name))
    program = torch.export.load(str(path)).module()
    for batch in (x, x[:1]):
        got = program(torch.as_tensor(batch)).detach().numpy()
        np.testing.assert_allclose(got, model.predict(batch, verbose=0), rtol=1e-5, atol=1e-6)
    assert model.training is False


def test_export_keeps_the_training_flag_and_names_bad_formats(tmp_path):
    model, x = _zoo("LeNet5")
    model.train()
    model.export(str(tmp_path / "m.pt2"), verbose=False)
    assert model.training
    with pytest.raises(ValueError, match=r"Name the file `\.onnx` or `\.pt2`.*filepath='.*m\.bin'"):
        model.export(str(tmp_path / "m.bin"))
    with pytest.raises(ValueError, match="Lamina runs on torch, with no TensorFlow"):
        model.export(str(tmp_path / "m"), format="tf_saved_model")
    with pytest.raises(ValueError, match=r"input_signature entry 0 must be a shape tuple"):
        model.export(str(tmp_path / "m.pt2"), input_signature=[(None, -1, 32, 1)])


def test_export_of_a_model_without_known_inputs_says_how_to_give_them(tmp_path):
    class Subclassed(lamina.Model):
        def __init__(self):
            super().__init__()
            self.dense = lamina.layers.Dense(2)

        def call(self, inputs):
            return self.dense(inputs)

    model = Subclassed()
    with pytest.raises(ValueError, match=r"no known input shape.*input_signature=\[\(None"):
        model.export(str(tmp_path / "m.pt2"))
    model.export(str(tmp_path / "m.pt2"), input_signature=[(None, 3)], verbose=False)
    program = torch.export.load(str(tmp_path / "m.pt2")).module()
    x = torch.randn(5, 3)
    torch.testing.assert_close(program(x), model(x))


# ------------------------------------------------------------------------------ safetensors

@pytest.mark.parametrize("name", list(SMALL))
def test_safetensors_round_trip_and_plain_torch_reads_the_file(tmp_path, name):
    model, x = _zoo(name, seed=0)
    path = str(tmp_path / "weights.safetensors")
    model.save_weights(path)
    fresh, _ = _zoo(name, seed=1)
    assert not np.allclose(fresh.predict(x, verbose=0), model.predict(x, verbose=0))
    fresh.load_weights(path)
    np.testing.assert_array_equal(fresh.predict(x, verbose=0), model.predict(x, verbose=0))
    # The file is a torch state dict: safetensors + load_state_dict, no Lamina on the read side.
    other, _ = _zoo(name, seed=2)
    other.load_state_dict(safetensors_torch.load_file(path), strict=True)
    np.testing.assert_array_equal(other.predict(x, verbose=0), model.predict(x, verbose=0))


def test_safetensors_overwrite_false_and_unbuilt_models_are_refused(tmp_path):
    model, _ = _zoo("LeNet5")
    path = str(tmp_path / "w.safetensors")
    model.save_weights(path)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        model.save_weights(path, overwrite=False)
    unbuilt = lamina.Sequential([lamina.layers.Dense(2)])
    with pytest.raises(ValueError, match="not built"):
        unbuilt.save_weights(str(tmp_path / "u.safetensors"))


def _tampered(tmp_path, model, change) -> str:
    state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    change(state)
    path = str(tmp_path / "tampered.safetensors")
    safetensors_torch.save_file(state, path)
    return path


@pytest.mark.parametrize("change, message", [
    (lambda s: s.update({"dense.kernel": torch.zeros(3, 3)}),
     r"'dense.kernel' has shape \(3, 3\) in the file but \(\d+, \d+\) in the model"),
    (lambda s: s.pop("dense_1.bias"), r"the model's dense_1.bias are not in the file"),
    (lambda s: s.update({"extra.weight": torch.zeros(1)}), r"the file's extra.weight are not"),
    (lambda s: s["dense.bias"].__setitem__(0, float("nan")), r"'dense.bias' holds NaN"),
    (lambda s: s.update({"dense.bias": s["dense.bias"].to(torch.int64)}),
     r"'dense.bias' is stored as torch.int64"),
    (lambda s: s.update({"dense.bias": torch.full_like(s["dense.bias"], 1e300, dtype=torch.float64)}),
     r"'dense.bias' holds values beyond the range of torch.float32"),
], ids=["shape", "missing", "extra", "nan", "dtype", "overflow"])
def test_a_bad_safetensors_file_changes_nothing(tmp_path, change, message):
    model, _ = _zoo("LeNet5")
    path = _tampered(tmp_path, model, change)
    target, _ = _zoo("LeNet5", seed=3)
    before = _snapshot(target)
    with pytest.raises(FileFormatError, match=message):
        target.load_weights(path)
    _assert_unchanged(target, before)


def test_skip_mismatch_loads_the_tensors_that_fit(tmp_path):
    model, _ = _zoo("LeNet5")
    path = _tampered(tmp_path, model, lambda s: s.update({"dense.kernel": torch.zeros(3, 3)}))
    target, _ = _zoo("LeNet5", seed=3)
    with pytest.warns(UserWarning, match="'dense.kernel' has shape"):
        target.load_weights(path, skip_mismatch=True)
    assert torch.equal(target.state_dict()["conv2d.kernel"], model.state_dict()["conv2d.kernel"])
    assert not torch.equal(target.state_dict()["dense.kernel"], model.state_dict()["dense.kernel"])


def test_truncated_and_foreign_files_are_file_format_errors(tmp_path):
    model, _ = _zoo("LeNet5")
    path = str(tmp_path / "w.safetensors")
    model.save_weights(path)
    data = (tmp_path / "w.safetensors").read_bytes()
    before = _snapshot(model)
    for name, payload in [("cut.safetensors", data[: len(data) // 2]),
                          ("header.safetensors", b"\xff" * 8 + data[8:]),
                          ("text.pt", b"not a checkpoint")]:
        bad = tmp_path / name
        bad.write_bytes(payload)
        with pytest.raises(FileFormatError, match="not a readable"):
            model.load_weights(str(bad))
    _assert_unchanged(model, before)
    with pytest.raises(FileNotFoundError):
        model.load_weights(str(tmp_path / "missing.safetensors"))


class _RunsCode:
    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (self.marker,))


def test_a_pickle_that_runs_code_is_refused_unrun(tmp_path):
    marker = str(tmp_path / "pwned")
    path = str(tmp_path / "evil.pt")
    torch.save({"dense.bias": torch.zeros(2), "payload": _RunsCode(marker)}, path)
    model, _ = _zoo("LeNet5")
    before = _snapshot(model)
    with pytest.raises(UnsafeLoadError, match="asks to load GLOBAL os.makedirs.*never unpickles"):
        model.load_weights(path)
    assert not os.path.exists(marker)
    _assert_unchanged(model, before)


def test_torch_checkpoints_load_plain_and_nested(tmp_path):
    model, x = _zoo("LeNet5")
    plain, nested = str(tmp_path / "plain.pth"), str(tmp_path / "nested.pt")
    torch.save(model.state_dict(), plain)
    torch.save({"epoch": 3, "state_dict": model.state_dict()}, nested)
    for path in (plain, nested):
        fresh, _ = _zoo("LeNet5", seed=4)
        fresh.load_weights(path)
        np.testing.assert_array_equal(fresh.predict(x, verbose=0), model.predict(x, verbose=0))


# ---------------------------------------------------------------- foreign checkpoints, mapped

def _torchvision_resnet18(path: str) -> torch.nn.Module:
    torch.manual_seed(0)
    reference = torch_reference.resnet(18, num_classes=5)
    torch_reference.randomize_batch_norm_statistics(reference)
    reference.eval()
    torch.save({"module." + k: v for k, v in reference.state_dict().items()}, path)
    return reference


def _assert_like_reference(model, reference):
    images = torch.randn(2, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(model(images.permute(0, 2, 3, 1)), reference(images),
                                   rtol=1e-4, atol=1e-4)


def test_a_torchvision_resnet_checkpoint_loads_into_the_zoo_resnet(tmp_path):
    path = str(tmp_path / "resnet18.pth")
    reference = _torchvision_resnet18(path)
    model = applications.resnet18(num_classes=5)
    model.load_weights(path)
    _assert_like_reference(model, reference)


# transformers' ResNetForImageClassification names, written from its module tree:
# resnet.embedder.embedder.{convolution,normalization}, resnet.encoder.stages[s].layers[b]
# .{shortcut,layer[i]}.{convolution,normalization}, classifier = Sequential(Flatten, Linear).
def _to_huggingface(key: str) -> str:
    rules = [
        (r"^conv1\.", "resnet.embedder.embedder.convolution."),
        (r"^bn1\.", "resnet.embedder.embedder.normalization."),
        (r"^layer(\d)\.(\d+)\.downsample\.0\.",
         lambda m: f"resnet.encoder.stages.{int(m[1]) - 1}.layers.{m[2]}.shortcut.convolution."),
        (r"^layer(\d)\.(\d+)\.downsample\.1\.",
         lambda m: f"resnet.encoder.stages.{int(m[1]) - 1}.layers.{m[2]}.shortcut.normalization."),
        (r"^layer(\d)\.(\d+)\.conv(\d)\.",
         lambda m: f"resnet.encoder.stages.{int(m[1]) - 1}.layers.{m[2]}.layer.{int(m[3]) - 1}"
                   ".convolution."),
        (r"^layer(\d)\.(\d+)\.bn(\d)\.",
         lambda m: f"resnet.encoder.stages.{int(m[1]) - 1}.layers.{m[2]}.layer.{int(m[3]) - 1}"
                   ".normalization."),
        (r"^fc\.", "classifier.1."),
    ]
    for pattern, replacement in rules:
        if re.search(pattern, key):
            return re.sub(pattern, replacement, key)
    raise AssertionError(key)


def test_a_huggingface_resnet_checkpoint_loads_with_its_key_map(tmp_path):
    reference = _torchvision_resnet18(str(tmp_path / "unused.pth"))
    path = str(tmp_path / "model.safetensors")
    safetensors_torch.save_file(
        {_to_huggingface(k): v.contiguous() for k, v in reference.state_dict().items()}, path)
    model = applications.resnet18(num_classes=5)
    before = _snapshot(model)
    with pytest.raises(FileFormatError, match="pass key_map="):
        model.load_weights(path)
    _assert_unchanged(model, before)
    model.load_weights(path, key_map="huggingface-resnet")
    _assert_like_reference(model, reference)


def test_a_checkpoint_of_another_depth_changes_nothing(tmp_path):
    torch.manual_seed(0)
    path = str(tmp_path / "resnet34.pth")
    torch.save(torch_reference.resnet(34, num_classes=5).state_dict(), path)
    model = applications.resnet18(num_classes=5)
    before = _snapshot(model)
    with pytest.raises(FileFormatError, match="does not fit model"):
        model.load_weights(path)
    _assert_unchanged(model, before)


def test_key_maps_by_prefix_function_and_bad_values():
    state = {"module.backbone.a": torch.zeros(1), "head.b": torch.ones(1)}
    assert set(map_keys(state, {"backbone.": ""})) == {"a", "head.b"}
    assert set(map_keys(state, lambda k: None if k.startswith("head") else k)) == {
        "backbone.a"}
    with pytest.raises(ValueError, match="Unknown key_map 'timm'.*'huggingface-resnet'"):
        map_keys(state, "timm")
    with pytest.raises(FileFormatError, match="Two checkpoint tensors map to the key 'x'"):
        map_keys(state, lambda k: "x")
