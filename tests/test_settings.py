"""Settings that depend on each other are checked together, with a message that names the fix."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.settings import Settings
from model.registry import REGISTRY


def test_the_defaults_fit_together() -> None:
    settings = Settings()
    assert settings.pad_for(REGISTRY) == max(spec.context_pad for spec in REGISTRY)
    assert Settings(tile_pad=0).pad_for(REGISTRY) == 0


def test_a_tile_too_small_for_the_pixel_limit_is_refused_with_the_fix(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Before this check, SRGAN_TILE=32 turned every image near the pixel limit into a 413.
    monkeypatch.setenv("SRGAN_TILE", "32")
    with pytest.raises(ValidationError) as refused:
        Settings()
    message = str(refused.value)
    assert "2048x2048 image, which is 4096 tiles of SRGAN_TILE=32" in message
    assert "SRGAN_MAX_QUEUE_TILES to at least 4096" in message
    assert "SRGAN_TILE to at least 94" in message
    assert "SRGAN_MAX_INPUT_PIXELS to at most 495616" in message
    # Each fix it names is accepted (SRGAN_TILE=32 still set where the fix is not the tile).
    Settings(max_queue_tiles=4096)
    Settings(tile=94)
    Settings(max_input_pixels=495616)


def test_the_cli_reports_bad_settings_instead_of_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.cli.main import main

    monkeypatch.setenv("SRGAN_MAX_QUEUE_TILES", "10")
    assert main(["eval", "--data", "."]) == 2
    assert "SRGAN_MAX_QUEUE_TILES=10" in capsys.readouterr().err
