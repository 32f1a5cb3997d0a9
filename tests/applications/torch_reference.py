"""Reference torch modules written from the sheet and torchvision's definitions (torchvision is
not installed): the oracles the converter and the architectures are checked against."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class BasicBlock(nn.Module):
    """The sheet's BasicBlock with torchvision's bias-free convolutions and `downsample` name."""

    expansion = 1

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample = None
        if stride != 1 or in_channels != self.expansion * out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, self.expansion * out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(self.expansion * out_channels),
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out = out + (x if self.downsample is None else self.downsample(x))
        return F.relu(out)


class Bottleneck(nn.Module):
    """The sheet's Bottleneck (stride on the 3x3 convolution), bias-free as torchvision's."""

    expansion = 4

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv3 = nn.Conv2d(out_channels, self.expansion * out_channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(self.expansion * out_channels)
        self.downsample = None
        if stride != 1 or in_channels != self.expansion * out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, self.expansion * out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(self.expansion * out_channels),
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        out = out + (x if self.downsample is None else self.downsample(x))
        return F.relu(out)


class ResNet(nn.Module):
    """torchvision's ResNet: stem, four stages, global average pooling, `fc`."""

    def __init__(self, block: type, layers: list[int], num_classes: int = 1000):
        super().__init__()
        self.in_channels = 64
        self.conv1 = nn.Conv2d(3, 64, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        self.layer1 = self._stage(block, 64, layers[0], 1)
        self.layer2 = self._stage(block, 128, layers[1], 2)
        self.layer3 = self._stage(block, 256, layers[2], 2)
        self.layer4 = self._stage(block, 512, layers[3], 2)
        self.fc = nn.Linear(512 * block.expansion, num_classes)

    def _stage(self, block: type, channels: int, count: int, stride: int) -> nn.Sequential:
        blocks = []
        for index in range(count):
            blocks.append(block(self.in_channels, channels, stride if index == 0 else 1))
            self.in_channels = channels * block.expansion
        return nn.Sequential(*blocks)

    def forward(self, x):
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def resnet(depth: int, num_classes: int = 1000) -> ResNet:
    blocks = {18: (BasicBlock, [2, 2, 2, 2]), 34: (BasicBlock, [3, 4, 6, 3]),
              50: (Bottleneck, [3, 4, 6, 3])}
    block, layers = blocks[depth]
    return ResNet(block, layers, num_classes)


def lenet5() -> nn.Sequential:
    """The sheet's LeNet-5, verbatim."""
    return nn.Sequential(
        nn.Conv2d(1, 6, 5), nn.Sigmoid(), nn.AvgPool2d(2),
        nn.Conv2d(6, 16, 5), nn.Sigmoid(), nn.AvgPool2d(2),
        nn.Flatten(),
        nn.Linear(16 * 5 * 5, 120), nn.Sigmoid(),
        nn.Linear(120, 84), nn.Sigmoid(),
        nn.Linear(84, 10),
    )


def randomize_batch_norm_statistics(module: nn.Module, seed: int = 0) -> None:
    """Non-trivial running statistics and affine parameters, so a converter that drops or
    swaps them fails."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for child in module.modules():
            if isinstance(child, nn.BatchNorm2d):
                n = child.num_features
                child.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
                child.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
                child.weight.copy_(torch.rand(n, generator=generator) + 0.5)
                child.bias.copy_(torch.randn(n, generator=generator) * 0.1)
