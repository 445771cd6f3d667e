"""The MindCV models that serve as DeepLab backbones, by family (pure data: the config rules check names early).

A family is listed when MindCV 0.3.0 builds its models with ``features_only=True`` on MindSpore 2.10 and their
downsampling is done by strided convolutions, which dilation can replace at output stride 16 or 8
(:mod:`deeplabv3.models.dilation`). ``tests/test_models_backbones.py`` checks these names against MindCV's
registry and builds one member of each family at both output strides.
"""
from __future__ import annotations

from typing import Dict, Tuple

FAMILIES: Dict[str, Tuple[str, ...]] = {
    "resnet": ("resnet18", "resnet34", "resnet50", "resnet101", "resnet152"),
    "resnext": ("resnext50_32x4d", "resnext101_32x4d", "resnext101_64x4d", "resnext152_64x4d"),
    "repvgg": ("repvgg_a0", "repvgg_a1", "repvgg_a2", "repvgg_b0", "repvgg_b1", "repvgg_b1g2", "repvgg_b1g4",
               "repvgg_b2", "repvgg_b2g4", "repvgg_b3"),
    "mobilenet_v2": tuple(f"mobilenet_v2_{w}" for w in ("075", "100", "140")) + tuple(
        f"mobilenet_v2_{w}_{r}" for w in ("035", "050", "075", "100") for r in (96, 128, 160, 192))
    + ("mobilenet_v2_035_224", "mobilenet_v2_050_224", "mobilenet_v2_130_224"),
    "mobilenet_v3": ("mobilenet_v3_small_075", "mobilenet_v3_small_100", "mobilenet_v3_large_075",
                     "mobilenet_v3_large_100"),
    "efficientnet": tuple(f"efficientnet_b{i}" for i in range(8)),
    "convnext": ("convnext_tiny", "convnext_small", "convnext_base", "convnext_large", "convnext_xlarge"),
}

#: Families whose ResNet layers take ``model.layers`` / ``model.base_channels`` and the multi-grid.
RESNET_FAMILIES = ("resnet", "resnext")

#: MindCV families that build with ``features_only`` but are not offered, and why.
REFUSED = {
    "resnest": "its blocks downsample by average pooling (avd), which dilation cannot replace",
    "hrnet": "it keeps parallel resolutions and has no single last stage to dilate",
    "rexnet": "it does not build on MindSpore 2.10",
}


def family_of(name: str) -> str:
    """The family of a supported backbone name; ``KeyError`` for any other name."""
    for family, names in FAMILIES.items():
        if name in names:
            return family
    raise KeyError(name)


def supported_text() -> str:
    """Every supported name, family by family, for error messages and ``--list-backbones``."""
    return "; ".join(f"{family}: {', '.join(names)}" for family, names in FAMILIES.items())
