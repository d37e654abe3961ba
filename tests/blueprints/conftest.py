"""Blueprint test inputs: the real eggs in the shared folder and the bundled catalogue."""

from __future__ import annotations

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
EGGS = REPO.parent / "shared" / "eggs"
FILES = Path(__file__).parent / "files"


def all_eggs() -> list[Path]:
    """Every egg file under the shared folder (JSON and YAML, any depth)."""
    return sorted(p for p in EGGS.rglob("egg-*") if p.suffix in (".json", ".yaml", ".yml"))


def egg(rel: str) -> Path:
    path = EGGS / rel
    if not path.exists():
        pytest.fail(f"shared egg {rel} is missing")
    return path
