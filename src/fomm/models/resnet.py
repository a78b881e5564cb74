"""ResNet-18 (He et al., "Deep Residual Learning for Image Recognition", CVPR 2016) with
torchvision's parameter names, so torchvision ``resnet18`` state dicts load with ``strict=True``.

TPSMM's keypoint detector and background motion predictor are torchvision ResNet-18s (the latter
with a 6-channel first convolution, the source and driving images stacked). torchvision's wheel
does not load against the CPU build of torch used here, so the network is written out; its
parameters are named exactly as torchvision names them:

``conv1``, ``bn1``, ``layer1`` ... ``layer4`` (each two :class:`BasicBlock` with ``conv1``,
``bn1``, ``conv2``, ``bn2`` and, where the block changes resolution or width, ``downsample.0``
(1x1 conv) and ``downsample.1`` (batch norm)), and ``fc``.

Initialisation is torchvision's too: Kaiming-normal convolutions (fan out, ReLU gain), batch-norm
weights 1 and biases 0, and torch's default for ``fc``.
"""

from __future__ import annotations

from torch import Tensor, nn

__all__ = ["BasicBlock", "ResNet18"]

class BasicBlock(nn.Module):
    """Two 3x3 convolutions with batch norm and a residual connection.

    ``(B, in_channels, H, W) -> (B, out_channels, H / stride, W / stride)``. When the shape
    changes, the residual goes through ``downsample`` (1x1 conv with ``stride``, batch norm).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)


class ResNet18(nn.Module):
    """ResNet-18: ``(B, in_channels, H, W)`` images -> ``(B, num_outputs)``.

    The stem (7x7 stride-2 conv, 3x3 stride-2 max pool) and the four layers reduce the resolution
    by 32; global average pooling makes the result independent of the input size.
    """

    def __init__(self, num_outputs: int = 1000, in_channels: int = 3) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = _layer(64, 64, stride=1)
        self.layer2 = _layer(64, 128, stride=2)
        self.layer3 = _layer(128, 256, stride=2)
        self.layer4 = _layer(256, 512, stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.fc = nn.Linear(512, num_outputs)
        self._initialise()

    @property
    def num_features(self) -> int:
        """Width of the pooled features that ``fc`` maps to the outputs (512)."""
        return self.fc.in_features

    def _initialise(self) -> None:
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def features(self, x: Tensor) -> Tensor:
        """The pooled features ``(B, 512)``, before ``fc``."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.avgpool(x).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.features(x))


def _layer(in_channels: int, out_channels: int, stride: int) -> nn.Sequential:
    """One of ResNet-18's four layers: two basic blocks, the first changing stride and width."""
    return nn.Sequential(BasicBlock(in_channels, out_channels, stride), BasicBlock(out_channels, out_channels))
