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
                    + (f", {_verdict(r)}" if "accepted" in r else "")
                    for r in rows
                ),
            ]
    model_rate = _model_rate(result)
    engine = [r for r in result.get("engine") or [] if isinstance(r, dict) and "tiles_per_s" in r]
    if engine:
        lines += _table(
            "Engine alone (no HTTP, no codecs), closed loop, by batches in flight:",
            ["in flight", "images/s", "tiles/s", "output MP/s", "of model-only"],
            [[str(r["max_in_flight"]), f"{r['images_per_s']:.1f}", f"{r['tiles_per_s']:.0f}",
              f"{r['output_mpix_per_s']:.3g}", _share(r["tiles_per_s"], model_rate)] for r in engine],
        )
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
            ["dtype", "tail channels", "tiles/s", "max abs difference", "acceptance (within 0.05 dB)"],
            [
                [
                    r["dtype"],
                    str(r["tail_channels"]),
                    f"{r['tiles_per_s']:.0f}",
                    f"{r['max_abs_difference']:.2g}",
                    _verdict(r),
                ]
                for r in tail
            ],
        )
    graphs = [r for r in result.get("graphs") or [] if isinstance(r, dict) and "tiles_per_s" in r]
    if graphs:
        lines += _table(
            f"CUDA graph of the eager model at the fixed shape ({graphs[0]['dtype']}, "
            f"B={graphs[0]['batch']}):",
            ["variant", "tiles/s", "max abs difference", "acceptance (within 0.05 dB)"],
            [[r["variant"], f"{r['tiles_per_s']:.0f}", f"{r['max_abs_difference']:.2g}", _verdict(r)]
             for r in graphs],
        )
    buckets = [r for r in result.get("buckets") or [] if isinstance(r, dict) and "flops_overhead" in r]
    if buckets:
        lines += _table(
            f"Window shapes for a mix of image sizes (model only, full batches of {buckets[0]['batch']}):",
            ["mix", "policy", "shapes", "FLOPs overhead", "useful output MP/s", "images/s"],
            [[r["mix"], r["policy"], str(r["shapes"]), f"{r['flops_overhead']:.2f}x",
              f"{r['useful_output_mpix_per_s']:.3g}", f"{r['images_per_s']:.1f}"] for r in buckets],
        )
    jpeg = result.get("jpeg") or {}
    if jpeg.get("rows"):
        lines += _table(
            f"JPEG encoding (q90; GPU encoder: {jpeg['gpu_encoder']}):",
            ["encoder", "output", "ms per MP", "bytes per pixel", "PSNR vs image (dB)"],
            [[r["encoder"], r["output"], f"{r['ms_per_mp']:.1f}", f"{r['bytes_per_pixel']:.2f}",
              f"{r['psnr_db']:.1f}"] for r in jpeg["rows"]],
        )
        if "concurrent" in jpeg:
            c = jpeg["concurrent"]
            lines.append(f"\nConcurrent GPU encodes: {c['undecodable']} undecodable of {c['encodes']} "
                         f"({c['threads']} threads)")
    service = result.get("service") or {}
    if service and "error" not in service:
        lines += [
            "",
            f"Service, closed loop at concurrency {service['concurrency']} ({service['sizes']}):",
            "",
            "| output | config | images/s | tiles/s | of model-only | p50 / p99 ms | batch fill | "
            "server CPU cores | statuses |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        gains = []
        for fmt, runs in service.items():
            if not isinstance(runs, dict):
                continue
            for name, s in runs.items():
                if isinstance(s, dict) and "images_per_s" in s:
                    lat = " / ".join(
                        f"{s['latency_ms'][p]:.0f}" if s["latency_ms"][p] is not None else "-"
                        for p in ("p50", "p99")
                    )
                    fill = "-" if s["mean_batch_fill"] is None else f"{s['mean_batch_fill']:.1f}"
                    lines.append(
                        f"| {fmt} | {name} | {s['images_per_s']:.1f} | {s['tiles_per_s']:.0f} | "
                        f"{_share(s['tiles_per_s'], model_rate)} | {lat} | {fill} | "
                        f"{s['server_cpu_cores']:.1f} | {s['status_counts']} |"
                    )
            if "batching_gain" in runs:
                gains.append(f"{fmt} {runs['batching_gain']:.2f}x")
        if gains:
            lines.append("\nBatching gain: " + ", ".join(gains))
    return "\n".join(lines) + "\n"


def _model_rate(result: dict[str, Any]) -> float | None:
    """Model-only tiles/s at the service's dtype and batch (channels_last), the yardstick of the targets."""
    settings = result["settings"]
    for row in result.get("sweep") or []:
        if (isinstance(row, dict) and "tiles_per_s" in row and row["dtype"] == settings["e2e_dtype"]
                and row["layout"] == "channels_last" and str(row["batch"]) == settings["service_batch"]):
            return float(row["tiles_per_s"])
    return None


def _share(rate: float, model_rate: float | None) -> str:
    return "-" if not model_rate else f"{rate / model_rate:.2f}"


def _verdict(row: dict[str, Any]) -> str:
    """The acceptance rule's cell: the PSNR change and whether it is within 0.05 dB."""
    if "error" in row:
        return f"failed: {row['error'][:80]}"
    return f"{row['delta_db']:+.3f} dB, {'accepted' if row['accepted'] else 'REJECTED'}"


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
