"""A catalogue of bad calls: each raises a clear error and leaves the model exactly as it was
(weights, optimizer state, BatchNormalization statistics), compared with copies taken before."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import lamina as keras
from lamina import layers
from lamina.errors import DataError, NonFiniteError, ShapeError, UnknownNameError

N, FEATURES, CLASSES = 64, 4, 3
RNG = np.random.default_rng(0)
X = RNG.normal(size=(N, FEATURES)).astype("float32")
Y = RNG.integers(0, CLASSES, N)


def with_value(array, index, value, dtype=None):
    copy = np.array(array, dtype=dtype or np.asarray(array).dtype)
    copy[index] = value
    return copy


def model():
    torch.manual_seed(0)
    net = keras.Sequential([layers.Dense(8, input_shape=(FEATURES,)), layers.BatchNormalization(),
                            layers.Dropout(0.3), layers.Dense(CLASSES)])
    net.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    net.fit(X, Y, batch_size=16, epochs=1, verbose=0)  # optimizer state and moving stats exist
    return net


def fit(**kwargs):
    arguments = {"x": X, "y": Y, "batch_size": 16, "verbose": 0, **kwargs}
    return lambda net: net.fit(**arguments)


def snapshot(net):
    weights = {k: v.detach().clone() for k, v in net.state_dict().items()}
    state = net.optimizer.state_dict()
    moments = {(index, name): value.clone() for index, entry in state["optimizer"]["state"].items()
               for name, value in entry.items()}
    return weights, moments, state["iterations"]


def assert_same(before, after):
    (weights0, moments0, iterations0), (weights1, moments1, iterations1) = before, after
    assert weights0.keys() == weights1.keys() and moments0.keys() == moments1.keys()
    for key in weights0:
        assert torch.equal(weights0[key], weights1[key]), key
    for key in moments0:
        assert torch.equal(moments0[key], moments1[key]), key
    assert iterations0 == iterations1


NAN_LAST = with_value(X, (N - 1, 2), np.nan)
CASES = [
    # fit arguments
    ("batch_size 0", fit(batch_size=0), ValueError, "batch_size=0"),
    ("batch_size negative", fit(batch_size=-5), ValueError, "batch_size=-5"),
    ("batch_size float", fit(batch_size=2.5), ValueError, "positive integer"),
    ("batch_size string", fit(batch_size="32"), TypeError, "batch_size='32'"),
    ("batch_size bool", fit(batch_size=True), ValueError, "batch_size=True"),
    ("epochs negative", fit(epochs=-1), ValueError, "epochs=-1"),
    ("epochs float", fit(epochs=1.5), ValueError, "epochs=1.5"),
    ("steps_per_epoch 0", fit(steps_per_epoch=0), ValueError, "steps_per_epoch=0"),
    ("steps_per_epoch -3", fit(steps_per_epoch=-3), ValueError, "steps_per_epoch=-3"),
    ("validation_steps 0", fit(validation_data=(X, Y), validation_steps=0), ValueError,
     "validation_steps=0"),
    ("validation_freq 0", fit(validation_freq=0), ValueError, "validation_freq=0"),
    ("validation_batch_size 0", fit(validation_batch_size=0), ValueError, "validation_batch_size"),
    ("shuffle nonsense", fit(shuffle="nonsense"), ValueError, "shuffle='nonsense'"),
    ("shuffle int", fit(shuffle=2), ValueError, "True, False or 'batch'"),
    ("initial_epoch negative", fit(initial_epoch=-1), ValueError, "initial_epoch=-1"),
    ("initial_epoch past epochs", fit(initial_epoch=5, epochs=2), ValueError, "epochs=8"),
    ("verbose 3", fit(verbose=3), ValueError, "verbose=3"),
    ("verbose string", fit(verbose="loud"), ValueError, "verbose='loud'"),
    ("validation_split 1", fit(validation_split=1.0), ValueError, "[0, 1)"),
    ("validation_split negative", fit(validation_split=-0.1), ValueError, "validation_split=-0.1"),
    ("class_weight list", fit(class_weight=[1.0, 2.0, 1.0]), TypeError, "dict"),
    ("class_weight string key", fit(class_weight={"a": 1.0}), ValueError, "'a'"),
    ("class_weight negative", fit(class_weight={0: -1.0, 1: 1.0, 2: 1.0}), ValueError,
     "class_weight[0]=-1.0"),
    ("class_weight NaN", fit(class_weight={0: np.nan, 1: 1.0, 2: 1.0}), ValueError, "finite"),
    ("class_weight and sample_weight", fit(class_weight={0: 1.0, 1: 1.0, 2: 1.0},
                                           sample_weight=np.ones(N)), ValueError, "not both"),
    ("class_weight missing class", fit(class_weight={0: 1.0, 1: 1.0}), ValueError, "[2]"),
    # in-memory data
    ("NaN in x", fit(x=with_value(X, (5, 1), np.nan)), DataError, "sample 5"),
    ("+Inf in x", fit(x=with_value(X, (9, 0), np.inf)), DataError, "1 infinite"),
    ("NaN in the last batch of x", fit(x=NAN_LAST), DataError, f"sample {N - 1}"),
    ("NaN label", fit(y=with_value(Y, 7, np.nan, "float32")), DataError, "`y` holds 1 NaN"),
    ("+Inf target", fit(y=with_value(Y, 3, np.inf, "float32")), DataError, "`y` holds 0 NaN and 1"),
    ("NaN sample weight", fit(sample_weight=with_value(np.ones(N), 3, np.nan)), DataError,
     "`sample_weight` holds 1 NaN"),
    ("negative sample weight", fit(sample_weight=with_value(np.ones(N), 4, -2.0)), DataError,
     "must be >= 0"),
    ("label out of range in the last batch", fit(y=with_value(Y, N - 1, CLASSES)), DataError,
     "class label 3 (sample 63), outside [0, 2]"),
    ("negative label", fit(y=with_value(Y, 10, -1)), DataError, "class label -1"),
    ("fractional label", fit(y=with_value(Y, 2, 1.5, "float32")), DataError, "fractional"),
    ("x and y lengths", fit(y=Y[:-1]), DataError, "y has 63"),
    ("sample_weight length", fit(sample_weight=np.ones(N - 2)), DataError, "62 weights"),
    ("wrong feature count", fit(x=X[:, :3]), ShapeError, "(None, 4)"),
    ("wrong rank", fit(x=X[..., None]), ShapeError, "(64, 4, 1)"),
    ("strings in x", fit(x=np.full((N, FEATURES), "a")), DataError, "StringLookup"),
    ("objects in x", fit(x=np.array([[1.0, None, 2.0, 3.0]] * N, dtype=object)), DataError,
     "Python objects"),
    ("ragged x", fit(x=np.array([[1.0, 2.0], [1.0]] * 32, dtype=object)), DataError,
     "pad_sequences"),
    ("list of scalars", fit(x=[[1.0, 2.0], [1.0]] * 32), DataError, "one row per sample"),
    ("complex x", fit(x=X.astype(np.complex64)), DataError, "complex"),
    ("strings in y", fit(y=np.array(["cat", "dog"] * 32)), DataError, "`y` must be a numeric"),
    ("empty x", fit(x=X[:0], y=Y[:0]), DataError, "0 samples"),
    ("x None", fit(x=None), ValueError, "x is None"),
    ("1e38 inputs", fit(x=X * 1e38), NonFiniteError, "as large as"),
    # validation data
    ("validation_data (x,)", fit(validation_data=(X,)), ValueError, "length 1"),
    ("validation_data y None", fit(validation_data=(X, None)), ValueError, "y_val=None"),
    ("validation_data 4-tuple", fit(validation_data=(X, Y, Y, Y)), ValueError, "length 4"),
    ("validation features", fit(validation_data=(X[:, :3], Y)), ShapeError, "validation_data x"),
    ("validation NaN", fit(validation_data=(NAN_LAST, Y)), DataError, "`validation_data x`"),
    ("validation label", fit(validation_data=(X, with_value(Y, 0, 7))), DataError,
     "`validation_data y` holds class label 7"),
    ("validation lengths", fit(validation_data=(X, Y[:10])), DataError, "y has 10"),
    ("NaN in the validation_split part", fit(x=NAN_LAST, validation_split=0.25), DataError,
     "validation_data x"),
    # evaluate, predict, train_on_batch
    ("predict batch_size 0", lambda net: net.predict(X, batch_size=0), ValueError, "batch_size=0"),
    ("evaluate batch_size -1", lambda net: net.evaluate(X, Y, batch_size=-1), ValueError,
     "batch_size=-1"),
    ("evaluate steps 0", lambda net: net.evaluate(X, Y, steps=0), ValueError, "steps=0"),
    ("predict steps -1", lambda net: net.predict(X, steps=-1), ValueError, "steps=-1"),
    ("predict verbose 5", lambda net: net.predict(X, verbose=5), ValueError, "verbose=5"),
    ("predict strings", lambda net: net.predict(np.full((4, FEATURES), "x")), DataError,
     "numeric array"),
    ("evaluate NaN", lambda net: net.evaluate(NAN_LAST, Y, verbose=0), DataError, "sample 63"),
    ("evaluate label", lambda net: net.evaluate(X, with_value(Y, 1, 9), verbose=0), DataError,
     "class label 9"),
    ("train_on_batch NaN", lambda net: net.train_on_batch(NAN_LAST, Y), DataError, "`x` holds"),
    # compile
    ("loss typo", lambda net: net.compile(loss="msee"), UnknownNameError, "'mse'"),
    ("metric typo", lambda net: net.compile(loss="mse", metrics=["acuracy"]), UnknownNameError,
     "'accuracy'"),
    ("weighted metric typo", lambda net: net.compile(loss="mse", weighted_metrics=["maee"]),
     UnknownNameError, "'mae'"),
    ("optimizer typo", lambda net: net.compile(optimizer="adma", loss="mse"), UnknownNameError,
     "'Adam'"),
    ("loss typo in a dict", lambda net: net.compile(loss={"dense": "hinje"}), UnknownNameError,
     "'hinge'"),
]


@pytest.mark.parametrize("description,call,error,fragment", CASES, ids=[c[0] for c in CASES])
def test_bad_call_raises_and_leaves_the_model_unchanged(description, call, error, fragment):
    net = model()
    before = snapshot(net)
    with pytest.raises(error) as raised:
        call(net)
    assert fragment in str(raised.value), str(raised.value)
    assert_same(before, snapshot(net))
    assert np.isfinite(net.predict(X, verbose=0)).all()


def test_the_catalogue_covers_many_bad_inputs():
    assert len(CASES) >= 60


def test_correct_calls_still_pass_every_check():
    net = model()
    history = net.fit(X, Y, batch_size=16, epochs=2, verbose=0, shuffle="batch",
                      validation_split=0.25, class_weight={0: 1.0, 1: 2.0, 2: 0.5},
                      validation_freq=1, steps_per_epoch=2, initial_epoch=1)
    assert len(history.history["loss"]) == 1 and "val_loss" in history.history
    assert net.predict(X, batch_size=7, verbose=0).shape == (N, CLASSES)
    assert np.isfinite(net.evaluate(X, Y, batch_size=5, verbose=0))


def test_evaluate_scans_the_features_only_when_a_result_is_not_finite():
    # The up-front scan of x is one pass over all of it per call; evaluate changes no weights, so
    # it reads x for NaN/Inf only when the loss or a metric comes out non-finite.
    net = model()
    scanned = []

    class RecordScans(torch.utils._python_dispatch.TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func is torch.ops.aten.aminmax.default:
                scanned.append(tuple(args[0].shape))
            return func(*args, **(kwargs or {}))

    with RecordScans():
        net.evaluate(X, Y, verbose=0)
    assert (N, FEATURES) not in scanned and (N,) in scanned  # the labels keep their range check
    with RecordScans(), pytest.raises(DataError, match=r"`x` holds 0 NaN and 1 infinite .*sample 9"):
        net.evaluate(with_value(X, (9, 0), np.inf), Y, verbose=0)
    assert (N, FEATURES) in scanned


def test_evaluate_accepts_non_finite_features_that_the_model_itself_handles():
    # A model whose first layer imputes missing values (NaN -> 0) gives finite results on such
    # data, as in Keras; only a non-finite result makes evaluate look for the bad sample.
    net = keras.Sequential([keras.Input((FEATURES,)), layers.Lambda(torch.nan_to_num),
                            layers.Dense(CLASSES)])
    net.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=["accuracy"])
    imputed = np.nan_to_num(NAN_LAST)
    assert net.evaluate(NAN_LAST, Y, verbose=0) == net.evaluate(imputed, Y, verbose=0)
