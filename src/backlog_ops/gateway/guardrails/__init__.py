"""Alert-only guardrails: detect prompt injection, PII and secrets in request text.

A pure detector: no I/O, no logging, no LiteLLM. `scan(text)` returns `Finding`s that carry the
kind, the position and a MASKED preview, never the matched text, so a finding can be logged,
stored and published safely. The callback `backlog_ops.callbacks.guardrail_alerts` runs it on
the user content of each request and raises alerts; nothing here blocks anything.

Kinds (the part before the dot is the family the evaluation reports on):

    injection.override   "ignore previous instructions", "disregard above", ...
    injection.exfiltrate "send the API keys to https://…", "reveal your system prompt"
    injection.roleplay   "you are now DAN", "developer mode enabled", "pretend … no restrictions"
    injection.markup     chat-template markers in pasted content (<|im_start|>system, [INST])
    injection.indirect   text addressed to AI agents reading a page ("AI assistants reading this must …")
    pii.email            an e-mail address (placeholder domains and no-reply addresses excluded)
    pii.phone            a formatted phone number (NANP or +international)
    pii.card             a payment card number: issuer prefix, length and Luhn checksum (well-known test PANs excluded)
    pii.ssn              a US SSN in a valid range (000/666/9xx areas, 00 groups, 0000 serials, known examples excluded)
    secret.<vendor>      OpenAI/Anthropic sk-…, AWS AKIA…/ASIA…, GitHub ghp_…/github_pat_…, Slack xox…,
                         Google AIza…, Stripe sk_live_/rk_live_, private-key blocks, JWTs
    secret.generic       a long, high-entropy value right after a key-ish name (api_key=, token:, password=)

Configuration: `Detector(extra_patterns={"injection.custom": [r"regex", ...]}, disabled={"pii.phone"},
allow_email_domains=..., test_cards=...)`, or a JSON/YAML file named by $BACKLOG_GUARDRAILS_FILE
(see `Detector.from_config`).

Modules: detector (the scan), injection_patterns, pii_patterns and secret_patterns (each family's
patterns and the checks that tell a real match from a look-alike), masking, finding,
message_texts; evaluation scores the detector on the labelled set and only the tests and the
benchmark use it.
"""

from backlog_ops.gateway.guardrails.detector import Detector, scan
from backlog_ops.gateway.guardrails.finding import Finding, family
from backlog_ops.gateway.guardrails.masking import mask
from backlog_ops.gateway.guardrails.message_texts import iter_texts
from backlog_ops.gateway.guardrails.pii_patterns import luhn_ok
from backlog_ops.gateway.guardrails.secret_patterns import shannon_entropy

__all__ = ["Detector", "Finding", "family", "iter_texts", "luhn_ok", "mask", "scan", "shannon_entropy"]
