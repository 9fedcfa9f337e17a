"""``logitkit generate``: run a pipeline on a local model and stream the text."""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from logitkit.config import ResolvedConfig, resolve
from logitkit.loading import read_config_file
from logitkit.pipeline import Pipeline

HELP = "Generate text with a config's pipeline on the demo model (or --model PATH), streaming as it goes."

#: Without --config or --preset: the source document's combined example.
DEFAULT_PRESET = "combined"
DEFAULT_MAX_NEW_TOKENS = 64


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("prompt", nargs="?", default="", metavar="PROMPT", help="text to continue (default: empty)")
    parser.add_argument("--config", "-c", metavar="FILE", help="YAML, JSON or TOML pipeline config")
    parser.add_argument("--preset", "-p", metavar="NAME", help=f"config preset (see 'logitkit list'); default {DEFAULT_PRESET!r} without --config")
    parser.add_argument("--model", "-m", metavar="PATH", help="local transformers model folder (default: the embedded demo model)")
    parser.add_argument("--max-new-tokens", "-n", type=int, metavar="N", help=f"tokens to generate (default: the config's, else {DEFAULT_MAX_NEW_TOKENS})")
    parser.add_argument("--seed", type=int, metavar="N", help="sampling seed, for repeatable output")


def resolve_from_args(config: str | None, preset: str | None) -> ResolvedConfig:
    """The pipeline config from --config and --preset; --preset replaces any ``preset:`` in the file."""
    if config is None:
        return resolve({"preset": preset or DEFAULT_PRESET}, source="--preset")
    data = read_config_file(config)
    if preset is not None:
        data = {"processors": data} if isinstance(data, list) else dict(data) if isinstance(data, dict) else data
        if isinstance(data, dict):
            data["preset"] = preset
    return resolve(data, source=str(config))


def with_model_tokens(resolved: ResolvedConfig, eos_ids: list[int], vocab_size: int) -> ResolvedConfig:
    """Fill the ``tokens:`` fields the config left empty from the model's own."""
    updates: dict[str, Any] = {}
    if resolved.tokens.eos is None and eos_ids:
        updates["eos"] = eos_ids
    if resolved.tokens.vocab_size is None:
        updates["vocab_size"] = vocab_size
    if not updates:
        return resolved
    return dataclasses.replace(resolved, tokens=resolved.tokens.model_copy(update=updates))


def _cache_keyword(model: Any) -> str:
    # transformers 5 calls the KV cache argument ``cache``; older versions ``past_key_values``.
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


def stream_tokens(
    model: Any, input_ids: torch.Tensor, pipe: Pipeline, max_new_tokens: int, eos_ids: list[int]
) -> Iterator[int]:
    """Yield one token id per step, reusing the model's KV cache; stops after an eos token."""
    keyword = _cache_keyword(model)
    sequence = input_ids
    pipe.reset()
    with torch.no_grad():
        out = model(input_ids=sequence, use_cache=True)
        for _ in range(max_new_tokens):
            token = pipe.next_tokens(sequence, out.logits[:, -1, :].float())
            yield int(token[0])
            if int(token[0]) in eos_ids:
                return
            sequence = torch.cat([sequence, token.view(1, 1)], dim=-1)
            cache = out[keyword] if keyword in out else getattr(out, "past_key_values", None)
            out = model(input_ids=token.view(1, 1), use_cache=True, **{keyword: cache})


class StreamDecoder:
    """Turns token ids into text as they arrive, holding back a character whose bytes are incomplete.

    A byte-level token can end in the middle of a multi-byte UTF-8 character;
    the decoder then shows U+FFFD, so nothing is printed until the next token
    completes it.
    """

    def __init__(self, decode: Callable[[list[int]], str]) -> None:
        self.decode = decode
        self.ids: list[int] = []
        #: The text printed so far.
        self.text = ""

    def push(self, token: int) -> str:
        """The new text that ``token`` completes ("" while a character is unfinished)."""
        self.ids.append(token)
        text = self.decode(self.ids)
        if text.endswith("\ufffd"):
            return ""
        piece, self.text = text[len(self.text) :], text
        return piece

    def flush(self) -> str:
        """Whatever is still held back, replacement characters included."""
        text = self.decode(self.ids)
        piece, self.text = text[len(self.text) :], text
        return piece


def run(args: argparse.Namespace) -> int:
    from logitkit.demo import load_codec, load_model

    resolved = resolve_from_args(args.config, args.preset)
    if args.model is not None and not (Path(args.model) / "config.json").is_file():
        print(f"error: {args.model}: not a transformers model folder (no config.json)", file=sys.stderr)
        return 2
    model = load_model(args.model)
    codec = load_codec(args.model)
    vocab_size = int(model.get_output_embeddings().weight.shape[0])
    resolved = with_model_tokens(resolved, codec.eos_ids, vocab_size)
    seed = args.seed if args.seed is not None else resolved.generation.seed
    context: dict[str, Any] = {"seeds": torch.tensor([seed], dtype=torch.int64)} if seed is not None else {}
    pipe = Pipeline.from_resolved(resolved, **context)
    max_new = args.max_new_tokens or resolved.generation.max_new_tokens or DEFAULT_MAX_NEW_TOKENS
    stop_strings = resolved.generation.stop_strings

    prompt_ids = codec.encode(args.prompt)
    if not prompt_ids:
        print("error: the prompt encodes to no tokens and the model has no start token", file=sys.stderr)
        return 2
    input_ids = torch.tensor([prompt_ids], dtype=torch.long)
    sys.stdout.write(args.prompt)
    sys.stdout.flush()

    generated: list[int] = []
    decoder = StreamDecoder(codec.decode)
    reason = "length"
    started = time.perf_counter()
    for token in stream_tokens(model, input_ids, pipe, max_new, codec.eos_ids):
        generated.append(token)
        if token in codec.eos_ids:
            reason = "eos"
            break
        piece = decoder.push(token)
        hit = next((s for s in stop_strings if s in decoder.text), None)
        if hit is not None:
            # Print up to the end of the stop string and no further.
            end = decoder.text.index(hit) + len(hit)
            piece = piece[: max(0, len(piece) - (len(decoder.text) - end))]
            reason = "stop string"
        sys.stdout.write(piece)
        sys.stdout.flush()
        if hit is not None:
            break
    elapsed = time.perf_counter() - started
    if reason != "stop string":
        sys.stdout.write(decoder.flush())
    sys.stdout.write("\n")
    sys.stdout.flush()
    rate = len(generated) / elapsed if elapsed > 0 else float("inf")
    print(f"[{len(generated)} tokens, {rate:.1f} tokens/s, finish: {reason}]", file=sys.stderr)
    return 0
