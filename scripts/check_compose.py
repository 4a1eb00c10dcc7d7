"""Check a resolved compose file (`docker-compose config` output) against docs/DEPLOY.md's promises.

- the service's ports are published on loopback unless SRGAN_BIND says otherwise;
- the service requires API keys (SRGAN_AUTH=required) and serves /metrics on SRGAN_METRICS_PORT,
  which is not published and which monitoring/prometheus/prometheus.yml scrapes;
- monitoring does not wait for the service's health (it is what shows why the service fails);
- every service's logs are rotated.

    docker-compose -f docker-compose.yml config | python scripts/check_compose.py -
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml
from check_report import report

ROOT = Path(__file__).resolve().parent.parent
SERVICE = "srgan"


def check(config: dict[str, Any], scrape_targets: set[str]) -> list[str]:
    problems = []
    services = config["services"]
    service = services[SERVICE]
    env = service.get("environment", {})
    for port in service.get("ports", []):
        if port.get("host_ip") != "127.0.0.1":
            problems.append(
                f"{SERVICE}: port {port.get('target')} published on {port.get('host_ip') or 'all interfaces'}"
            )
    if env.get("SRGAN_AUTH") != "required":
        problems.append(f"{SERVICE}: SRGAN_AUTH is {env.get('SRGAN_AUTH')!r}, not 'required'")
    metrics_port = env.get("SRGAN_METRICS_PORT")
    if metrics_port is None:
        problems.append(f"{SERVICE}: no SRGAN_METRICS_PORT")
    else:
        if any(str(p.get("target")) == str(metrics_port) for p in service.get("ports", [])):
            problems.append(f"{SERVICE}: the metrics port {metrics_port} is published")
        if f"{SERVICE}:{metrics_port}" not in scrape_targets:
            problems.append(
                f"prometheus.yml does not scrape {SERVICE}:{metrics_port}, only {sorted(scrape_targets)}"
            )
    for name, other in services.items():
        if SERVICE in other.get("depends_on", {}) and name != SERVICE:
            problems.append(f"{name}: depends on {SERVICE}, so it starts only with it")
        options = other.get("logging", {}).get("options", {})
        if other.get("logging", {}).get("driver") != "json-file" or "max-size" not in options:
            problems.append(f"{name}: logs are not rotated (logging: json-file with max-size)")
    return problems


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "files", nargs="+", type=argparse.FileType(), help="resolved compose files, - for stdin"
    )
    parser.add_argument("--prometheus", type=Path, default=ROOT / "monitoring/prometheus/prometheus.yml")
    args = parser.parse_args()
    scrape = yaml.safe_load(args.prometheus.read_text())["scrape_configs"]
    targets = {t for job in scrape for static in job.get("static_configs", []) for t in static["targets"]}
    failures = sum(report(file.name, check(yaml.safe_load(file), targets)) for file in args.files)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
