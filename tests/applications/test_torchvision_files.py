"""A torchvision ResNet-18 checkpoint, in torchvision's own key layout, loads into the zoo's
resnet18 and predicts what torchvision's architecture predicts.

torchvision cannot be installed here, so the file is not torchvision's: its keys, shapes and
order are written out below from torchvision's `models/resnet.py` (`ResNet.__init__`,
`BasicBlock`, `_make_layer`'s `downsample = Sequential(conv1x1, norm_layer)`), checked against
torchvision's documented parameter count for resnet18 (11,689,512), filled with random values
and written with `torch.save`, the writer torchvision's `.pth` files come from. That is the
limit of this test: a layout torchvision changed would go unnoticed until someone loads a real
file. The reference forward pass is tests/applications/torch_reference.py, which must accept
the file with `strict=True` (so it too has exactly torchvision's layout).
"""

from __future__ import annotations

import torch

from lamina import applications

from . import torch_reference

BATCH_NORM = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def _conv(name: str, out: int, inp: int, k: int) -> list[tuple[str, tuple[int, ...]]]:
    return [(f"{name}.weight", (out, inp, k, k))]


def _bn(name: str, channels: int) -> list[tuple[str, tuple[int, ...]]]:
    return [(f"{name}.{suffix}", () if suffix == "num_batches_tracked" else (channels,))
            for suffix in BATCH_NORM]


def _basic_block(name: str, inp: int, out: int, downsample: bool) -> list:
    keys = _conv(f"{name}.conv1", out, inp, 3) + _bn(f"{name}.bn1", out)
    keys += _conv(f"{name}.conv2", out, out, 3) + _bn(f"{name}.bn2", out)
    if downsample:
        keys += _conv(f"{name}.downsample.0", out, inp, 1) + _bn(f"{name}.downsample.1", out)
    return keys


# torchvision.models.resnet18().state_dict(): names, shapes and order.
TORCHVISION_RESNET18 = (
    _conv("conv1", 64, 3, 7) + _bn("bn1", 64)
    + _basic_block("layer1.0", 64, 64, False) + _basic_block("layer1.1", 64, 64, False)
    + _basic_block("layer2.0", 64, 128, True) + _basic_block("layer2.1", 128, 128, False)
    + _basic_block("layer3.0", 128, 256, True) + _basic_block("layer3.1", 256, 256, False)
    + _basic_block("layer4.0", 256, 512, True) + _basic_block("layer4.1", 512, 512, False)
    + [("fc.weight", (1000, 512)), ("fc.bias", (1000,))]
)


def _torchvision_file(path) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    state = {}
    for key, shape in TORCHVISION_RESNET18:
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(1000)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=generator) + 0.5
        elif key.endswith(".weight") and len(shape) == 1:  # a batch-norm gamma
            state[key] = torch.rand(shape, generator=generator) + 0.5
        else:
            fan_in = max(1, int(torch.tensor(shape[1:]).prod())) if len(shape) > 1 else 10
            state[key] = torch.randn(shape, generator=generator) / fan_in ** 0.5
    torch.save(state, path)
    return state


def test_the_layout_is_torchvisions_resnet18():
    params = sum(int(torch.tensor(shape).prod()) for key, shape in TORCHVISION_RESNET18
                 if not key.endswith(("running_mean", "running_var", "num_batches_tracked")))
    assert params == 11_689_512  # torchvision's documented num_params for ResNet18_Weights
    assert len(TORCHVISION_RESNET18) == 122


def test_a_torchvision_resnet18_file_predicts_as_torchvisions_architecture(tmp_path):
    path = tmp_path / "resnet18-f37072fd.pth"
    state = _torchvision_file(path)
    reference = torch_reference.resnet(18)
    reference.load_state_dict(state, strict=True)
    reference.eval()
    model = applications.resnet18(data_format="channels_first", classifier_activation=None)
    model.load_weights(str(path))
    model.eval()
    images = torch.randn(2, 3, 64, 48, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(model(images), reference(images), rtol=1e-4, atol=1e-4)
