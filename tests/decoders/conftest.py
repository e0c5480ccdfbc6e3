"""Vector files and a shared registry for the decoder tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from decoders.registry import CodecRegistry

VECTOR_DIR = Path(__file__).resolve().parent.parent / "fixtures" / "vectors"


def vector_files() -> list[dict[str, Any]]:
    return [json.loads(path.read_text(encoding="utf-8")) for path in sorted(VECTOR_DIR.glob("*.json"))]


@pytest.fixture(scope="module")
def registry() -> Iterator[CodecRegistry]:
    codecs = CodecRegistry()
    yield codecs
    codecs.close()
