"""A proxy's workers share one home: a spool file (or a dead worker's journal) is loaded by one of them.

Before: each loader listed every claimed file and loaded each, so workers starting together
loaded the same rows twice (harmless upserts, but twice the work and the log said so twice).
"""

from __future__ import annotations

import fcntl
import json
import multiprocessing as mp
import os
from pathlib import Path

from backlog_ops.common.spool import load_spool


def _load_in_child(path: str, out: str, go) -> None:
    go.wait()
    result = load_spool(path, json.loads, lambda items: open(out, "a").write("".join(f"{i['n']}\n" for i in items)))
    with open(out + ".count", "a") as fh:
        fh.write(f"{result.loaded}\n")


def test_a_file_another_loader_holds_is_left_to_it_then_loaded_once_released(tmp_path: Path) -> None:
    spool = tmp_path / "ledger-spool.jsonl"
    claimed = tmp_path / "ledger-spool.jsonl.999.loading"
    claimed.write_text("".join(json.dumps({"n": i}) + "\n" for i in range(5)))
    fd = os.open(claimed, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)  # another worker is loading it
    got: list = []
    assert load_spool(spool, json.loads, got.extend).loaded == 0 and got == [] and claimed.exists()
    os.close(fd)
    assert load_spool(spool, json.loads, got.extend).loaded == 5
    assert [i["n"] for i in got] == list(range(5)) and not claimed.exists()


def test_workers_starting_together_load_each_row_once(tmp_path: Path) -> None:
    spool = tmp_path / "ledger-spool.jsonl"
    for k in range(6):  # a dead writer's journal segments, moved aside as claimed files
        (tmp_path / f"ledger-spool.jsonl.journal-{k}.loading").write_text(
            "".join(json.dumps({"n": k * 10_000 + i}) + "\n" for i in range(2000)))
    out = tmp_path / "delivered.txt"
    ctx = mp.get_context("fork")
    go = ctx.Event()
    children = [ctx.Process(target=_load_in_child, args=(str(spool), str(out), go)) for _ in range(4)]
    for child in children:
        child.start()
    go.set()
    for child in children:
        child.join(60)
        assert child.exitcode == 0
    delivered = out.read_text().split()
    assert len(delivered) == 12_000 and len(set(delivered)) == 12_000, "every row once, none twice"
    assert sum(int(n) for n in (tmp_path / "delivered.txt.count").read_text().split()) == 12_000
    assert not list(tmp_path.glob("*.loading"))
