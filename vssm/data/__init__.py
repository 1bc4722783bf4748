"""Small data sets that build from what installed packages ship (no downloads)."""

from .moving_digits import MovingDigits, digit_images, split_digit_images

__all__ = ["MovingDigits", "digit_images", "split_digit_images"]
