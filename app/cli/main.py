"""The `srgan` command line: serve, upscale, compare, train, eval."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

# Before torch loads OpenMP: spinning worker threads collapse throughput whenever another process holds a
# core (docs/BENCHMARKS.md, "Throughput, latency and batching"), and the CLI runs inference on its main
# thread.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from pydantic import ValidationError

from app.cli import commands
from app.settings import Settings, describe_errors
from model.registry import REGISTRY, ModelRegistry


def build_parser(registry: ModelRegistry, settings: Settings) -> argparse.ArgumentParser:
    """The parser; model choices come from `registry`, defaults from `settings` (SRGAN_* variables)."""
    parser = argparse.ArgumentParser(prog="srgan", description="SRGAN super-resolution.")
    parser.add_argument("--log-level", default="INFO", help="logging level (default INFO)")
    parser.set_defaults(registry=registry)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for register in commands.REGISTER:
        register(subparsers, registry, settings)
    return parser


def main(argv: Sequence[str] | None = None, registry: ModelRegistry = REGISTRY) -> int:
    try:
        settings = Settings()
    except ValidationError as exc:
        print(f"srgan: the SRGAN_* settings are not valid:\n{describe_errors(exc)}", file=sys.stderr)
        return 2
    args = build_parser(registry, settings).parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    result: int = args.handler(args)
    return result
