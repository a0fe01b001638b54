"""The soak tests share the verify tests' helpers (opsrun) and the facts builder (factsgen)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "verify"))
