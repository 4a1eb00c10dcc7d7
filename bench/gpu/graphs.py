"""Section `graphs`: the eager model captured as one CUDA graph at the service's fixed batch shape, without
torch.compile (cuDNN's kernels as they are, replayed without a Python launch per layer), against eager,
with the acceptance rule of `quality`."""

from __future__ import annotations

import argparse
import functools
from typing import Any

import torch

from bench.gpu.quality import judged, psnr_of
from bench.gpu.timing import on_device, random_windows, time_call
from model.generator import Generator
from model.inference import DTYPES


class GraphedModel(torch.nn.Module):
    """`net` captured as a CUDA graph for the shape of `example`: a call copies its input into the graph's
    static input, replays the graph and returns its static output, which the next call overwrites.

    On a CPU, which has no CUDA graphs, a call is a plain call: a dry run then checks the rest of the
    section.
    """

    def __init__(self, net: Generator, example: torch.Tensor) -> None:
        super().__init__()
        self.net, self.upscale = net, net.upscale
        self.static_input = example.clone()
        self.graph: torch.cuda.CUDAGraph | None = None
        if example.device.type != "cuda":
            return
        # Warm-up on a side stream (allocator, cuDNN algorithm choice), as capture requires.
        side = torch.cuda.Stream(example.device)
        side.wait_stream(torch.cuda.current_stream(example.device))
        with torch.cuda.stream(side), torch.no_grad():
            for _ in range(3):
                net(self.static_input)
        torch.cuda.current_stream(example.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph), torch.no_grad():
            self.static_output = net(self.static_input)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.graph is None:
            return self.net(x)
        self.static_input.copy_(x)
        self.graph.replay()
        return self.static_output


def graphs_experiment(
    model: Generator, args: argparse.Namespace, device: torch.device, dtype_name: str, batch: int,
    images: list[Any],
) -> list[dict[str, Any]]:
    """Tiles/s of the eager model and of its CUDA graph at `batch` windows, and the graph's PSNR on
    `images` against eager's."""
    dtype = DTYPES[dtype_name]
    window = args.tile + 2 * args.pad
    eager = on_device(model, device, dtype)
    x = random_windows(batch, window, device, dtype)
    graphed = GraphedModel(eager, x)

    def measure(net: torch.nn.Module) -> float:
        return psnr_of(net, device, dtype, images, tile=args.tile, pad=args.pad, batch=batch)

    reference_db = measure(eager)
    with torch.inference_mode():
        reference = eager(x).float()
        difference = float((graphed(x).float() - reference).abs().max())
    rows = []
    captured = "CUDA graph" if graphed.graph is not None else "CUDA graph (CPU: a plain call)"
    for variant, net in (("eager", eager), (captured, graphed)):
        with torch.inference_mode():
            per_batch = time_call(functools.partial(net, x), device, args.seconds_per_point)
        rows.append({
            "variant": variant,
            "dtype": dtype_name,
            "batch": batch,
            "tiles_per_s": batch / per_batch,
            "max_abs_difference": 0.0 if net is eager else difference,
            **judged(net, reference_db, measure),
        })
    return rows
