"""What `pip install .` (not editable) installs: every module and data file of the checkout, and a CLI that runs.

The tests run on an editable install, which finds every module in the checkout whatever
pyproject.toml lists; a package left out of its list (backlog_ops.doctor once was) only broke the
installed command: `backlog-ops doctor` answered "No module named 'backlog_ops.doctor'".
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# pyproject's package-dir: the folder in the checkout -> where it lands in the installed package.
FOLDERS = {
    REPO / "src" / "backlog_ops": Path("backlog_ops"),
    REPO / "callbacks": Path("backlog_ops/callbacks"),
    REPO / "hooks": Path("backlog_ops/hooks"),
    REPO / "mcp_server": Path("backlog_ops/mcp_server"),
    REPO / "config": Path("backlog_ops/config"),
    REPO / "skills": Path("backlog_ops/skills"),
}


def _shipped_files() -> dict[Path, Path]:
    """Each file of the checkout that must be installed -> its path in site-packages."""
    found = {}
    for folder, target in FOLDERS.items():
        for path in folder.rglob("*"):
            if path.is_file() and "__pycache__" not in path.parts and path.suffix != ".pyc":
                found[path] = target / path.relative_to(folder)
    return found


def test_a_plain_install_has_every_module_and_data_file_and_its_cli_runs(tmp_path: Path) -> None:
    # From a copy of the tracked files: setuptools builds in the source tree (build/), and a
    # build/lib left by an earlier build would be installed too, hiding a package left out.
    source = tmp_path / "checkout"
    tracked = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.decode()
    for name in filter(None, tracked.split("\0")):
        if (REPO / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, source / name)
    target = tmp_path / "site"
    built = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-compile", "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=600,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    missing = sorted(str(dest) for dest in _shipped_files().values() if not (target / dest).is_file())
    assert not missing, f"not installed by `pip install .` (pyproject.toml's packages / package-data): {missing}"

    # The installed copy, not the checkout's editable one, answers: PYTHONPATH comes before the
    # editable install's finder.
    env = {**os.environ, "PYTHONPATH": str(target), "BACKLOG_HOME": str(tmp_path / "home"), "BACKLOG_MCP_PREFORK": "0"}
    where = subprocess.run([sys.executable, "-c", "import backlog_ops.doctor, sys; print(backlog_ops.doctor.__file__)"],
                           capture_output=True, text=True, env=env, timeout=60)
    assert where.returncode == 0 and where.stdout.startswith(str(target)), where.stdout + where.stderr
    doctor = subprocess.run([sys.executable, "-c", "from backlog_ops.cli import main; raise SystemExit(main(['doctor']))"],
                            capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert "internal error" not in doctor.stdout + doctor.stderr and "Traceback" not in doctor.stderr, doctor.stderr
    assert "ledger" in doctor.stdout.lower(), doctor.stdout
