"""`load_img`, `img_to_array`, `array_to_img`, `save_img` with Pillow."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from lamina.utils import array_to_img, img_to_array, load_img, save_img


def rgb_image(height=4, width=6, seed=0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3)).astype(np.float32)


def test_save_then_load_round_trips_png_exactly(tmp_path):
    image = rgb_image()
    save_img(tmp_path / "x.png", image, scale=False)
    loaded = img_to_array(load_img(tmp_path / "x.png"))
    assert loaded.shape == (4, 6, 3) and loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, image)


@pytest.mark.parametrize("color_mode, channels", [("grayscale", 1), ("rgb", 3), ("rgba", 4)])
def test_color_modes(tmp_path, color_mode, channels):
    save_img(tmp_path / "x.png", rgb_image(), scale=False)
    image = load_img(str(tmp_path / "x.png"), color_mode=color_mode)
    assert img_to_array(image).shape == (4, 6, channels)


def test_grayscale_uses_pil_luminance(tmp_path):
    Image.new("RGB", (2, 2), (255, 0, 0)).save(tmp_path / "red.png")
    # ITU-R 601-2 luma: L = R * 299/1000 + G * 587/1000 + B * 114/1000 -> 76.245, stored as 76.
    np.testing.assert_array_equal(img_to_array(load_img(tmp_path / "red.png", color_mode="grayscale")), np.full((2, 2, 1), 76.0))


def test_target_size_is_height_width_and_nearest_keeps_values(tmp_path):
    image = np.zeros((2, 2, 3), dtype=np.float32)
    image[0, 1] = 255  # top-right white
    save_img(tmp_path / "x.png", image, scale=False)
    resized = img_to_array(load_img(tmp_path / "x.png", target_size=(4, 6)))
    assert resized.shape == (4, 6, 3)
    np.testing.assert_array_equal(resized[:2, 3:], 255)
    np.testing.assert_array_equal(resized[2:], 0)


def test_keep_aspect_ratio_crops_the_centre(tmp_path):
    image = np.zeros((2, 6, 3), dtype=np.float32)
    image[:, 2:4] = 255  # a white centre band two columns wide
    save_img(tmp_path / "x.png", image, scale=False)
    cropped = img_to_array(load_img(tmp_path / "x.png", target_size=(2, 2), keep_aspect_ratio=True))
    np.testing.assert_array_equal(cropped, 255)  # the centred 2x2 crop is all white
    stretched = img_to_array(load_img(tmp_path / "x.png", target_size=(2, 2)))
    assert stretched.min() == 0


def test_load_from_bytes_io():
    buffer = io.BytesIO()
    Image.new("RGB", (3, 2), (1, 2, 3)).save(buffer, format="PNG")
    buffer.seek(0)
    np.testing.assert_array_equal(img_to_array(load_img(buffer))[0, 0], [1, 2, 3])


def test_channels_first_layouts():
    image = rgb_image()
    pil = array_to_img(image, scale=False)
    first = img_to_array(pil, data_format="channels_first")
    assert first.shape == (3, 4, 6)
    np.testing.assert_array_equal(img_to_array(array_to_img(first, data_format="channels_first", scale=False)), image)


def test_array_to_img_scales_to_0_255():
    pil = array_to_img(np.array([[[-1.0], [0.0], [1.0]]]))
    assert pil.mode == "L"
    np.testing.assert_array_equal(np.asarray(pil), [[0, 127, 255]])


def test_wide_grayscale_values_use_32_bit_mode():
    pil = array_to_img(np.array([[[0.0], [1000.0]]]), scale=False)
    assert pil.mode == "I"
    np.testing.assert_array_equal(np.asarray(pil), [[0, 1000]])


def test_rgba_saved_as_jpeg_is_converted_with_a_warning(tmp_path):
    with pytest.warns(UserWarning, match="JPEG format does not support RGBA"):
        save_img(tmp_path / "x.jpg", np.zeros((2, 2, 4)))
    with Image.open(tmp_path / "x.jpg") as saved:
        assert saved.mode == "RGB"


@pytest.mark.parametrize(
    "call, error, message",
    [
        (lambda path: load_img(path / "missing.png"), FileNotFoundError, "No image file at"),
        (lambda path: load_img(42), TypeError, "`path` must be a file path or an io.BytesIO. Received: int"),
        (lambda path: load_img(path / "x.png", color_mode="hsv"), ValueError, "`color_mode` must be 'grayscale', 'rgb' or 'rgba'"),
        (lambda path: load_img(path / "x.png", target_size=(2, 2), interpolation="cubic"), ValueError, "Invalid interpolation 'cubic'. Supported methods are: nearest"),
        (lambda path: load_img(path / "x.png", target_size=(0, 2)), ValueError, r"`target_size` must be a pair of positive integers \(height, width\)"),
        (lambda path: array_to_img(np.zeros((2, 2))), ValueError, r"rank 3 \(one image\). Received an array of shape \(2, 2\)"),
        (lambda path: array_to_img(np.zeros((2, 2, 2))), ValueError, "Unsupported channel count: 2"),
        (lambda path: img_to_array(np.zeros((1, 2, 2, 3))), ValueError, "Unsupported image shape"),
    ],
)
def test_bad_input_messages(tmp_path, call, error, message):
    save_img(tmp_path / "x.png", rgb_image())
    with pytest.raises(error, match=message):
        call(tmp_path)
