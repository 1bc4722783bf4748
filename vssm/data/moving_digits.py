"""Moving digits: bouncing handwritten digits in square frames, like the Moving-MNIST generator.

The digits are scikit-learn's ``load_digits`` (1,797 real 8x8 handwritten digits, shipped with the
package, so nothing is downloaded), upsampled bilinearly to ``digit_size``. The train and test splits use
disjoint digit images, so held-out clips show handwriting the model never saw. Each digit starts at a
uniform position with a uniform direction, moves ``step_length`` of the free canvas per frame and bounces
off the borders; overlapping digits combine by maximum. Clips are (T, 1, H, W) float32 in [-1, 1] (the
reference's scaling of Moving-MNIST), generated on the fly and reproducible from (seed, split, index).
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

__all__ = ["MovingDigits", "digit_images", "split_digit_images", "bouncing_trajectory"]

SPLITS = ("train", "test")


@lru_cache(maxsize=8)
def digit_images(digit_size: int = 28) -> torch.Tensor:
    """All 1,797 digits as (N, digit_size, digit_size) float32 in [0, 1]."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as err:
        raise ImportError("moving digits need scikit-learn (pip install 'vssm[demo]')") from err
    if digit_size < 8:
        raise ValueError(f"digit_size must be at least 8 (the source images are 8x8), got {digit_size}")
    images = torch.from_numpy(load_digits().images.astype(np.float32) / 16.0)
    images = F.interpolate(images[:, None], size=(digit_size, digit_size), mode="bilinear", align_corners=False)
    return images[:, 0].clamp(0, 1)


def split_digit_images(num_images: int, split: str, test_fraction: float = 0.2, seed: int = 0) -> np.ndarray:
    """Indices of the digit images of ``split``: a fixed random partition, the same for every clip."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    order = np.random.RandomState(seed).permutation(num_images)
    n_test = int(round(num_images * test_fraction))
    return np.sort(order[:n_test] if split == "test" else order[n_test:])


def bouncing_trajectory(rng: np.random.RandomState, length: int, step_length: float):
    """Positions in [0, 1]^2 of one digit over ``length`` frames (y, x arrays), bouncing off the borders."""
    y, x = rng.rand(), rng.rand()
    theta = rng.rand() * 2 * math.pi
    vy, vx = math.sin(theta), math.cos(theta)
    ys, xs = np.empty(length), np.empty(length)
    for t in range(length):
        y, x = y + vy * step_length, x + vx * step_length
        if x <= 0:
            x, vx = 0.0, -vx
        if x >= 1:
            x, vx = 1.0, -vx
        if y <= 0:
            y, vy = 0.0, -vy
        if y >= 1:
            y, vy = 1.0, -vy
        ys[t], xs[t] = y, x
    return ys, xs


class MovingDigits(Dataset):
    """Clips of ``num_digits`` bouncing digits, (seq_len, 1, image_size, image_size) in [-1, 1].

    Args:
        split: "train" or "test" (disjoint digit images).
        num_clips: the length of the data set; clip i is the same on every call.
        seq_len: frames per clip (any length).
        image_size, digit_size: frame and digit side in pixels.
        num_digits: digits per clip.
        step_length: motion per frame as a fraction of the free canvas (the reference generator's 0.15).
        test_fraction, split_seed: how the digit images are partitioned.
        seed: varies the clips (trajectories and digit choice).
    """

    def __init__(self, split: str = "train", num_clips: int = 1000, seq_len: int = 20, image_size: int = 64,
                 digit_size: int = 28, num_digits: int = 2, step_length: float = 0.15,
                 test_fraction: float = 0.2, split_seed: int = 0, seed: int = 0):
        if image_size <= digit_size:
            raise ValueError(f"image_size ({image_size}) must exceed digit_size ({digit_size})")
        for name, value in (("num_clips", num_clips), ("seq_len", seq_len), ("num_digits", num_digits)):
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value}")
        self.images = digit_images(digit_size)
        self.indices = split_digit_images(len(self.images), split, test_fraction, split_seed)
        self.split, self.num_clips, self.seq_len = split, num_clips, seq_len
        self.image_size, self.digit_size, self.num_digits = image_size, digit_size, num_digits
        self.step_length, self.seed = step_length, seed

    def __len__(self) -> int:
        return self.num_clips

    def __getitem__(self, index: int) -> torch.Tensor:
        if not 0 <= index < self.num_clips:
            raise IndexError(f"clip {index} out of range for {self.num_clips} clips")
        rng = np.random.RandomState([self.seed, SPLITS.index(self.split), index])
        size, d = self.image_size, self.digit_size
        canvas = torch.zeros(self.seq_len, size, size)
        for _ in range(self.num_digits):
            ys, xs = bouncing_trajectory(rng, self.seq_len, self.step_length)
            tops = ((size - d) * ys).astype(np.int64)
            lefts = ((size - d) * xs).astype(np.int64)
            digit = self.images[self.indices[rng.randint(len(self.indices))]]
            for t in range(self.seq_len):
                window = canvas[t, tops[t]:tops[t] + d, lefts[t]:lefts[t] + d]
                torch.maximum(window, digit, out=window)
        return (2 * canvas - 1).unsqueeze(1)

    def digit_ids(self) -> np.ndarray:
        """Indices into ``load_digits()`` of the digit images this split draws from."""
        return self.indices.copy()
