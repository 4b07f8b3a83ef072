"""Shared fixtures: a tiny random model built in seconds, and ../shared/data when present."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED / "flores200").is_dir():
        pytest.skip(f"../shared/data is absent ({SHARED}); real-data tests need it")
    return SHARED


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    from bayling.testing.tiny import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from bayling.testing.tiny import build_tiny_tokenizer

    return build_tiny_tokenizer()


@pytest.fixture(autouse=True, scope="session")
def _offline_env():
    # Nothing in the suite may reach a model hub.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    yield
