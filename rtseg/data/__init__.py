"""Data sets, paired transforms and class maps (the leftmost stage: imports no other stage)."""

from rtseg.labels import IMAGENET_MEAN, IMAGENET_STD

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "IMAGE_SUFFIXES"]
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm")
