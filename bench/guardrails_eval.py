"""Alert-only guardrails on the labelled set: precision, recall and cost per request.

    .venv/bin/python bench/guardrails_eval.py

tests/data/guardrails/labelled.jsonl holds realistic coding-agent prompts (stack traces, diffs,
logs, git logs, pasted web content...) labelled with the families they contain: injection,
pii.email, pii.phone, pii.card, pii.ssn, secret; hard negatives have none. Split "dev" was used
to write the patterns; split "round2" was written afterwards and measured ONCE with the patterns
frozen (see README: precision 0.93, recall 0.54 overall), then used to improve them: there is no
untouched hold-out left, so read these figures as fit, not as a promise on new text.
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "src"))

from backlog_ops.gateway.guardrails import Detector, iter_texts  # noqa: E402
from backlog_ops.gateway.guardrails.evaluation import FAMILIES, evaluate  # noqa: E402

DATA = ROOT / "tests" / "data" / "guardrails" / "labelled.jsonl"


def main() -> int:
    items = [json.loads(line) for line in DATA.read_text().splitlines() if line.strip()]
    detector = Detector()
    positives = sum(1 for i in items if i["labels"])
    print(f"{len(items)} items ({positives} with at least one label, {len(items) - positives} hard negatives)\n")
    for split in ("dev", "round2", None):
        subset = [i for i in items if split is None or i.get("split") == split]
        result = evaluate(subset, detector)
        print(f"split: {split or 'all'} ({len(subset)} items)")
        print(f"  {'family':10} {'TP':>4} {'FP':>4} {'FN':>4} {'precision':>9} {'recall':>7}")
        for fam in FAMILIES:
            c = result["families"][fam]
            print(f"  {fam:10} {c['tp']:>4} {c['fp']:>4} {c['fn']:>4} {c['precision']:>9.3f} {c['recall']:>7.3f}")
        o = result["overall"]
        print(f"  {'overall':10} {o['tp']:>4} {o['fp']:>4} {o['fn']:>4} {o['precision']:>9.3f} {o['recall']:>7.3f}")
        for e in result["errors"]:
            print(f"    {e['error'].upper()} {e['id']} {e['family']}: {e['note']}")
        print()
    external_set(detector)
    presidio_templates(detector)
    # cost per request: the scan of each item's text, and of a large (24 kB) log
    times = []
    for item in items:
        t0 = time.perf_counter()
        for _ in range(20):
            detector.scan(item["text"])
        times.append((time.perf_counter() - t0) / 20 * 1e6)
    # realistic large requests: the compression corpus (logs, traces, diffs; 1-24 kB of user text)
    corpus = []
    for path in sorted((ROOT / "bench" / "compression_corpus").glob("*.json")):
        doc = json.loads(path.read_text())
        corpus.append("\n".join(iter_texts(doc["messages"][-1:])))
    big = []
    for text in corpus:
        t0 = time.perf_counter()
        for _ in range(5):
            detector.scan(text)
        big.append(((time.perf_counter() - t0) / 5 * 1e6, len(text)))
    adversarial = "\n".join(i["text"] for i in items)[:24_000]
    t0 = time.perf_counter()
    for _ in range(5):
        detector.scan(adversarial)
    adv_us = (time.perf_counter() - t0) / 5 * 1e6
    print(f"cost per scan: labelled items median {statistics.median(times):.0f} µs, p95 {sorted(times)[int(len(times) * 0.95)]:.0f} µs "
          f"(median {statistics.median(len(i['text']) for i in items):.0f} chars)")
    print(f"  compression corpus (last user turn, {min(n for _, n in big):,}-{max(n for _, n in big):,} chars): "
          f"median {statistics.median(us for us, _ in big):.0f} µs, max {max(us for us, _ in big):.0f} µs "
          f"({statistics.median(us / n * 1000 for us, n in big):.1f} µs per 1,000 chars)")
    print(f"  worst case, 24 kB of concatenated labelled items (every pre-check passes): {adv_us:.0f} µs")
    return 0


def external_set(detector: Detector) -> None:
    """Text we did not write: bastioncorpus 0.6.0 (MIT, on PyPI), a public prompt-injection corpus
    labelled malicious / benign (benign rows are false-positive traps), 181 rows in en/de/it/fr/es.
    Injection family only: the corpus has no PII or secret labels. Our patterns are English, so the
    English rows are reported apart. `pip install bastioncorpus==0.6.0` to run it."""
    try:
        from bastioncorpus import load_corpus
    except ImportError:
        print("external set: bastioncorpus is not installed (pip install bastioncorpus==0.6.0): skipped\n")
        return
    rows = [r if isinstance(r, dict) else r.__dict__ for r in load_corpus()]
    for name, subset in (("all languages", rows), ("English only", [r for r in rows if r.get("lang") == "en"])):
        items = [{"id": r["id"], "text": r["text"].replace("{canary}", "CANARY-1234"),
                  "labels": ["injection"] if r["label"] == "malicious" else [], "note": r.get("category")}
                 for r in subset]
        c = evaluate(items, detector)["families"]["injection"]
        print(f"external set bastioncorpus 0.6.0, {name} ({len(items)} rows, "
              f"{sum(1 for i in items if i['labels'])} malicious): injection precision {c['precision']:.3f}, "
              f"recall {c['recall']:.3f} (TP {c['tp']}, FP {c['fp']}, FN {c['fn']})")
        # the corpus labels no PII or secrets: the other families' alerts are counted, not scored
        others = {f: evaluate(items, detector)["families"][f]["fp"] for f in FAMILIES if f != "injection"}
        print(f"  other families' alerts on the same rows (not labelled there, not scored): {others}")
    misses: dict[str, int] = {}
    for r in rows:
        if r["label"] == "malicious" and not any(f.kind.startswith("injection.") for f in detector.scan(r["text"])):
            misses[r["category"]] = misses.get(r["category"], 0) + 1
    print(f"  missed malicious rows by category: {dict(sorted(misses.items(), key=lambda kv: -kv[1]))}\n")


# presidio-evaluator's placeholders -> the CSV column that fills them (US rows of its fake-person
# table); the families our detector reports that each one carries.
PRESIDIO_FILL = {"email": "EmailAddress", "phone_number": "TelephoneNumber", "ssn": "NationalID",
                 "person": None, "name": None, "first_name": "GivenName", "last_name": "Surname",
                 "city": "City", "address": "StreetAddress", "street_name": "StreetAddress",
                 "country": "CountryFull", "organization": "Company", "company": "Company", "age": "Age",
                 "zipcode": "ZipCode", "postcode": "ZipCode", "state_abbr": "State", "job": "Occupation",
                 "date_of_birth": "Birthday", "url": "Domain", "nationality": "CountryFull"}
PRESIDIO_FAMILY = {"email": "pii.email", "phone_number": "pii.phone", "ssn": "pii.ssn"}


def presidio_templates(detector: Detector) -> None:
    """PII in text we did not write: presidio-evaluator 0.3.2 (MIT, on PyPI) ships the sentence
    templates and the fake-person table Microsoft's Presidio is evaluated with. Each template is
    filled from the table's US rows (e-mail, phone, SSN, names, addresses...); an item is labelled
    with the families of the placeholders it had. Templates with a card number are left out: the
    table's card numbers are stored as floats (5.54563E+15), not card numbers. Its dependencies
    are heavy (spaCy, transformers): `pip install --no-deps presidio-evaluator==0.3.2` to run this."""
    import csv
    import importlib.util
    import re

    spec = importlib.util.find_spec("presidio_evaluator")  # locates the data without importing spaCy
    if spec is None or not spec.submodule_search_locations:
        print("PII set: presidio-evaluator is not installed (pip install --no-deps presidio-evaluator==0.3.2): skipped\n")
        return
    raw = Path(list(spec.submodule_search_locations)[0]) / "data_generator" / "raw_data"
    with open(raw / "FakeNameGenerator.com_3000.csv", encoding="utf-8-sig") as fh:
        people = [r for r in csv.DictReader(fh) if r["Country"] == "US" and r["NationalID"]]
    # the file writes line breaks inside a template as a literal backslash-n
    templates = [t.strip().replace("\\n", "\n") for t in (raw / "templates.txt").read_text(encoding="utf-8", errors="replace").splitlines()
                 if t.strip()]
    items, skipped = [], 0
    for i, template in enumerate(templates):
        names = re.findall(r"{{(\w+)}}", template)
        if "credit_card_number" in names or any(n not in PRESIDIO_FILL for n in names):
            skipped += 1
            continue
        for k in range(3):  # three people per template
            person = people[(i * 3 + k) % len(people)]

            def fill(m: re.Match) -> str:
                column = PRESIDIO_FILL[m.group(1)]
                return person[column] if column else f"{person['GivenName']} {person['Surname']}"

            items.append({"id": f"presidio-{i}-{k}", "text": re.sub(r"{{(\w+)}}", fill, template),
                          "labels": sorted({PRESIDIO_FAMILY[n] for n in names if n in PRESIDIO_FAMILY}), "note": template})
    result = evaluate(items, detector)
    print(f"PII set presidio-evaluator 0.3.2 templates ({len(items)} items from {len(templates) - skipped} templates, "
          f"{skipped} left out: card numbers or placeholders without US data)")
    for fam in ("pii.email", "pii.phone", "pii.ssn", "injection", "pii.card", "secret"):
        c = result["families"][fam]
        print(f"  {fam:10} precision {c['precision']:.3f} recall {c['recall']:.3f} (TP {c['tp']}, FP {c['fp']}, FN {c['fn']})")
    for e in [e for e in result["errors"] if e["family"].startswith("pii.")][:6]:
        print(f"    {e['error'].upper()} {e['family']}: {e['note'][:90]!r}")
    print()


if __name__ == "__main__":
    raise SystemExit(main())
