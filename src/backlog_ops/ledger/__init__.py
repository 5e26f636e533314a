"""The spend ledger: one row per LLM call, with the context it was made in."""

from backlog_ops.ledger.backend import open_ledger
from backlog_ops.ledger.record import COLUMNS, CallRecord
from backlog_ops.ledger.sqlite import SqliteLedger, default_ledger_path
from backlog_ops.ledger.writer import LedgerWriter

__all__ = ["COLUMNS", "CallRecord", "LedgerWriter", "SqliteLedger", "default_ledger_path", "open_ledger"]
