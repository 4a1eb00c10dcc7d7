"""Settings that depend on each other are checked together, with a message that names the fix."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from app.settings import Settings, describe_errors
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


def test_every_problem_is_one_line_naming_its_variable_and_never_the_value(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SRGAN_TILE", "8")
    monkeypatch.setenv("SRGAN_LOG_LEVEL", "loud-secret")
    with pytest.raises(ValidationError) as refused:
        Settings()
    assert describe_errors(refused.value) == (
        "SRGAN_TILE: Input should be greater than or equal to 16\n"
        "SRGAN_LOG_LEVEL: unknown log level 'loud-secret'"
    )
    monkeypatch.delenv("SRGAN_LOG_LEVEL")
    monkeypatch.setenv("SRGAN_MAX_BATCH", "hunter2")  # a value that could be a key is not repeated
    with pytest.raises(ValidationError) as refused:
        Settings()
    assert "hunter2" not in describe_errors(refused.value)


def test_a_problem_between_settings_is_its_message_alone() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(auth="required", api_keys=" , ")
    assert describe_errors(refused.value) == (
        "SRGAN_AUTH=required but SRGAN_API_KEYS is empty: set SRGAN_API_KEYS to comma-separated keys (on "
        "Kubernetes, the Secret srgan-api-keys), or SRGAN_AUTH=optional to serve without keys"
    )


def test_keys_are_split_on_commas_and_trimmed_and_log_levels_are_upper_case() -> None:
    assert Settings(api_keys=" alpha, beta ,,").api_key_set == {"alpha", "beta"}
    assert Settings(api_keys="").api_key_set == frozenset()
    assert Settings(log_level="debug").log_level == "DEBUG"
