"""Previews of a match that say what kind of thing it is and how big, never what it is."""

from __future__ import annotations

import re

__all__ = ["mask"]

# Vendor prefixes are public knowledge; showing them says which kind of key leaked, nothing more.
_SECRET_PREFIX = re.compile(r"^(://|glpat-|SG\.|--password|--token|-p |sk-ant-|sk-proj-|sk-|AKIA|ASIA|ghp_|gho_|ghu_|ghs_|ghr_|github_pat_|xox[abprse]-|AIza|sk_live_|rk_live_|sk_test_|-----BEGIN|eyJ)")


def mask(kind: str, text: str) -> str:
    """A preview that identifies the kind and size of a match without revealing it."""
    n = len(text)
    if kind == "pii.card":
        digits = re.sub(r"\D", "", text)
        return f"card ****{digits[-4:]} ({len(digits)} digits)"
    if kind == "pii.email":
        local, _, domain = text.partition("@")
        tld = domain.rsplit(".", 1)[-1] if "." in domain else ""
        return f"{local[:1]}***@***.{tld}"
    if kind.startswith("secret."):
        prefix = _SECRET_PREFIX.match(text)
        shown = prefix.group(0) if prefix else ""
        return f"{shown}*** ({n} chars)"
    if kind.startswith("injection."):
        return f"[{kind} phrase, {n} chars]"
    return f"[{kind}, {n} chars]"
