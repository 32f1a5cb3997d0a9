"""What a layer makes of nested call values, now walked by `lamina.tree`: the shapes its `build`
receives, the NumPy values it converts, and the masks it attaches to several outputs. The
oracles are the arrays' own shapes and dtypes and the masks handed to the layer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lamina import layers


class Recorder(layers.Layer):
    """Keeps what `build` and `call` received; returns its input."""

    def build(self, input_shape):
        self.received_shape = input_shape

    def call(self, inputs):
        self.received = inputs
        return inputs


def test_build_receives_each_input_shape_in_the_input_structure():
    first, second = torch.zeros(2, 3), torch.zeros(2, 4, 5)
    recorder = Recorder()
    recorder((first, second))
    # Several inputs' shapes come as a list, even from a tuple (not read as one shape).
    assert recorder.received_shape == [tuple(first.shape), tuple(second.shape)]
    assert all(type(shape) is tuple for shape in recorder.received_shape)

    recorder = Recorder()
    recorder({"zeta": first, "alpha": [second, None]})
    assert recorder.received_shape == {"zeta": (2, 3), "alpha": [(2, 4, 5), None]}
    assert list(recorder.received_shape) == ["zeta", "alpha"]

    recorder = Recorder()
    recorder(first)
    assert recorder.received_shape == (2, 3)


def test_numpy_values_become_tensors_through_the_structure():
    recorder = Recorder()
    recorder(torch.zeros(1))  # built: later calls convert NumPy values
    floats, ints = np.arange(6.0).reshape(2, 3), np.arange(4).reshape(2, 2)
    recorder({"zeta": floats, "alpha": [ints, [1.5, 2.5]], "text": "kept", "none": None})
    received = recorder.received
    assert list(received) == ["zeta", "alpha", "text", "none"]
    assert received["zeta"].dtype == torch.float32  # the layer's dtype, not float64
    np.testing.assert_array_equal(received["zeta"].numpy(), floats)
    assert received["alpha"][0].dtype == torch.from_numpy(ints).dtype
    np.testing.assert_array_equal(received["alpha"][0].numpy(), ints)
    # A list of numbers is one array, as np.asarray reads it.
    assert torch.equal(received["alpha"][1], torch.tensor([1.5, 2.5]))
    assert received["text"] == "kept" and received["none"] is None

    recorder((floats, ints))
    assert isinstance(recorder.received, tuple)
    assert [t.dtype for t in recorder.received] == [torch.float32, torch.from_numpy(ints).dtype]

    recorder(np.float64(2.0))
    assert recorder.received.dtype == torch.float32 and recorder.received.item() == 2.0


class TwoOutputs(layers.Layer):
    """Returns its input twice, in the structure asked for, with the masks it is given."""

    def __init__(self, structure: str, masks, **kwargs):
        super().__init__(**kwargs)
        self.structure, self.masks = structure, masks
        self.supports_masking = True

    def call(self, inputs):
        doubled = inputs * 2
        if self.structure == "dict":
            return {"zeta": inputs, "alpha": doubled}
        return [inputs, doubled]

    def compute_mask(self, inputs, mask=None):
        return self.masks


MASK = torch.tensor([[True, False, True]])
OTHER = torch.tensor([[False, True, True]])


@pytest.mark.parametrize("structure, masks, expected", [
    ("list", MASK, [MASK, MASK]),                      # one mask is each output's
    ("list", [MASK, OTHER], [MASK, OTHER]),
    ("list", [MASK, None], [MASK, None]),
    ("dict", {"zeta": MASK, "alpha": OTHER}, {"zeta": MASK, "alpha": OTHER}),
])
def test_masks_attach_output_by_output(structure, masks, expected):
    outputs = TwoOutputs(structure, masks)(torch.ones(1, 3))
    keys = list(expected) if isinstance(expected, dict) else range(len(expected))
    for key in keys:
        assert getattr(outputs[key], "_keras_mask", None) is expected[key], key
