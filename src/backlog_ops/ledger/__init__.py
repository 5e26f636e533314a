"""The spend ledger: one row per LLM call, with the context it was made in."""

from .record import COLUMNS, CallRecord
from .sqlite import SqliteLedger, default_ledger_path, open_ledger
from .writer import LedgerWriter

__all__ = ["COLUMNS", "CallRecord", "LedgerWriter", "SqliteLedger", "default_ledger_path", "open_ledger"]
