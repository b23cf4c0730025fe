"""Shared fixtures: small seeded data and the CLI binary of this checkout."""

import os
import pathlib
import shutil

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def x():
    """300 rows of 12 features in [0, 1]."""
    return np.random.default_rng(0).random((300, 12), dtype=np.float32)


@pytest.fixture(scope="session")
def cli():
    """The `hourglass` binary: $HOURGLASS_BIN, else target/release/hourglass of this checkout
    (built by `cargo build --release`; python/ci.sh builds it first)."""
    path = os.environ.get("HOURGLASS_BIN") or str(ROOT / "target" / "release" / "hourglass")
    if not os.path.isfile(path):
        found = shutil.which("hourglass")
        assert found, f"no hourglass binary at {path}: run cargo build --release first"
        path = found
    return path
