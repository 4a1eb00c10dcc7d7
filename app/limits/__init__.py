"""Bounds on what requests may spend on the host, checked before they spend it.

- `budget`: the memory budget (SRGAN_MEMORY_BUDGET_MB) that every request reserves its worst case from.
- `cost`: that worst case, estimated from an image's header before anything is decoded.
- `pool`: the one bounded thread pool for decoding, encoding and /compare's stages, with admission.
- `container`: what the container allows (cgroup memory limit and CPU quota), which the defaults follow.
"""
