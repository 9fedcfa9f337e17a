"""Loading a local transformers model folder and its tokenizer, offline."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass
class TextCodec:
    """Text to token ids and back, plus the end-of-text ids; wraps whichever tokenizer the folder has."""

    tokenizer: Any
    eos_ids: list[int]

    def encode(self, text: str) -> list[int]:
        if hasattr(self.tokenizer, "encode_batch"):  # a raw tokenizers.Tokenizer
            return list(self.tokenizer.encode(text).ids)
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def decode(self, ids: list[int]) -> str:
        if hasattr(self.tokenizer, "encode_batch"):
            return str(self.tokenizer.decode(ids, skip_special_tokens=True))
        return str(self.tokenizer.decode(ids, skip_special_tokens=True))

    def token_text(self, token_id: int) -> str:
        """How one token reads on its own, for tables and plots."""
        return self.decode([token_id])


def _offline() -> None:
    # Never reach for a hub: the demo model and --model folders are local.
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def resolve_model_dir(path: str | Path | None) -> Path:
    from logitkit.demo import MODEL_DIR

    folder = Path(path) if path is not None else MODEL_DIR
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder}: not a transformers model folder (no config.json)")
    return folder


def load_model(path: str | Path | None = None) -> Any:
    """A causal LM from a local folder (the demo model by default), in eval mode."""
    _offline()
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    model = AutoModelForCausalLM.from_pretrained(resolve_model_dir(path))
    model.eval()  # type: ignore[no-untyped-call]
    return model


def load_codec(path: str | Path | None = None) -> TextCodec:
    """The folder's tokenizer: tokenizer.json through ``tokenizers`` when present, else AutoTokenizer."""
    _offline()
    folder = resolve_model_dir(path)
    tokenizer_file = folder / "tokenizer.json"
    if tokenizer_file.is_file():
        from tokenizers import Tokenizer

        tokenizer: Any = Tokenizer.from_file(str(tokenizer_file))
    else:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(folder)
    return TextCodec(tokenizer, _eos_ids(folder))


def _eos_ids(folder: Path) -> list[int]:
    import json

    for name in ("generation_config.json", "config.json"):
        file = folder / name
        if file.is_file():
            eos = json.loads(file.read_text(encoding="utf-8")).get("eos_token_id")
            if eos is not None:
                return [int(e) for e in (eos if isinstance(eos, list) else [eos])]
    return []
