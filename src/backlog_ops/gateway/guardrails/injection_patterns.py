"""Prompt injection: the phrases per kind, and the cheap substrings that must be present first."""

from __future__ import annotations

__all__ = ["INJECTION", "INJECTION_PREFILTER"]

INJECTION: dict[str, list[str]] = {
    "injection.override": [
        # the brief's examples and the common phrasings around them
        r"\b(?:ignore|disregard|forget|skip|override|bypass)\s+(?:all\s+|any\s+|the\s+|your\s+|my\s+|of\s+)*(?:previous|prior|above|earlier|preceding|original|former|system)\s+(?:instructions?|prompts?|rules|directions|guidelines|guidance|constraints|context|messages?|commands?|orders)\b",
        r"\bdisregard\s+(?:all\s+|everything\s+)?(?:the\s+)?(?:above|previous|prior)\b(?!\s+(?:warning|error|message|output|comment|line|test|change|commit|log|diff|note|stack|trace|result|failure|suggestion)s?\b)",
        r"\bforget\s+(?:everything|all)\s+(?:you\s+(?:were|have\s+been)\s+told|(?:above|before|previously)|your\s+instructions)\b",
        r"\b(?:ignore|disregard)\s+(?:all\s+)?(?:of\s+)?(?:your|the)\s+(?:safety\s+)?(?:instructions|guidelines|rules|programming|system\s+prompt)\b",
        r"\bnew\s+(?:system\s+)?instructions?\s*:\s*(?:you|from\s+now|ignore|always|never|do)\b",
        r"\b(?:system|admin|developer)\s+override\b",
        r"\bfrom\s+now\s+on,?\s+(?:you\s+(?:will|must|are)|ignore|respond\s+only)\b",
        r"\bdo\s+not\s+(?:tell|inform|alert|notify|mention\s+(?:this|it)\s+to)\s+the\s+user\b",
        r"\bwithout\s+(?:telling|informing|notifying|asking)\s+the\s+user\b",
        r"\b(?:ignore|disregard|forget|override)\s+(?:all\s+)?(?:the|your|any|these)\s+(?:\w+\s+)?(?:rules|instructions|guidelines|directions)\s+(?:above|before|given|you(?:'ve|\s+have)\s+been\s+given)\b",
        r"\byour\s+real\s+(?:task|job|instructions?|goal|purpose)\s+is\b",
        r"\bstop\s+what\s+you(?:'re|\s+are)\s+doing\s+and\b",
        r"\bthe\s+user\s+has\s+(?:already\s+)?(?:authori[sz]ed|allowed|permitted|approved)\s+you\s+to\b",
    ],
    "injection.exfiltrate": [
        r"\b(?:reveal|print|show|output|repeat|display|leak|dump|tell\s+me)\s+(?:me\s+)?(?:your|the)\s+(?:full\s+|entire\s+|complete\s+|original\s+|hidden\s+|initial\s+)*(?:system\s+prompt|system\s+message|hidden\s+instructions|initial\s+instructions|instructions\s+above|prompt\s+above)\b",
        r"\b(?:send|post|upload|exfiltrate|forward|transmit|email|curl)\s+(?:the\s+|all\s+|any\s+|your\s+|every\s+)*(?:contents?\s+of\s+)?(?:\.env|env(?:ironment)?\s+variables?|secrets?|api[\s_-]?keys?|credentials|tokens?|ssh\s+keys?|~/\.ssh|~/\.aws|passwords?)\b[^\n]{0,80}?\b(?:to|at|into)\s+(?:https?://|the\s+(?:following\s+)?(?:url|endpoint|server|webhook|address))",
        r"\b(?:cat|read)\s+(?:~/\.ssh/id_\w+|~/\.aws/credentials|\.env)\b[^\n]{0,60}\|\s*(?:curl|nc|wget)\b",
    ],
    "injection.roleplay": [
        r"\byou\s+are\s+now\s+(?:DAN|in\s+(?:developer|god|jailbreak|unrestricted|debug)\s+mode|an?\s+(?:unrestricted|unfiltered|uncensored|evil|jailbroken)\b)",
        r"\b(?:developer|jailbreak|god)\s+mode\s+(?:enabled|activated|on)\b",
        r"\b(?:pretend|act\s+as\s+if|imagine)\s+(?:that\s+)?(?:you\s+(?:are|have)|to\s+be)\b[^\n.]{0,60}\b(?:no|without|free\s+of)\s+(?:restrictions|rules|limits|filters|guidelines|safety)\b",
        r"\bdo\s+anything\s+now\b",
        r"\byou\s+(?:have\s+been|are\s+now|are)\s+jailbroken\b",
        r"\b(?:without|with\s+no)\s+(?:any\s+)?(?:ethical|safety|content)\s+(?:limits|restrictions|filters|guidelines)\b",
    ],
    "injection.markup": [
        r"<\|im_start\|>\s*system",
        r"<\|(?:system|endoftext)\|>",
        r"\[INST\]|<<SYS>>",
        r"^\s*#{2,}\s*(?:new\s+)?system\s*(?:prompt|message|instructions?)?\s*:?\s*$",
        r"</?(?:system_prompt|system-prompt|admin_instructions)>",
    ],
    "injection.indirect": [
        r"\b(?:ai|llm|language\s+model|assistant|agent|copilot|claude|chatgpt|gpt)s?\s+(?:reading|processing|parsing|summari[sz]ing|viewing|that\s+reads?)\s+this\b[^\n]{0,80}\b(?:must|should|are\s+(?:required|instructed)|will)\b",
        r"\b(?:attention|note|important|instructions?)\s*(?:to|for)\s+(?:all\s+)?(?:ai|llm|automated)\s+(?:assistants?|agents?|models?|systems?)\s*[:\-]",
        r"\bif\s+you\s+are\s+an?\s+(?:ai|llm|language\s+model|assistant|automated\s+agent)\b[^\n]{0,40}\b(?:ignore|you\s+must|you\s+should|do\s+not|execute|run|include)\b",
        r"\b(?:note|message|instructions?|memo)\s+(?:for|to)\s+(?:the\s+|any\s+|all\s+)?(?:ai|llm|assistant|agent|bot|model)s?\b\s*[:\-]",
        r"\b(?:to\s+the\s+)?(?:code[\s-]review|review|coding|ai|llm)\s+(?:bot|agent|assistant)s?\s*[-:,]\s*(?:please\s+)?(?:approve|ignore|merge|run|delete|do\s+not|you\s+must)\b",
        r"\b(?:llm|ai)\s+(?:agents?|assistants?|bots?)\s*,\s*(?:your|you\s+must|please\s+(?:ignore|run|delete))\b",
        r"\b(?:hey|dear|hi)\s+(?:claude|chatgpt|copilot|gemini|assistant|ai)\s*,\s*(?:stop|ignore|forget|please\s+(?:ignore|run|delete|open))\b",
    ],
}

# Cheap pre-checks: a kind's regex runs only when the lower-cased text holds one of these

# Cheap pre-checks: a kind's regex runs only when the lower-cased text holds one of these
# substrings (Python's substring search is far faster than a regex alternation at every offset).
INJECTION_PREFILTER: dict[str, tuple[str, ...]] = {
    "injection.override": ("ignore", "disregard", "forget", "skip", "override", "bypass", "instruction", "from now on",
                           "do not tell", "do not inform", "do not alert", "do not notify", "do not mention", "without telling",
                           "without informing", "without notifying", "without asking", "your real", "stop what", "has authori",
                           "has allowed", "has permitted", "has approved", "has already"),
    "injection.exfiltrate": ("system prompt", "system message", "hidden instructions", "initial instructions", "instructions above",
                             "prompt above", ".env", "environment variable", "env variable", "secret", "api key", "api_key",
                             "api-key", "apikey", "credentials", "token", "ssh", ".aws", "password"),
    "injection.roleplay": ("you are", "mode", "pretend", "act as", "imagine", "anything now", "jailbr", "ethical", "safety", "content"),
    "injection.markup": ("<|", "[inst]", "<<sys>>", "#", "system_prompt", "system-prompt", "admin_instructions"),
    "injection.indirect": ("reading this", "processing this", "parsing this", "summarizing this", "summarising this", "viewing this",
                           "that reads", "that read", "if you are a", "note for", "note to", "message for", "message to", "instructions for",
                           "instructions to", "instruction for", "instruction to", "memo for", "memo to", "attention", "important", "bot",
                           "agent", "assistant", "hey ", "dear ", "hi "),
}
