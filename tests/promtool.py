"""Prometheus' promtool for the rule tests: from the system's `prometheus` package (.ci/run
installs it). CI sets INFERSTACK_REQUIRE_PROMTOOL so a missing promtool fails there instead of
skipping."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

PROMTOOL = shutil.which("promtool")
if PROMTOOL is None and os.environ.get("INFERSTACK_REQUIRE_PROMTOOL"):
    raise RuntimeError("promtool is required (INFERSTACK_REQUIRE_PROMTOOL is set): install the prometheus package")
needs_promtool = pytest.mark.skipif(PROMTOOL is None, reason="promtool not installed (Debian package prometheus)")


def promtool(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    assert PROMTOOL is not None
    return subprocess.run([PROMTOOL, *args], check=False, cwd=cwd, capture_output=True, text=True, timeout=120)
