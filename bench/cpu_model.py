"""The generator alone on this CPU: milliseconds per window by how it is run.

- `plain`: the network as loaded (BatchNorm not folded), contiguous float32: what a plain app runs
  (`bench/peer_app.py`);
- `folded`: BatchNorm folded into the convolutions, contiguous;
- `folded, channels_last`: folded, network and input channels_last: what `Upscaler` runs on every device;
- `bf16, channels_last`: the same in bfloat16 (SRGAN_DTYPE=bfloat16; this CPU has AVX512-BF16 where
  `lscpu` lists avx512_bf16).

Windows are square sides of `--sides` (64 and 88: a 64 x 64 image alone and with the service's pad of
12; 120: a 96-pixel tile with its pad), batch 1, the variants interleaved and the best of `--repeats`
taken, so that other work on the machine disturbs them alike.

With `--eval-dir` (repeatable), bfloat16 against float32 for every registered model by the acceptance
rule of `bench/gpu/quality.py` (the service's path, the evaluation protocol: within 0.05 dB).

    python -m bench.cpu_model
    python -m bench.cpu_model --sides 64 --eval-dir ../shared/datasets/eval/Set5 \
        --eval-dir ../shared/datasets/eval/Set14
"""

from __future__ import annotations

import argparse
import copy
import time
from pathlib import Path
from typing import Any

import torch

from bench.gpu.quality import acceptance, eval_images, psnr_of
from bench.serving import emit, machine
from model.registry import REGISTRY
from model.weights import load_generator


def variants() -> dict[str, tuple[torch.nn.Module, torch.dtype, torch.memory_format]]:
    plain, _ = load_generator(REGISTRY.weights_path(REGISTRY.default.name))
    folded = copy.deepcopy(plain).fold_batchnorm()  # type: ignore[operator]
    last = torch.channels_last
    return {
        "plain": (plain, torch.float32, torch.contiguous_format),
        "folded": (folded, torch.float32, torch.contiguous_format),
        "folded, channels_last": (copy.deepcopy(folded).to(memory_format=last), torch.float32, last),
        "bf16, channels_last": (copy.deepcopy(folded).to(torch.bfloat16, memory_format=last),
                                torch.bfloat16, last),
    }


def bfloat16_quality(eval_dirs: list[Path]) -> list[dict[str, Any]]:
    """PSNR of each registered model in float32 and bfloat16 through the service's path (tile 96, pad 12,
    one window per call), per folder, with the acceptance rule's verdict."""
    cpu, rows = torch.device("cpu"), []
    for spec in REGISTRY:
        for folder in eval_dirs:
            images = eval_images(folder)
            psnr = {
                dtype: psnr_of(REGISTRY.load(spec.name, None, cpu, dtype).model, cpu, dtype, images,
                               tile=96, pad=spec.context_pad, batch=1)
                for dtype in (torch.float32, torch.bfloat16)
            }
            rows.append({"model": spec.name, "dataset": folder.name, "float32_db": psnr[torch.float32],
                         **acceptance(psnr[torch.float32], psnr[torch.bfloat16])})
            print(rows[-1], flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sides", default="64,88,120")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--eval-dir", type=Path, action="append", default=[])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    nets = variants()
    rows: list[dict[str, Any]] = []
    for side in map(int, args.sides.split(",")):
        inputs = {name: torch.rand(1, 3, side, side, dtype=dtype).contiguous(memory_format=layout)
                  for name, (_net, dtype, layout) in nets.items()}
        best = dict.fromkeys(nets, float("inf"))
        with torch.inference_mode():
            for name, (net, _dtype, _layout) in nets.items():
                net(inputs[name])
            for _ in range(args.repeats):
                for name, (net, _dtype, _layout) in nets.items():
                    started = time.perf_counter()
                    net(inputs[name])
                    best[name] = min(best[name], time.perf_counter() - started)
        for name, seconds in best.items():
            rows.append({"side": side, "variant": name, "ms": seconds * 1000,
                         "lr_kpix_per_s": side * side / seconds / 1000})
        print(f"{side}: " + ", ".join(f"{name} {best[name] * 1000:.0f} ms" for name in nets), flush=True)
    result: dict[str, Any] = {"machine": machine(), "threads": torch.get_num_threads(), "rows": rows}
    if args.eval_dir:
        result["bfloat16_quality"] = bfloat16_quality(args.eval_dir)
    emit(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
