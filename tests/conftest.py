"""Shared test set-up: single-threaded torch (CI has 2 cores and runs two workers), fixed seeds."""

import os

import pytest
import torch

torch.set_num_threads(int(os.environ.get("VSSM_TEST_THREADS", "1")))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
