"""`backlog-ops demo`, the README's first command, end to end."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.proxy


def test_demo_prints_spend_for_two_tickets_and_leaves_nothing_behind(tmp_path: Path, backlog_home: Path) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path), "LITELLM_MASTER_KEY": "sk-the-users-own-key-never-used",
           # The user's own backends, unreachable here: the demo must not use them.
           "BACKLOG_LEDGER_URL": "postgresql://nobody@127.0.0.1:9/none", "BACKLOG_CONTEXT_URL": "redis://127.0.0.1:9/0"}
    r = subprocess.run([str(Path(sys.executable).parent / "backlog-ops"), "demo"], capture_output=True, text=True,
                       timeout=300, env=env, cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    out = r.stdout
    costs = {t: float(m) for t, m in re.findall(r"^(FEAT-00[12]|\(no ticket\))\s+\S*\s+\$([0-9.]+)\s", out, re.M)}
    assert set(costs) == {"FEAT-001", "FEAT-002", "(no ticket)"} and all(c > 0 for c in costs.values()), out
    assert costs["FEAT-001"] > costs["FEAT-002"], "FEAT-001 ran more gates on bigger prompts"
    for gate in ("plan", "implement", "review", "generate"):
        assert re.search(rf"^{gate}\s+\$", out, re.M), f"gate {gate} missing:\n{out}"
    assert "sk-the-users-own-key" not in out + r.stderr
    assert not list(tmp_path.glob("backlog-ops-demo-*")), "the demo's temporary home is removed"
    assert not backlog_home.exists(), "the user's BACKLOG_HOME is never touched"
