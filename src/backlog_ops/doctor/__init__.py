"""`backlog-ops doctor`: checks of the set-up that return data (cli/doctor_cmd.py prints them).

    state.py        the home, the ledger and the context store: where each lives, whether it answers
    gateway.py      the proxy at the configured URL: alive, mode, missing provider keys, master key
    claude_code.py  Claude Code: install in this project and for the user, MCP approval, alwaysLoad
"""

from backlog_ops.doctor.report import INFO, OK, PROBLEM, Check, DoctorReport
from backlog_ops.doctor.run import run_checks

__all__ = ["INFO", "OK", "PROBLEM", "Check", "DoctorReport", "run_checks"]
