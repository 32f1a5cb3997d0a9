"""lamina.transforms: ToTensor as torchvision's, Normalize equal to its formula, Compose, and
the sheet's ImageNet preprocessing."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from lamina import transforms

IMAGENET_MEAN = [0.485, 0.456, 0.406]
IMAGENET_STD = [0.229, 0.224, 0.225]


def rgb_image(height=4, width=5, seed=0):
    return np.random.default_rng(seed).integers(0, 256, size=(height, width, 3), dtype=np.uint8)


def test_the_sheets_imagenet_preprocessing_runs_and_equals_the_formula():
    preprocess = transforms.Compose([
        transforms.ToTensor(),
        transforms.Normalize(mean=IMAGENET_MEAN, std=IMAGENET_STD),
    ])
    image = rgb_image()
    out = preprocess(image)
    assert out.shape == (3, 4, 5) and out.dtype == torch.float32
    expected = (image.astype(np.float64) / 255 - IMAGENET_MEAN) / IMAGENET_STD
    np.testing.assert_allclose(out.numpy(), expected.transpose(2, 0, 1), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(preprocess(Image.fromarray(image)).numpy(), out.numpy())


@pytest.mark.parametrize("picture,expected", [
    (np.array([[[0, 255]]], dtype=np.uint8), [[[0.0]], [[1.0]]]),
    (np.array([[0, 51], [102, 255]], dtype=np.uint8), [[[0.0, 0.2], [0.4, 1.0]]]),
    (np.array([[[0.5, 2.0]]], dtype=np.float32), [[[0.5]], [[2.0]]]),
    (Image.fromarray(np.array([[0, 255]], dtype=np.uint8)), [[[0.0, 1.0]]]),
    (Image.fromarray(np.array([[0, 1]], dtype=bool)), [[[0.0, 1.0]]]),
], ids=["uint8_hwc", "uint8_hw", "float_not_scaled", "pil_grayscale", "pil_1bit"])
def test_to_tensor_is_chw_and_scales_8_bit_images(picture, expected):
    out = transforms.ToTensor()(picture)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-6)


@pytest.mark.parametrize("shape", [(3, 4, 5), (2, 3, 4, 5)], ids=["image", "batch"])
def test_normalize_equals_the_formula_per_channel(shape):
    x = torch.rand(shape, dtype=torch.float64)
    mean, std = torch.tensor(IMAGENET_MEAN, dtype=torch.float64), torch.tensor(IMAGENET_STD,
                                                                               dtype=torch.float64)
    out = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)(x)
    for c in range(3):
        torch.testing.assert_close(out[..., c, :, :], (x[..., c, :, :] - mean[c]) / std[c])
    assert out.dtype == torch.float64


def test_normalize_in_place_and_one_value_for_all_channels():
    x = torch.rand(3, 2, 2)
    expected = (x - 0.5) / 0.25
    returned = transforms.Normalize(0.5, 0.25, inplace=True)(x)
    assert returned is x
    torch.testing.assert_close(x, expected)


def test_normalize_gradcheck_and_module():
    normalize = transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)
    assert isinstance(normalize, torch.nn.Module)
    x = torch.rand(3, 2, 2, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(normalize, (x,))
    assert "mean=[0.485, 0.456, 0.406]" in repr(normalize)


def test_compose_applies_in_order():
    pipeline = transforms.Compose([lambda v: v + 1, lambda v: v * 10])
    assert pipeline(1) == 20
    assert repr(transforms.Compose([transforms.ToTensor()])) == "Compose(\n    ToTensor()\n)"


BAD = [
    (lambda: transforms.Normalize([0.5], [0.0]), ValueError, r"`std` must not contain zeros"),
    (lambda: transforms.Normalize("mean", [1.0]), TypeError,
     r"`mean` must be a number or a sequence of numbers"),
    (lambda: transforms.Normalize([0.5], [1.0])(np.zeros((1, 2, 2))), TypeError,
     r"Normalize expects a tensor; received ndarray. Convert images with ToTensor\(\) first"),
    (lambda: transforms.Normalize([0.5], [1.0])(torch.zeros(1, 2, 2, dtype=torch.uint8)),
     TypeError, r"expects a float tensor; received dtype torch.uint8"),
    (lambda: transforms.Normalize([0.5], [1.0])(torch.zeros(2, 2)), ValueError,
     r"expects an image of shape \(..., C, H, W\). Received a tensor of shape \(2, 2\)"),
    (lambda: transforms.Normalize(IMAGENET_MEAN, IMAGENET_STD)(torch.zeros(4, 2, 2)), ValueError,
     r"has 3 `mean` values but the image has 4 channels"),
    (lambda: transforms.ToTensor()(torch.zeros(2, 2, 3)), TypeError,
     r"expects a PIL image or a numpy array \(H, W, C\). Received: Tensor"),
    (lambda: transforms.ToTensor()(np.zeros((1, 2, 2, 3))), ValueError,
     r"expects an image of shape \(H, W\) or \(H, W, C\). Received an array of shape"),
    (lambda: transforms.Compose(transforms.ToTensor()), TypeError,
     r"Compose takes a list of transforms"),
    (lambda: transforms.Compose([transforms.ToTensor(), 3]), TypeError,
     r"the one at index 1 is 3 of type int"),
]


@pytest.mark.parametrize("call,error,match", BAD)
def test_bad_input(call, error, match):
    with pytest.raises(error, match=match):
        call()
