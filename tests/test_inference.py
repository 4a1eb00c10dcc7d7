"""The per-device defaults of `model.inference` and the 16-bit path of `Upscaler`."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model import inference
from model.inference import Upscaler, resolve_dtype
from tests.conftest import tiny_generator


@pytest.mark.parametrize("native", [True, False])
def test_auto_is_bfloat16_on_a_cpu_that_computes_it_and_float32_elsewhere(
        monkeypatch: pytest.MonkeyPatch, native: bool) -> None:
    monkeypatch.setattr(inference, "cpu_computes_bfloat16", lambda: native)
    assert resolve_dtype("auto", torch.device("cpu")) == (torch.bfloat16 if native else torch.float32)
    assert resolve_dtype("auto", torch.device("cuda")) == torch.float16
    assert resolve_dtype("float32", torch.device("cpu")) == torch.float32


def test_sixteen_bit_pixels_are_computed_in_float32_whatever_the_dtype() -> None:
    """A bfloat16 model would keep 8 of their 16 bits: 16-bit windows take the float32 copy, byte for
    byte what a float32 model returns; 8-bit windows stay in bfloat16."""
    cpu = torch.device("cpu")
    narrow = Upscaler.from_module("t", tiny_generator(5), cpu, torch.bfloat16)
    wide = Upscaler.from_module("t", tiny_generator(5), cpu, torch.float32)
    assert narrow.wide_model is not None and wide.wide_model is None
    rng = np.random.default_rng(6)
    deep = rng.integers(0, 65536, (2, 12, 10, 3), dtype=np.uint16)
    np.testing.assert_array_equal(narrow(deep), wide(deep))
    shallow = rng.integers(0, 256, (2, 12, 10, 3), dtype=np.uint8)
    assert narrow(shallow).dtype == np.uint8
    assert next(narrow.model.parameters()).dtype == torch.bfloat16
