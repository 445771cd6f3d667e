"""Pictures for people: label maps in the VOC colours (``masks``) and training curves (``curves``)."""
from .curves import METRICS, plot_training_curves, read_metrics
from .masks import (PALETTE, PALETTE_BGR, colorize, full_palette, legend, overlay, present_classes, save_image,
                    save_mask, side_by_side)

__all__ = [
    "METRICS", "PALETTE", "PALETTE_BGR", "colorize", "full_palette", "legend", "overlay", "plot_training_curves",
    "present_classes",
    "read_metrics", "save_image", "save_mask", "side_by_side",
]
