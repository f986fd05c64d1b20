"""Frame -> network input, shared by the pipeline and the parity gate."""

from __future__ import annotations

import cv2
import numpy as np
import torch


def fit_frame(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """(H, W, 3) uint8 -> (h, w, 3) uint8 at `size` (h, w): bilinear resize, or the image
    itself where it already has that size."""
    h, w = size
    if image.shape[:2] == (h, w):
        return image
    return cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)


def frames_batch(images, size: tuple[int, int]) -> torch.Tensor:
    """N frames (H_i, W_i, 3) uint8 BGR -> (N, h, w, 3) uint8 BGR at `size`, for an engine
    that normalises frames itself (one frame of the right size is not copied)."""
    if len(images) == 1:
        return torch.from_numpy(np.ascontiguousarray(fit_frame(images[0], size))[None])
    return torch.from_numpy(np.stack([fit_frame(image, size) for image in images]))


class Preprocessor:
    """(H, W, 3) uint8 BGR -> (1, 3, h, w) float32 normalised RGB (CPU tensor).

    Resize (bilinear, on uint8) to the model's input size, split the channels, then one
    OpenCV multiply-add per channel, (v / 255 - mean) / std = v * scale + offset, written
    straight into the RGB plane of the NCHW output (SIMD, one pass, no float copies).
    """

    def __init__(self, input_size: tuple[int, int], mean, std):
        self.input_size = tuple(input_size)
        mean, std = np.asarray(mean, np.float64), np.asarray(std, np.float64)
        self._scale = (1.0 / (255.0 * std)).tolist()
        self._offset = (-mean / std).tolist()

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        h, w = self.input_size
        image = fit_frame(image, (h, w))
        planes = cv2.split(image)
        out = np.empty((1, 3, h, w), dtype=np.float32)
        for c in range(3):  # RGB plane c from BGR channel 2 - c
            src = planes[2 - c]
            cv2.addWeighted(src, self._scale[c], src, 0.0, self._offset[c], dst=out[0, c],
                            dtype=cv2.CV_32F)
        return torch.from_numpy(out)
