"""Frame -> network input, shared by the pipeline and the parity gate."""

from __future__ import annotations

import cv2
import numpy as np
import torch


class Preprocessor:
    """(H, W, 3) uint8 BGR -> (1, 3, h, w) float32 normalised RGB (CPU tensor).

    Resize (bilinear) to the model's input size, BGR -> RGB, (x / 255 - mean) / std, with
    the scale and shift folded into one multiply-add.
    """

    def __init__(self, input_size: tuple[int, int], mean, std):
        self.input_size = tuple(input_size)
        std = np.asarray(std, dtype=np.float32) * 255.0
        self._scale = (1.0 / std).reshape(1, 1, 3)
        self._shift = (np.asarray(mean, dtype=np.float32) * 255.0).reshape(1, 1, 3)

    def __call__(self, image: np.ndarray) -> torch.Tensor:
        h, w = self.input_size
        if image.shape[:2] != (h, w):
            image = cv2.resize(image, (w, h), interpolation=cv2.INTER_LINEAR)
        rgb = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
        x = (rgb.astype(np.float32) - self._shift) * self._scale
        return torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)))[None]
