"""GPU benchmark, built to run as ONE device call (H100/H200): what the model and the service get out of
the chip, and where the time goes.

Sections (each bounded by what is left of `--budget-s`; results are written after every section, so a
cut-off run still returns what it measured):

- peak:    the chip's measured matmul peak (8192^3 fp16, bf16, tf32, fp32 products), the yardstick;
- flops:   the generator's FLOPs per output pixel, analytically and with torch's FlopCounterMode;
- sweep:   model-only throughput (device tensors in, no host copies) vs batch size 1..64 for fp32, fp16,
           bf16, contiguous and channels_last, as tiles/s, output MP/s, TFLOP/s and fraction of peak;
- e2e:     the service's `Upscaler` (uint8 host windows -> device -> uint8 host) at the service dtype;
- compile: the same with torch.compile(mode="reduce-overhead") (CUDA graphs) at fixed batch sizes,
           with the compile time;
- layers:  where a forward pass spends its time, per stage of the generator (head, residual body, each
           upsampler's conv / PixelShuffle / PReLU, 9x9 tail), at the e2e dtype, channels_last;
- tail:    an experiment on the 9x9 tail, which has 3 output channels and a large share of a forward
           pass (docs/BENCHMARKS.md, GPU benchmark): the model with the tail's filters zero-padded to 8 and 16
           output channels (the extra channels are dropped), against the model as shipped, with the
           largest output difference;
- service: `srgan serve` with SRGAN_DEVICE=cuda driven by the load generator at concurrency 32,
           micro-batching on vs SRGAN_MAX_BATCH=1, with batch fill and the server's CPU use.

One module per section group (`peak`, `sweep`, `layers`, `service`), with `timing` shared by them,
`report` for the tables and `main` for the command line:

    python -m bench.gpu_bench --out "$OUT"          # on the GPU box (see bench/run_gpu.sh)
    python -m bench.gpu_bench --dry-run --out /tmp/gpu-dry   # on a CPU, tiny sizes, a minute
"""
