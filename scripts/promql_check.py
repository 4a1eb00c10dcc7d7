"""Evaluate every PromQL expression we ship against a Prometheus that scrapes a live service.

Reads the expressions of the Grafana dashboard, the alert and recording rules and the KEDA
triggers, optionally sends the service a little real traffic first (`--service`), then asks
Prometheus for each one. Fails when an expression does not evaluate, when it names an
`srgan_*` series that the service does not export, or when a dashboard panel, a recording rule
or a KEDA query stays empty past `--wait` seconds (panels named with `--allow-empty` excepted).
Alert expressions may be empty: an alert that is not firing returns nothing. A recording rule
that stays empty selects nothing the service exports (a bucket bound spelt differently, say),
and the alerts built on it could never fire.

Needs PyYAML, not the project: it talks to the service over HTTP only.
"""

from __future__ import annotations

import argparse
import json
import re
import struct
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
import zlib
from dataclasses import dataclass
from pathlib import Path

import yaml

# What Grafana substitutes at query time. One minute spans enough samples at any scrape
# interval up to 15 s, the same guarantee $__rate_interval gives. The dashboard's own variables
# (namespace, instance) as "All", the regex their allValue is.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$__range": "5m",
    "$namespace": ".*",
    "$instance": ".*",
}
SRGAN_SERIES = re.compile(r"\bsrgan_[a-z0-9_]+\b")


@dataclass(frozen=True)
class Query:
    source: str  # where it comes from, as a reader finds it: "dashboard: Queue wait [B]"
    expr: str
    must_have_data: bool


def dashboard_queries(path: Path, allow_empty: set[str]) -> list[Query]:
    def walk(panels: list[dict]) -> list[dict]:
        # Panels inside collapsed rows are nested one level down.
        return [p for panel in panels for p in [panel, *walk(panel.get("panels", []))]]

    queries = []
    for panel in walk(json.loads(path.read_text())["panels"]):
        for target in panel.get("targets", []):
            expr = target["expr"]
            for name, value in GRAFANA_VARIABLES.items():
                expr = expr.replace(name, value)
            queries.append(
                Query(
                    f"dashboard: {panel['title']} [{target['refId']}]",
                    expr,
                    panel["title"] not in allow_empty,
                )
            )
    return queries


def yaml_documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def rule_queries(path: Path) -> list[Query]:
    return [
        Query(f"rule: {rule.get('alert') or rule.get('record')}", rule["expr"], "record" in rule)
        for doc in yaml_documents(path)
        for group in doc["groups"]
        for rule in group["rules"]
    ]


def keda_queries(path: Path) -> list[Query]:
    return [
        Query(f"keda: {doc['metadata']['name']} trigger {i}", trigger["metadata"]["query"], True)
        for doc in yaml_documents(path)
        if doc.get("kind") == "ScaledObject"
        for i, trigger in enumerate(doc["spec"]["triggers"])
        if trigger["type"] == "prometheus"
    ]


def sample_png(width: int = 64, height: int = 64) -> bytes:
    """An RGB gradient PNG, written by hand so that this script needs no imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    def pixel(x: int, y: int) -> tuple[int, int, int]:
        return x * 4 % 256, y * 4 % 256, (x ^ y) % 256

    # Each scanline starts with its filter type, 0 (none).
    rows = b"".join(b"\x00" + bytes(v for x in range(width) for v in pixel(x, y)) for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def post_image(url: str, payload: bytes, filename: str, api_key: str | None = None) -> int:
    """POST `payload` as the multipart field `image` (with `api_key` as a bearer token); the HTTP status."""
    boundary = uuid.uuid4().hex
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="image"; filename="{filename}"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    )
    body = head.encode() + payload + f"\r\n--{boundary}--\r\n".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def send_traffic(service: str, rounds: int, pause_s: float, api_key: str | None = None) -> None:
    """A few rounds of requests, `pause_s` apart, so rate() sees counters grow across scrapes.

    Each round: PNG and JPEG upscales with both models (a success for every image panel)
    and one upload that is not an image (a 4xx and a rejection for the rejections panel).
    """
    png = sample_png()
    calls = [
        ("/upscale", png, "sample.png", {200}),
        ("/upscale?model=srresnet&format=jpeg", png, "sample.png", {200}),
        ("/upscale", bytes(range(256)) * 4, "upload.bin", {400, 415}),
    ]
    for round_ in range(rounds):
        for path, payload, filename, expected in calls:
            status = post_image(service.rstrip("/") + path, payload, filename, api_key)
            print(f"traffic round {round_ + 1}: POST {path} {filename} -> {status}")
            if status not in expected:
                raise SystemExit(f"POST {path} answered {status}, expected one of {sorted(expected)}")
        time.sleep(pause_s)


def prometheus_get(prometheus: str, path: str, params: dict[str, str] | None = None) -> dict:
    url = prometheus.rstrip("/") + path + ("?" + urllib.parse.urlencode(params) if params else "")
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return dict(json.load(response))
    except urllib.error.HTTPError as error:
        # Prometheus answers 400/422 with a JSON body naming the problem (bad_data, execution).
        return dict(json.load(error))


def evaluate(prometheus: str, query: Query) -> tuple[str | None, int]:
    """(error or None, number of series with a number in the result).

    NaN does not count: histogram_quantile() over a window without observations returns
    NaN, which Grafana draws as nothing.
    """
    answer = prometheus_get(prometheus, "/api/v1/query", {"query": query.expr})
    if answer.get("status") != "success":
        return f"{answer.get('errorType')}: {answer.get('error')}", 0
    return None, sum(series["value"][1] != "NaN" for series in answer["data"]["result"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--prometheus", required=True, help="base URL, e.g. http://127.0.0.1:9090")
    parser.add_argument("--dashboard", type=Path, required=True)
    parser.add_argument("--rules", type=Path, nargs="*", default=[])
    parser.add_argument("--keda", type=Path, nargs="*", default=[], help="manifests with a ScaledObject")
    parser.add_argument(
        "--allow-empty",
        action="append",
        default=[],
        metavar="PANEL_TITLE",
        help="a panel allowed to have no data here (e.g. CUDA-only metrics on a CPU run)",
    )
    parser.add_argument("--service", help="base URL of the service to send sample traffic to first")
    parser.add_argument("--api-key", help="the key to send the sample traffic with (SRGAN_AUTH=required)")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--pause", type=float, default=2.0, help="seconds between traffic rounds")
    parser.add_argument("--wait", type=float, default=30.0, help="seconds to wait for empty panels to fill")
    args = parser.parse_args()

    dashboard = dashboard_queries(args.dashboard, set(args.allow_empty))
    queries = (
        dashboard
        + [q for path in args.rules for q in rule_queries(path)]
        + [q for path in args.keda for q in keda_queries(path)]
    )
    if args.service:
        send_traffic(args.service, args.rounds, args.pause, args.api_key)

    deadline = time.monotonic() + args.wait
    while True:
        results = {query: evaluate(args.prometheus, query) for query in queries}
        waiting = any(error is None and n == 0 and q.must_have_data for q, (error, n) in results.items())
        if not waiting or time.monotonic() > deadline:
            break
        time.sleep(2)

    exported = set(prometheus_get(args.prometheus, "/api/v1/label/__name__/values")["data"])
    # The series of panels allowed to be empty (CUDA-only ones on a CPU run) may be missing anywhere.
    allowed_missing = {
        name for q in dashboard if not q.must_have_data for name in SRGAN_SERIES.findall(q.expr)
    }
    failures = 0
    for query, (error, n) in results.items():
        unknown = sorted(set(SRGAN_SERIES.findall(query.expr)) - exported - allowed_missing)
        if error:
            verdict, detail = "ERROR", error
        elif unknown:
            verdict, detail = "ERROR", f"names series the service does not export: {', '.join(unknown)}"
        elif n == 0 and query.must_have_data:
            verdict, detail = "EMPTY", "no data, and it needs some"
        else:
            verdict, detail = "ok", f"{n} series" if n else "no data (allowed)"
        failures += verdict != "ok"
        print(f"{verdict:<6} {query.source}: {detail}")
    print(f"{len(results) - failures} passed, {failures} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
