"""The `srgan` command line: serve, upscale, compare, train, eval."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

# Before torch loads OpenMP: spinning worker threads collapse throughput whenever another process holds a
# core (docs/BENCHMARKS.md, "OpenMP wait policy"), and the CLI runs inference on its main thread.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from app.cli import commands


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="srgan", description="SRGAN x4 super-resolution.")
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    subparsers = parser.add_subparsers(dest="command", required=True)
    for register in commands.REGISTER:
        register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    result: int = args.handler(args)
    return result
