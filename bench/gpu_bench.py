"""`python -m bench.gpu_bench`: the GPU benchmark (the `bench.gpu` package describes its sections)."""

import sys

from bench.gpu.main import main

if __name__ == "__main__":
    sys.exit(main())
