"""Check that every alert can be acted on and is tested both ways.

promtool checks that the rules parse and that the unit tests pass; this checks what it cannot:

- every alert has a severity (critical pages, warning tickets), a summary, a description and a
  runbook_url `docs/RUNBOOK.md#<alert name in lower case>` whose section exists (a heading that is
  the alert's name);
- the unit tests have, for every alert and each of its severities, a case where it fires, and
  for every alert a case where it must stay silent (`exp_alerts: []`).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
SEVERITIES = {"critical", "warning"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=Path, default=ROOT / "monitoring/prometheus/rules/srgan.yml")
    parser.add_argument(
        "--tests", type=Path, nargs="+", default=[ROOT / "monitoring/prometheus/tests/srgan_test.yml"]
    )
    parser.add_argument("--runbook", type=Path, default=ROOT / "docs/RUNBOOK.md")
    args = parser.parse_args()

    headings = set(re.findall(r"^#+\s+(\S+)\s*$", args.runbook.read_text(), re.MULTILINE))
    alerts = [
        rule
        for group in yaml.safe_load(args.rules.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]
    fired: set[tuple[str, str]] = set()
    silent: set[str] = set()
    for tests in args.tests:
        for test in yaml.safe_load(tests.read_text())["tests"]:
            for case in test.get("alert_rule_test", []):
                expected = case.get("exp_alerts") or []
                if not expected:
                    silent.add(case["alertname"])
                fired |= {(case["alertname"], alert["exp_labels"].get("severity", "")) for alert in expected}

    problems = []
    for rule in alerts:
        name, severity = rule["alert"], rule.get("labels", {}).get("severity", "")
        annotations = rule.get("annotations", {})
        if severity not in SEVERITIES:
            problems.append(f"{name}: severity {severity!r}, not one of {sorted(SEVERITIES)}")
        for key in ("summary", "description"):
            if not annotations.get(key):
                problems.append(f"{name}: no {key}")
        wanted = f"{args.runbook.relative_to(ROOT)}#{name.lower()}"
        if annotations.get("runbook_url") != wanted:
            problems.append(f"{name}: runbook_url is {annotations.get('runbook_url')!r}, expected {wanted!r}")
        if name not in headings:
            problems.append(f"{name}: {args.runbook.name} has no section headed {name}")
        if (name, severity) not in fired:
            problems.append(f"{name} ({severity}): no unit test where it fires")
        if name not in silent:
            problems.append(f"{name}: no unit test where it must stay silent (exp_alerts: [])")
    for problem in problems:
        print(f"ERROR  {problem}")
    names = sorted({rule["alert"] for rule in alerts})
    print(f"{len(alerts)} alerting rules ({len(names)} alerts): {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
