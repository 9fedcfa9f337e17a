"""``logitkit plot``: valid PNG files of the expected pixel size."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest

from logitkit.cli import main
from logitkit.plotting import DPI, FIGSIZE

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
EXPECTED_SIZE = (int(FIGSIZE[0] * DPI), int(FIGSIZE[1] * DPI))


def png_size(path: Path) -> tuple[int, int]:
    """Width and height from the PNG header; fails unless the file starts like a PNG with an IHDR chunk."""
    header = path.read_bytes()[:24]
    assert header[:8] == PNG_SIGNATURE, f"{path} is not a PNG"
    assert header[12:16] == b"IHDR"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def test_expected_size_is_1200_by_800():
    assert EXPECTED_SIZE == (1200, 800)


def test_temperature_writes_both_figures(tmp_path, capsys):
    assert (
        main(["plot", "temperature", "--values", "0.5", "1.0", "1.5", "--out", str(tmp_path)]) == 0
    )
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["temperature_raw.png", "temperature_sorted.png"]
    for name in written:
        assert png_size(tmp_path / name) == EXPECTED_SIZE
    assert "temperature_raw.png" in capsys.readouterr().out


def test_entropy_and_pipeline_figures(tmp_path):
    assert main(["plot", "entropy", "--out", str(tmp_path), "--prefix", "x_"]) == 0
    assert main(["plot", "pipeline", "examples/seed-walkthrough.yaml", "--out", str(tmp_path)]) == 0
    assert png_size(tmp_path / "x_entropy.png") == EXPECTED_SIZE
    assert png_size(tmp_path / "pipeline.png") == EXPECTED_SIZE


def test_temperature_from_the_demo_model(tmp_path):
    assert main(["plot", "temperature", "--prompt", "import os", "--out", str(tmp_path)]) == 0
    assert png_size(tmp_path / "temperature_raw.png") == EXPECTED_SIZE
    assert png_size(tmp_path / "temperature_sorted.png") == EXPECTED_SIZE


def test_nonpositive_temperature_is_refused(tmp_path):
    with pytest.raises(SystemExit) as info:
        main(["plot", "temperature", "--values", "0", "1", "--out", str(tmp_path)])
    assert "--values must be > 0" in str(info.value.code)
    assert not list(tmp_path.iterdir())


def test_invalid_pipeline_config_exits_2_without_writing(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("processors:\n  - top_p: 1.5\n")
    out = tmp_path / "out"
    assert main(["plot", "pipeline", str(bad), "--out", str(out)]) == 2
    assert "processors[0].top_p: must be > 0 and <= 1 (got 1.5)" in capsys.readouterr().err
    assert not out.exists()


def test_not_a_model_folder_exits_2(tmp_path, capsys):
    out = tmp_path / "out"
    assert main(["plot", "temperature", "--prompt", "x", "--model", str(tmp_path), "--out", str(out)]) == 2
    assert "not a transformers model folder" in capsys.readouterr().err
    assert not out.exists()
