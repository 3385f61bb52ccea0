"""Import the example plugin from its source tree (nothing is installed at test time)."""

from __future__ import annotations

import sys
from pathlib import Path

EXAMPLE_DIR = Path(__file__).resolve().parents[2] / "examples" / "plugin_example"

if str(EXAMPLE_DIR / "src") not in sys.path:
    sys.path.insert(0, str(EXAMPLE_DIR / "src"))
