"""Loading a config never acts: crafted configs that would run torch functions with side effects,
construct arbitrary torch modules, open files named in the config, or allocate tens of GB are
refused before anything happens. Each attack checks the refusal (type and message) and that its
effect did not happen (canary files, global torch state, wall time, peak memory)."""

from __future__ import annotations

import copy
import json
import os
import resource
import threading
import time

import pytest
import torch

import lamina
from lamina import layers
from lamina._load_budget import config_budget, load_budget
from lamina.errors import FileFormatError, UnsafeLoadError
from lamina.models import model_from_json
from lamina.saving import deserialize, serialize


def torch_op_config(function: str, args: list, kwargs: dict | None = None) -> dict:
    """A saved functional model `x -> <function>(*args)`, made by editing a real saved model."""
    x = lamina.Input(shape=(4,))
    config = json.loads(json.dumps(serialize(lamina.Model(x, torch.cat([x, x], dim=-1)))))
    op = next(e for e in config["config"]["layers"] if e["class_name"] == "TorchOp")
    op["config"].update(function=function, args=args, kwargs=kwargs or {})
    return config


def dense_stack_config(units: int, input_dim: int = 4) -> dict:
    model = lamina.Sequential([lamina.Input(shape=(input_dim,)), layers.Dense(2), layers.Dense(2)])
    config = json.loads(json.dumps(serialize(model)))
    for entry in config["config"]["layers"]:
        if entry["class_name"] == "Dense":
            entry["config"]["units"] = units
    return config


INPUT = {"__input__": 0}

# (id, function, args, kwargs, expected error, message fragment); `{canary}` is a path in tmp_path.
TORCH_OP_ATTACKS = [
    ("torch.save writes a file", "torch.save", [INPUT, "{canary}"], {}, UnsafeLoadError,
     "Refusing to load the torch operation 'torch.save'"),
    ("torch.load unpickles", "torch.load", ["{canary}"], {"weights_only": False},
     UnsafeLoadError, "'torch.load': it is not on Lamina's list"),
    ("torch.from_file maps a file", "torch.from_file", ["{canary}", True, 10], {},
     UnsafeLoadError, "'torch.from_file'"),
    ("default device", "torch.set_default_device", ["meta"], {}, UnsafeLoadError,
     "register_keras_serializable"),
    ("RNG state", "torch.manual_seed", [1234], {}, UnsafeLoadError, "'torch.manual_seed'"),
    ("thread count", "torch.set_num_threads", [1], {}, UnsafeLoadError, "set_num_threads"),
    ("size-given allocation", "torch.zeros", [100000, 100000], {}, UnsafeLoadError,
     "'torch.zeros'"),
    ("Tensor.new_empty", "torch.Tensor.new_empty", [INPUT, [100000, 100000]], {},
     UnsafeLoadError, "'torch.Tensor.new_empty'"),
    ("in-place method", "torch.Tensor.copy_", [INPUT, INPUT], {}, UnsafeLoadError,
     "'torch.Tensor.copy_'"),
    ("random numbers", "torch.nn.functional.dropout", [INPUT], {}, UnsafeLoadError,
     "'torch.nn.functional.dropout'"),
    ("another module", "os.system", ["touch {canary}"], {}, UnsafeLoadError,
     "Refusing to load a torch operation from 'os'"),
    ("a torch submodule", "torch.ops.aten.zeros", [[10]], {}, UnsafeLoadError,
     "from 'torch.ops.aten'"),
    ("dunder attribute", "torch.__builtins__", [], {}, UnsafeLoadError,
     "'torch.__builtins__'"),
    ("name that is not a string", ["torch", "cat"], [], {}, FileFormatError,
     "must be a string such as 'torch.cat'"),
    ("out= writes into an input", "torch.add", [INPUT, 1.0], {"out": INPUT}, UnsafeLoadError,
     "may not take 'out'"),
    ("inplace=True by keyword", "torch.nn.functional.relu", [INPUT], {"inplace": True},
     UnsafeLoadError, "may not take 'inplace'"),
    ("inplace=True by position", "torch.nn.functional.relu", [INPUT, True], {},
     UnsafeLoadError, "may not take 'inplace'"),
    ("device chosen by the config", "torch.zeros_like", [INPUT], {"device": "meta"},
     UnsafeLoadError, "may not take 'device'"),
    ("dtype marker naming code", "torch.Tensor.float", [INPUT, {"__dtype__": "os.system"}], {},
     FileFormatError, "malformed '__dtype__'"),
    ("dtype marker not a string", "torch.Tensor.float", [INPUT, {"__dtype__": ["x"]}], {},
     FileFormatError, "malformed '__dtype__'"),
    ("slice marker with objects", "torch.Tensor.__getitem__",
     [INPUT, {"__slice__": [{"a": 1}, None, None]}], {}, FileFormatError,
     "malformed '__slice__'"),
]


def with_canary(value, canary: str):
    return json.loads(json.dumps(value).replace("{canary}", canary))


def torch_state() -> tuple:
    return (torch.get_rng_state(), torch.get_num_threads(), torch.get_default_dtype(),
            torch.empty(0).device)


@pytest.mark.parametrize("case", TORCH_OP_ATTACKS, ids=[c[0] for c in TORCH_OP_ATTACKS])
def test_crafted_torch_op_is_refused_before_it_runs(case, tmp_path):
    _, function, args, kwargs, error, fragment = case
    canary = tmp_path / "canary"
    config = torch_op_config(function, with_canary(args, str(canary)),
                             with_canary(kwargs, str(canary)))
    before, listing = torch_state(), set(os.listdir(tmp_path))
    with pytest.raises(error, match=fragment):
        model_from_json(json.dumps(config))
    assert not canary.exists()
    assert set(os.listdir(tmp_path)) == listing
    after = torch_state()
    assert torch.equal(before[0], after[0]) and before[1:] == after[1:]


def test_torch_op_outside_the_list_cannot_be_saved():
    x = lamina.Input(shape=(3,))
    for function in (torch.special.expit, torch.fft.rfft):
        model = lamina.Model(x, function(x))
        with pytest.raises(ValueError, match="Cannot save the torch operation .*Lamina's list of "
                                             "pure tensor operations"):
            model.get_config()
    model = lamina.Model(x, torch.nn.functional.relu(x, inplace=True))
    with pytest.raises(ValueError, match="may not take 'inplace'"):
        model.get_config()


# --------------------------------------------------------------------- torch.nn modules


@pytest.mark.parametrize("class_name, arguments, fragment", [
    ("Sequential", {}, "'Sequential', which is not a module of torch.nn that loading may rebuild"),
    ("Module", {}, "'Module'"),
    ("Transformer", {}, "'Transformer'"),
    ("SyncBatchNorm", {"num_features": 3}, "'SyncBatchNorm'"),
    ("ZeroPad2d", {"padding": 10**6}, "'ZeroPad2d'"),
    ("LazyLinear", {"out_features": 3}, "'LazyLinear'"),
    ("__class__", {}, "'__class__'"),
    ("Linear", {"in_features": 2, "out_features": 2, "device": "meta"}, "without `device`"),
])
def test_only_listed_torch_modules_are_rebuilt(class_name, arguments, fragment):
    config = {"module": "torch.nn", "class_name": class_name, "kind": "torch_module",
              "config": arguments}
    with pytest.raises(UnsafeLoadError, match=fragment):
        deserialize(config)


def test_unlisted_torch_module_cannot_be_saved():
    model = lamina.Sequential([lamina.Input(shape=(3, 4, 4)), torch.nn.ZeroPad2d(1)])
    with pytest.raises(ValueError, match="Cannot save the torch module nn.ZeroPad2d used as a "
                                         "layer: it is not on Lamina's list"):
        model.get_config()


# --------------------------------------------------------------------- vocabularies are data


LOOKUPS = [
    ("StringLookup", lambda path: layers.StringLookup(vocabulary=path), ["b", "a", "c"]),
    ("IntegerLookup", lambda path: layers.IntegerLookup(vocabulary=path), [7, 3, 11]),
    ("TextVectorization", lambda path: layers.TextVectorization(vocabulary=path), ["b", "a"]),
]


@pytest.mark.parametrize("name, make, tokens", LOOKUPS, ids=[c[0] for c in LOOKUPS])
def test_vocabulary_from_a_path_is_saved_inline_and_a_saved_path_is_refused(
        name, make, tokens, tmp_path):
    path = tmp_path / "vocabulary.txt"
    path.write_text("".join(f"{t}\n" for t in tokens))
    layer = make(str(path))  # user code may still name a file, as in Keras
    config = json.loads(json.dumps(serialize(layer)))
    stored = config["config"]["vocabulary"]
    assert stored[-len(tokens):] == tokens  # the tokens themselves, after the special ones
    assert str(path) not in json.dumps(config)
    path.unlink()  # the saved model no longer needs the file
    clone = deserialize(config)
    assert clone.get_vocabulary() == layer.get_vocabulary()

    path.write_text("".join(f"{t}\n" for t in tokens))
    config["config"]["vocabulary"] = str(path)
    with pytest.raises(UnsafeLoadError, match=f"The saved {name} config gives its vocabulary as "
                                              "the path .* must be stored inside"):
        deserialize(config)
    # The owner of a trusted file can still opt in.
    assert deserialize(config, safe_mode=False).get_vocabulary() == layer.get_vocabulary()


def test_adapted_vocabulary_is_saved_inline():
    layer = layers.StringLookup()
    layer.adapt(["a", "b", "b", "c", "c", "c"])
    config = serialize(layer)["config"]
    assert config["vocabulary"] == ["[UNK]", "c", "b", "a"]


@pytest.mark.parametrize("special", ["/dev/zero", "fifo"])
def test_device_and_fifo_vocabularies_are_never_opened(special, tmp_path):
    path = special
    if special == "fifo":
        path = str(tmp_path / "vocabulary.fifo")
        os.mkfifo(path)
    config = json.loads(json.dumps(serialize(layers.StringLookup(vocabulary=["a"]))))
    config["config"]["vocabulary"] = path
    outcome: list = []

    def load() -> None:
        try:
            deserialize(config)
        except Exception as error:  # noqa: BLE001 - recorded and asserted below
            outcome.append(error)

    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(timeout=10)
    if worker.is_alive() and special == "fifo":
        with open(path, "w"):  # unblock the reader so the thread ends
            pass
    assert not worker.is_alive(), f"loading a vocabulary path {path!r} hung"
    assert len(outcome) == 1 and isinstance(outcome[0], UnsafeLoadError)


# --------------------------------------------------------------------- memory bombs


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def refused_quickly(load, error=FileFormatError, fragment=""):
    """Run `load`, expect the refusal, and return (CPU seconds, peak memory growth in MB)."""
    peak, start = peak_rss_mb(), time.process_time()
    with pytest.raises(error, match=fragment):
        load()
    return time.process_time() - start, peak_rss_mb() - peak


def padded_lookup_config() -> dict:
    config = serialize(lamina.Sequential([
        lamina.Input(shape=(1,), dtype="int64"),
        layers.IntegerLookup(vocabulary=[1, 2], max_tokens=4, pad_to_max_tokens=True,
                             output_mode="multi_hot")]))
    entry = config["config"]["layers"][-1]["config"]
    entry["max_tokens"] = 10**10
    return config


def positional_start_config() -> dict:
    x = lamina.Input(shape=(8, 4))
    config = serialize(lamina.Model(x, layers.PositionalEncoding()(x, start_index=2)))
    entry = next(e for e in config["config"]["layers"] if e["class_name"] == "PositionalEncoding")
    entry["inbound_nodes"][0]["kwargs"]["start_index"] = 10**9
    return config


BOMBS = [
    ("Dense units=100000 twice (40 GB)", lambda: dense_stack_config(100000),
     "creating dense.* exceeds|past 2,147,483,648 values"),
    ("Input(shape=(100000, 100000)) probe", lambda: serialize(lamina.Sequential(
        [lamina.Input(shape=(100, 100)), layers.Flatten()])), "declares an input of shape"),
    ("TorchOp repeat(100000, 100000)", lambda: torch_op_config(
        "torch.Tensor.repeat", [INPUT, 100000, 100000]), "whose output would have shape"),
    ("F.pad by 10**9", lambda: torch_op_config(
        "torch.nn.functional.pad", [INPUT, {"__tuple__": [0, 10**9]}]),
     "whose output would have shape"),
    ("nn.Linear(10**6, 10**6)", lambda: serialize(lamina.Sequential(
        [lamina.Input(shape=(2,)), torch.nn.Linear(2, 3)])), "creating nn.Linear"),
    ("padded vocabulary of 10**10", padded_lookup_config, "whose output would have shape"),
    ("position table from start_index=10**9", positional_start_config,
     "whose output would have shape"),
    # A Lamina layer whose call scales its output by a config number: sized on meta first.
    ("UpSampling2D size=10**4", lambda: layer_call_config(
        (4, 4, 1), layers.UpSampling2D(size=2), size=[10**4, 10**4]), "whose output would have"),
    ("RepeatVector n=10**9, then Flatten", lambda: layer_call_config(
        (4,), layers.RepeatVector(2), layers.Flatten(), n=10**9), "whose output would have"),
    ("CategoryEncoding num_tokens=10**9", lambda: layer_call_config(
        (4,), layers.CategoryEncoding(num_tokens=8, output_mode="multi_hot"), num_tokens=10**9,
        dtype="int64"), "whose output would have"),
    ("Resizing 10**5 x 10**5", lambda: layer_call_config(
        (4, 4, 1), layers.Resizing(8, 8), height=10**5, width=10**5), "whose output would have"),
]


def layer_call_config(input_shape: tuple, layer, *then, dtype: str = "float32",
                      **enlarged) -> dict:
    """A small model whose `layer`'s config numbers are then made huge (`then`: layers after)."""
    config = serialize(lamina.Sequential(
        [lamina.Input(shape=input_shape, dtype=dtype), layer, *then]))
    config["config"]["layers"][0]["config"].update(enlarged)
    return config


def enlarge(config: dict, bomb_id: str) -> dict:
    config = copy.deepcopy(config)
    if bomb_id.startswith("Input("):
        config["config"]["build_input_shape"] = [None, 100000, 100000]
    if bomb_id.startswith("nn.Linear"):
        config["config"]["layers"][-1]["config"].update(in_features=10**6, out_features=10**6)
    return config


@pytest.mark.parametrize("bomb", BOMBS, ids=[b[0] for b in BOMBS])
def test_memory_bombs_are_refused_before_allocating(bomb):
    bomb_id, make, fragment = bomb
    config = enlarge(json.loads(json.dumps(make())), bomb_id)
    seconds, grown_mb = refused_quickly(lambda: model_from_json(json.dumps(config)),
                                        fragment=fragment)
    assert seconds < 5 and grown_mb < 200, (seconds, grown_mb)


def test_file_budget_allows_exactly_what_the_weights_fill():
    model = lamina.Sequential([lamina.Input(shape=(30,)), layers.Dense(40), layers.Dense(5)])
    stored = sum(p.numel() for p in model.parameters())
    assert stored == 30 * 40 + 40 + 40 * 5 + 5
    bigger = dense_stack_config(2000, input_dim=1000)  # 4M more values than the slack
    with load_budget(stored, "model.keras"):
        rebuilt = deserialize(serialize(model))
        assert rebuilt.count_params() == stored
        with pytest.raises(FileFormatError, match="'model.keras' describes a model larger than "
                                                  "the weights it holds: creating dense"):
            deserialize(bigger)


def test_bare_config_bound_and_its_opt_out():
    config = dense_stack_config(300, input_dim=100)  # 100*300+300 + 300*300+300 values
    total = 100 * 300 + 300 + 300 * 300 + 300
    with pytest.raises(FileFormatError, match=r"past 100,000 values, .* pass max_elements=None"):
        model_from_json(json.dumps(config), max_elements=100_000)
    assert model_from_json(json.dumps(config), max_elements=total).count_params() == total
    assert model_from_json(json.dumps(config), max_elements=None).count_params() == total
    # clone_model and other in-memory rebuilds of large models opt out the same way.
    with config_budget(10):
        with pytest.raises(FileFormatError, match="The config describes a model too large"):
            deserialize(config)


def test_rnn_zero_bias_is_charged():
    config = serialize(lamina.Sequential([lamina.Input(shape=(3, 2)), layers.SimpleRNN(4)]))
    weights = 2 * 4 + 4 * 4 + 4
    with config_budget(weights + 4):  # + the zero recurrent bias
        deserialize(config)
    with config_budget(weights), pytest.raises(FileFormatError, match="_zero_bias"):
        deserialize(config)
