"""``logitkit generate``: run a pipeline on a local model and stream the text."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from logitkit.commands import _batch as batch
from logitkit.config import ResolvedConfig, resolve
from logitkit.loading import read_config_file
from logitkit.pipeline import Pipeline

HELP = "Generate text with a config's pipeline on the demo model (or --model PATH), streaming as it goes; --input/--output run a resumable batch job."

#: Without --config or --preset: the source document's combined example.
DEFAULT_PRESET = "combined"
DEFAULT_MAX_NEW_TOKENS = 64
#: Below this size the decoding loop runs on one CPU thread (see ``run``).
SMALL_MODEL_PARAMETERS = 50_000_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "prompt", nargs="?", default="", metavar="PROMPT",
        help="text to continue (default: empty); '-' reads it from standard input",
    )
    parser.add_argument("--config", "-c", metavar="FILE", help="YAML, JSON or TOML pipeline config")
    parser.add_argument(
        "--preset",
        "-p",
        metavar="NAME",
        help=f"config preset (see 'logitkit list'); default {DEFAULT_PRESET!r} without --config",
    )
    parser.add_argument(
        "--model",
        "-m",
        metavar="PATH",
        help="local transformers model folder (default: the embedded demo model)",
    )
    parser.add_argument(
        "--max-new-tokens",
        "-n",
        type=int,
        metavar="N",
        help=f"tokens to generate (default: the config's, else {DEFAULT_MAX_NEW_TOKENS})",
    )
    parser.add_argument(
        "--seed", type=int, metavar="N", help="sampling seed, for repeatable output"
    )
    parser.add_argument(
        "--chat", action="store_true",
        help="wrap the prompt in the model's chat template as a user turn (needs --model with one)",
    )  # fmt: skip
    batch.add_arguments(parser)


def resolve_from_args(config: str | None, preset: str | None) -> ResolvedConfig:
    """The pipeline config from --config and --preset; --preset replaces any ``preset:`` in the file."""
    if config is None:
        return resolve({"preset": preset or DEFAULT_PRESET}, source="--preset")
    data = read_config_file(config)
    if preset is not None:
        data = (
            {"processors": data}
            if isinstance(data, list)
            else dict(data)
            if isinstance(data, dict)
            else data
        )
        if isinstance(data, dict):
            data["preset"] = preset
    return resolve(data, source=str(config))


def with_model_tokens(
    resolved: ResolvedConfig, eos_ids: list[int], vocab_size: int
) -> ResolvedConfig:
    """Fill the ``tokens:`` fields the config left empty from the model's own."""
    updates: dict[str, Any] = {}
    if resolved.tokens.eos is None and eos_ids:
        updates["eos"] = eos_ids
    if resolved.tokens.vocab_size is None:
        updates["vocab_size"] = vocab_size
    if not updates:
        return resolved
    return dataclasses.replace(resolved, tokens=resolved.tokens.model_copy(update=updates))


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


def read_prompt(prompt: str) -> str:
    """The prompt argument, or with ``-`` standard input less the one newline a shell pipe adds."""
    if prompt != "-":
        return prompt
    text = sys.stdin.read()
    return text[:-1] if text.endswith("\n") else text


def first_line(exc: BaseException) -> str:
    """``Type: message``, the message's first line cut to 200 characters."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text[:200]}"


def is_allocation_failure(exc: BaseException) -> bool:
    """MemoryError, torch's OutOfMemoryError, or the CPU allocator's RuntimeError."""
    if isinstance(exc, (MemoryError, torch.OutOfMemoryError)):
        return True
    return "can't allocate memory" in str(exc) or "not enough memory" in str(exc)


def run(args: argparse.Namespace) -> int:
    from logitkit.demo import load_codec, load_model
    from logitkit.generation import generate

    resolved = resolve_from_args(args.config, args.preset)
    if args.model is not None and not (Path(args.model) / "config.json").is_file():
        print(
            f"error: {args.model}: not a transformers model folder (no config.json)",
            file=sys.stderr,
        )
        return 2
    try:
        model = load_model(args.model)
        codec = load_codec(args.model)
    except Exception as exc:  # transformers raises OSError, ValueError, KeyError, JSON errors...
        print(f"error: --model {args.model or '(demo)'}: cannot load the model: {first_line(exc)}", file=sys.stderr)
        return 2
    if sum(p.numel() for p in model.parameters()) < SMALL_MODEL_PARAMETERS:
        # One token at a time through a tiny model: thread hand-offs cost more than they save.
        torch.set_num_threads(1)
    vocab_size = int(model.get_output_embeddings().weight.shape[0])
    resolved = with_model_tokens(resolved, codec.eos_ids, vocab_size)
    seed = args.seed if args.seed is not None else resolved.generation.seed
    pipe = Pipeline.from_resolved(resolved, tokenizer=codec.tokenizer)
    max_new = args.max_new_tokens or resolved.generation.max_new_tokens or DEFAULT_MAX_NEW_TOKENS

    if args.input is not None:
        return batch.run_batch(args, model, codec, resolved, max_new)
    prompt = read_prompt(args.prompt)
    shown = prompt
    if args.chat:
        from logitkit.demo.loading import resolve_model_dir
        from logitkit.prompts import chat_prompt

        try:
            prompt, shown = chat_prompt(resolve_model_dir(args.model), prompt), ""  # print only the reply
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    prompt_ids = codec.encode(prompt)
    if not prompt_ids:
        print(
            "error: the prompt encodes to no tokens and the model has no start token",
            file=sys.stderr,
        )
        return 2
    input_ids = torch.tensor([prompt_ids], dtype=torch.long)
    sys.stdout.write(shown)
    sys.stdout.flush()

    decoder = StreamDecoder(codec.decode)
    streamed: list[int] = []

    def show(tokens: torch.Tensor) -> None:
        token = int(tokens[0])
        streamed.append(token)
        sys.stdout.write(decoder.push(token))
        sys.stdout.flush()

    started = time.perf_counter()
    try:
        output = generate(
            model, input_ids, pipe, tokenizer=codec.tokenizer, eos_token_id=codec.eos_ids,
            seeds=None if seed is None else [seed], max_new_tokens=max_new, on_tokens=show,
        )  # fmt: skip
    except (MemoryError, RuntimeError) as exc:
        if not is_allocation_failure(exc):
            raise
        beams = resolved.generation.num_beams
        print(f"\nerror: out of memory generating {max_new} new tokens with num_beams {beams} "
              f"(generation.max_new_tokens, generation.num_beams): {first_line(exc)}", file=sys.stderr)  # fmt: skip
        return 2
    elapsed = time.perf_counter() - started
    new_tokens = output.new_tokens[0].tolist()
    if (
        new_tokens != streamed
    ):  # a search that does not pick one token per step (beam search): print the result
        decoder = StreamDecoder(codec.decode)
        sys.stdout.write("".join(decoder.push(t) for t in new_tokens))
    sys.stdout.write(decoder.flush() + "\n")
    sys.stdout.flush()
    rate = len(new_tokens) / elapsed if elapsed > 0 else float("inf")
    print(
        f"[{len(new_tokens)} tokens, {rate:.1f} tokens/s, finish: {output.finish_reasons[0]}]",
        file=sys.stderr,
    )
    return 0
