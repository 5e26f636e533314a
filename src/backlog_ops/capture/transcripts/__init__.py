"""`backlog-ops import transcripts`: Claude Code's own usage, from its JSONL transcripts, into the ledger.

Claude Code often talks to Anthropic directly, not through the gateway; its transcripts still
record every response's usage. The import puts each API request in the ledger once, as
``source='transcript'``, attributed to the context that was in force for that session and agent
at that time, and priced with LiteLLM's prices (cache reads and writes included).

files (which files, what is new in them) -> parse (lines into requests) -> attribution (the
context at the request's time) -> matching (requests the proxy already recorded) -> importer
(the ledger rows) -> report.
"""

from backlog_ops.capture.transcripts.files import default_roots
from backlog_ops.capture.transcripts.importer import import_transcripts
from backlog_ops.capture.transcripts.report import ImportReport, render_report

__all__ = ["ImportReport", "default_roots", "import_transcripts", "render_report"]
