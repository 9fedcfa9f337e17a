"""The embedded demo model: a tiny Llama-style LM trained on the Python standard library.

It ships inside the package (``logitkit/demo/model/``), so the CLI works on a
fresh machine with no network. Rebuild it with ``python -m logitkit.demo.train``.
"""

from __future__ import annotations

from pathlib import Path

from logitkit.demo.loading import TextCodec, load_codec, load_model

#: The folder holding config.json, model.safetensors and tokenizer.json.
MODEL_DIR = Path(__file__).parent / "model"

__all__ = ["MODEL_DIR", "TextCodec", "load_codec", "load_model"]
