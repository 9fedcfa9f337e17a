"""Train the demo model: ``python -m logitkit.demo.train``.

Trains a byte-level BPE tokenizer and a small Llama-style causal LM on the
Python standard library's own sources (see ``corpus.py``), then writes a
transformers model folder (config.json, model.safetensors, tokenizer.json,
training.json). Everything is seeded, so the same Python and torch versions
rebuild the same model. Progress goes to stderr: this is a script, not library
code, so it prints.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

from logitkit.demo.corpus import Corpus, find_corpus, read_text

DEFAULT_OUT = Path(__file__).parent / "model"
EOS = "<|endoftext|>"


def train_tokenizer(corpus: Corpus, vocab_size: int) -> Any:  # a tokenizers.Tokenizer
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tokenizer = Tokenizer(models.BPE())
    # Byte-level: every byte sequence is encodable, so any prompt works.
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[EOS],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator((read_text(p) for p in corpus.train), trainer=trainer)
    return tokenizer


def encode_files(tokenizer: Any, paths: tuple[Path, ...], eos_id: int) -> torch.Tensor:
    """All files as one token stream, each file followed by the end-of-text token."""
    encodings = tokenizer.encode_batch([read_text(p) for p in paths])
    ids: list[int] = []
    for enc in encodings:
        ids.extend(enc.ids)
        ids.append(eos_id)
    return torch.tensor(ids, dtype=torch.long)


def build_model(vocab_size: int, context: int, eos_id: int, args: argparse.Namespace) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=args.hidden,
        intermediate_size=args.hidden * 3,
        num_hidden_layers=args.layers,
        num_attention_heads=args.heads,
        num_key_value_heads=args.heads,
        max_position_embeddings=context,
        tie_word_embeddings=True,  # halves the weights: input and output embeddings shared
        bos_token_id=eos_id,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
    )
    return LlamaForCausalLM(config)


def learning_rate(step: int, total: int, peak: float, warmup: int) -> float:
    """Linear warm-up, then cosine decay to a tenth of the peak."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return peak * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress)))


@torch.no_grad()
def held_out_loss(model: Any, stream: torch.Tensor, context: int, windows: int) -> float:
    """Mean next-token loss over evenly spaced, non-random windows of the held-out stream."""
    model.eval()
    last_start = len(stream) - context - 1
    starts = torch.linspace(0, last_start, windows).long()
    losses = []
    for chunk in torch.split(starts, 16):
        batch = torch.stack([stream[s : s + context + 1] for s in chunk.tolist()])
        out = model(input_ids=batch[:, :-1], labels=batch[:, :-1].clone())
        losses.append(float(out.loss))
    model.train()
    return sum(losses) / len(losses)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m logitkit.demo.train", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="model folder to write")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--vocab-size", type=int, default=4096)
    parser.add_argument("--context", type=int, default=256)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--lr", type=float, default=3e-3)
    parser.add_argument("--warmup", type=int, default=50)
    parser.add_argument("--eval-windows", type=int, default=128)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--max-files",
        type=int,
        default=0,
        help="use only the first N train and held-out files (quick checks)",
    )
    parser.add_argument("--log-every", type=int, default=10)
    parser.add_argument(
        "--save-every",
        type=int,
        default=100,
        help="also write the model every N steps (0: only at the end)",
    )
    return parser.parse_args(argv)


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    started = time.perf_counter()

    corpus = find_corpus()
    if args.max_files:
        corpus = Corpus(
            corpus.root, corpus.train[: args.max_files], corpus.held_out[: args.max_files]
        )
    log(
        f"corpus: {len(corpus.train)} train files, {len(corpus.held_out)} held-out files under {corpus.root}"
    )
    tokenizer = train_tokenizer(corpus, args.vocab_size)
    eos_id = tokenizer.token_to_id(EOS)
    train_stream = encode_files(tokenizer, corpus.train, eos_id)
    eval_stream = encode_files(tokenizer, corpus.held_out, eos_id)
    log(
        f"tokenizer: {tokenizer.get_vocab_size()} tokens; {len(train_stream):,} train / {len(eval_stream):,} held-out tokens "
        f"({time.perf_counter() - started:.0f}s)"
    )

    model = build_model(tokenizer.get_vocab_size(), args.context, eos_id, args)
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {n_params:,} parameters")
    optimizer = torch.optim.AdamW(
        model.parameters(), lr=args.lr, betas=(0.9, 0.95), weight_decay=0.1
    )
    generator = torch.Generator().manual_seed(args.seed)
    offsets = torch.arange(args.context + 1)

    model.train()
    train_started = time.perf_counter()
    for step in range(args.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, args.steps, args.lr, args.warmup)
        starts = torch.randint(
            0, len(train_stream) - args.context - 1, (args.batch, 1), generator=generator
        )
        batch = train_stream[starts + offsets]
        loss = model(input_ids=batch[:, :-1], labels=batch[:, :-1].clone()).loss
        # transformers shifts labels itself, so labels == input_ids is next-token prediction.
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        if step % args.log_every == 0 or step == args.steps - 1:
            elapsed = time.perf_counter() - train_started
            tokens_per_s = (step + 1) * args.batch * args.context / elapsed
            eta = elapsed / (step + 1) * (args.steps - step - 1)
            log(
                f"step {step + 1}/{args.steps}  loss {loss.item():.3f}  {tokens_per_s:,.0f} tok/s  "
                f"elapsed {elapsed / 60:.1f} min  ETA {eta / 60:.1f} min"
            )
        if args.save_every and (step + 1) % args.save_every == 0 and step + 1 < args.steps:
            # A usable model on disk while training continues (marked partial in training.json).
            checkpoint_loss = held_out_loss(model, eval_stream, args.context, args.eval_windows)
            log(f"checkpoint at step {step + 1}: held-out loss {checkpoint_loss:.3f}")
            save(
                model,
                tokenizer,
                args,
                {
                    "steps_done": step + 1,
                    "held_out_loss": round(checkpoint_loss, 4),
                    "partial": True,
                },
            )

    eval_loss = held_out_loss(model, eval_stream, args.context, args.eval_windows)
    log(f"held-out loss {eval_loss:.3f} (perplexity {math.exp(eval_loss):.1f})")
    save(
        model,
        tokenizer,
        args,
        {
            "steps_done": args.steps,
            "held_out_loss": round(eval_loss, 4),
            "held_out_perplexity": round(math.exp(eval_loss), 2),
            "final_train_loss": round(loss.item(), 4),
            "parameters": n_params,
            "train_files": len(corpus.train),
            "held_out_files": len(corpus.held_out),
            "train_tokens": len(train_stream),
            "held_out_tokens": len(eval_stream),
            "tokens_seen": args.steps * args.batch * args.context,
            "train_minutes": round((time.perf_counter() - train_started) / 60, 1),
            "python": platform.python_version(),
            "torch": torch.__version__,
        },
    )
    log(f"wrote {args.out} in {(time.perf_counter() - started) / 60:.1f} min")
    return 0


def with_start_token(tokenizer: Any) -> Any:  # a tokenizers.Tokenizer
    """A copy that puts the end-of-text token before every encoded text, as before each file in training."""
    from tokenizers import Tokenizer, processors

    copy = Tokenizer.from_str(tokenizer.to_str())
    eos_id = copy.token_to_id(EOS)
    copy.post_processor = processors.TemplateProcessing(
        single=f"{EOS} $A", pair=f"{EOS} $A {EOS} $B", special_tokens=[(EOS, eos_id)]
    )
    return copy


def save(model: Any, tokenizer: Any, args: argparse.Namespace, metrics: dict[str, Any]) -> None:
    from transformers import PreTrainedTokenizerFast

    args.out.mkdir(parents=True, exist_ok=True)
    tokenizer = with_start_token(tokenizer)
    model.save_pretrained(args.out, safe_serialization=True)
    # tokenizer.json alone is enough for tokenizers.Tokenizer; the extra files let AutoTokenizer load it too.
    wrapped = PreTrainedTokenizerFast(  # type: ignore[no-untyped-call]
        tokenizer_object=tokenizer, eos_token=EOS, bos_token=EOS, pad_token=EOS
    )
    wrapped.save_pretrained(args.out)
    settings = {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items() if k != "out"
    }
    (args.out / "training.json").write_text(
        json.dumps(
            {"command": "python -m logitkit.demo.train", "settings": settings, "metrics": metrics},
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )


if __name__ == "__main__":
    raise SystemExit(main())
