"""`load_torch_state_dict` against reference torch modules written in `torch_reference.py`:
the converted lamina model gives the reference's outputs on the same input."""

from __future__ import annotations

import pytest
import torch

from lamina import applications

from . import torch_reference


def _image(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("depth, data_format", [(18, "channels_last"), (18, "channels_first"),
                                                (50, "channels_last")])
def test_torchvision_resnet_state_dict_gives_the_reference_outputs(depth, data_format):
    torch.manual_seed(depth)
    reference = torch_reference.resnet(depth, num_classes=5)
    torch_reference.randomize_batch_norm_statistics(reference)
    reference.eval()
    model = applications.create_model(f"resnet{depth}", num_classes=5, data_format=data_format)
    applications.load_torch_state_dict(model, reference.state_dict())
    images = _image((2, 3, 64, 48))  # a non-square size: strides and padding must match torch's
    x = images if data_format == "channels_first" else images.permute(0, 2, 3, 1)
    with torch.no_grad():
        torch.testing.assert_close(model(x), reference(images), rtol=1e-4, atol=1e-4)


def test_training_mode_matches_torch_too():
    torch.manual_seed(0)
    reference = torch_reference.resnet(18, num_classes=3)
    model = applications.resnet18(num_classes=3, data_format="channels_first")
    applications.load_torch_state_dict(model, reference.state_dict())
    reference.train()
    model.train()
    images = _image((4, 3, 32, 32))
    torch.testing.assert_close(model(images), reference(images), rtol=1e-4, atol=1e-4)
    # Both updated their moving statistics the same way (Keras momentum 0.9 = torch's 0.1).
    torch.testing.assert_close(model.get_layer("bn1").moving_mean, reference.bn1.running_mean)


def test_the_sheets_lenet_maps_by_position_and_reorders_the_flattened_features():
    torch.manual_seed(0)
    reference = torch_reference.lenet5().eval()
    model = applications.LeNet5(classifier_activation=None)
    applications.load_torch_state_dict(model, reference.state_dict())
    images = _image((3, 1, 32, 32))
    with torch.no_grad():
        torch.testing.assert_close(model(images.permute(0, 2, 3, 1)), reference(images),
                                   rtol=1e-5, atol=1e-5)


def test_the_sheets_shortcut_name_and_a_dataparallel_prefix_are_accepted():
    torch.manual_seed(0)
    reference = torch_reference.resnet(18, num_classes=4).eval()
    renamed = {"module." + key.replace("downsample", "shortcut"): value
               for key, value in reference.state_dict().items()}
    model = applications.resnet18(num_classes=4)
    applications.load_torch_state_dict(model, renamed)
    images = _image((1, 3, 32, 32))
    with torch.no_grad():
        torch.testing.assert_close(model(images.permute(0, 2, 3, 1)), reference(images),
                                   rtol=1e-4, atol=1e-4)


def test_mismatches_are_explained():
    torch.manual_seed(0)
    state = torch_reference.resnet(18, num_classes=4).state_dict()
    with pytest.raises(ValueError, match=r"has weights of shapes \[\(512, 10\), \(10,\)\]"):
        applications.load_torch_state_dict(applications.resnet18(num_classes=10), state)
    with pytest.raises(ValueError, match=r"no tensors for layers \['layer1_2_conv1'"):
        applications.load_torch_state_dict(applications.resnet34(num_classes=4), state)
    biased = dict(state)
    biased["conv1.bias"] = torch.zeros(64)
    with pytest.raises(ValueError, match=r"conv1\.bias, which layer 'conv1' \(Conv2D\) does not"):
        applications.load_torch_state_dict(applications.resnet18(num_classes=4), biased)
    missing = {k: v for k, v in state.items() if k != "bn1.running_var"}
    with pytest.raises(ValueError, match=r"needs 'moving_variance', but the state_dict has no "
                                         r"bn1\.running_var"):
        applications.load_torch_state_dict(applications.resnet18(num_classes=4), missing)
    with pytest.raises(ValueError, match=r"are not the model's layer names, and it has 41 modules "
                                         r"with weights where the model has 5"):
        applications.load_torch_state_dict(applications.LeNet5(), state)


def test_layers_without_a_torch_counterpart_are_named():
    model = applications.LSTMModel(4, 8, 1, 2)
    with pytest.raises(ValueError, match=r"also has 'lstm_cell' \(LSTMCell\)"):
        applications.load_torch_state_dict(model, {"fc.weight": torch.zeros(2, 8)})
