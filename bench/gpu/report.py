"""The run's results as JSON and as the markdown tables that go into docs/BENCHMARKS.md."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"GPU benchmark on {result['device']} ({result['machine']['date']}), window "
        f"{result['settings']['window']} (tile {result['settings']['tile']} + 2 x pad "
        f"{result['settings']['pad']}), weights {result['settings']['weights']}",
        "",
    ]
    peaks = result.get("peak") or {}
    if peaks and "error" not in peaks:
        lines.append("Matmul peak (TFLOP/s): " + ", ".join(f"{k} {v:.3g}" for k, v in peaks.items()))
    flops = result.get("flops") or {}
    if flops and "error" not in flops:
        lines.append(
            f"Generator: {flops['per_output_pixel_counted'] / 1e3:.0f} kFLOP per output pixel "
            f"(analytic {flops['per_output_pixel_analytic'] / 1e3:.0f}k), "
            f"{flops['per_tile'] / 1e9:.1f} GFLOP per tile"
        )
    sweep = [r for r in result.get("sweep") or [] if "tiles_per_s" in r]
    if sweep:
        batches = sorted({r["batch"] for r in sweep})
        lines += [
            "",
            "Model only, tiles/s (fraction of peak):",
            "",
            "| dtype | layout | " + " | ".join(f"B={b}" for b in batches) + " |",
            "|---|---|" + "---|" * len(batches),
        ]
        for key in dict.fromkeys((r["dtype"], r["layout"]) for r in sweep):
            cells = []
            for b in batches:
                row = next((r for r in sweep if (r["dtype"], r["layout"], r["batch"]) == (*key, b)), None)
                cells.append(
                    "-" if row is None else f"{row['tiles_per_s']:.0f} ({row['fraction_of_peak'] or 0:.0%})"
                )
            lines.append(f"| {key[0]} | {key[1]} | " + " | ".join(cells) + " |")
    for title, section in (
        ("Upscaler (uint8 host round trip)", "e2e"),
        ("Upscaler, torch.compile reduce-overhead", "compile"),
    ):
        rows = [r for r in result.get(section) or [] if isinstance(r, dict) and "tiles_per_s" in r]
        if rows:
            lines += [
                "",
                f"{title}: "
                + ", ".join(
                    f"B={r['batch']} {r['tiles_per_s']:.0f} tiles/s"
                    + (f" (compile {r['compile_s']:.0f} s)" if "compile_s" in r else "")
                    for r in rows
                ),
            ]
    layers = [r for r in result.get("layers") or [] if isinstance(r, dict) and "ms" in r]
    if layers:
        lines += _table(
            f"Time per forward pass by stage ({layers[0]['dtype']}, channels_last, B={layers[0]['batch']}):",
            ["stage", "ms", "share"],
            [[r["layer"], f"{r['ms']:.3f}", f"{r['share']:.0%}"] for r in layers],
        )
    tail = [r for r in result.get("tail") or [] if isinstance(r, dict) and "tiles_per_s" in r]
    if tail:
        lines += _table(
            f"Tail padded to more output channels (channels_last, B={tail[0]['batch']}), tiles/s:",
            ["dtype", "tail channels", "tiles/s", "max abs difference"],
            [
                [
                    r["dtype"],
                    str(r["tail_channels"]),
                    f"{r['tiles_per_s']:.0f}",
                    f"{r['max_abs_difference']:.2g}",
                ]
                for r in tail
            ],
        )
    service = result.get("service") or {}
    if service and "error" not in service:
        lines += [
            "",
            f"Service, closed loop at concurrency {service['concurrency']} ({service['sizes']}, "
            f"{service['format']} out):",
            "",
            "| config | images/s | tiles/s | p50 / p99 ms | batch fill | server CPU cores | statuses |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, s in service.items():
            if isinstance(s, dict) and "images_per_s" in s:
                lat = " / ".join(
                    f"{s['latency_ms'][p]:.0f}" if s["latency_ms"][p] is not None else "-"
                    for p in ("p50", "p99")
                )
                fill = "-" if s["mean_batch_fill"] is None else f"{s['mean_batch_fill']:.1f}"
                lines.append(
                    f"| {name} | {s['images_per_s']:.1f} | {s['tiles_per_s']:.0f} | {lat} | {fill} | "
                    f"{s['server_cpu_cores']:.1f} | {s['status_counts']} |"
                )
        if "batching_gain" in service:
            lines.append(f"\nBatching gain: {service['batching_gain']:.2f}x")
    return "\n".join(lines) + "\n"


def _table(title: str, header: list[str], rows: list[list[str]]) -> list[str]:
    """A titled markdown table, as lines, preceded by a blank line."""
    return [
        "",
        title,
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(row) + " |" for row in rows),
    ]


def write(out: Path, result: dict[str, Any]) -> None:
    (out / "gpu_bench.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "gpu_bench.md").write_text(markdown(result))
