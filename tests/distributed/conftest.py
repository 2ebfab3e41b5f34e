"""Fixtures of the scale-out tests."""

from __future__ import annotations

import pytest

from distributed_launch import run_torchrun


@pytest.fixture
def torchrun():
    """``torchrun(script, *args, nproc=2)``: run a script of this folder on 2 gloo ranks."""
    return run_torchrun
