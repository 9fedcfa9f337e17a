"""Streaming from ``logitkit.generate``: transformers streamers, and an iterator of new tokens per step.

Both ride on ``generate(on_tokens=...)``, the public callback the CLI streams
through: the search strategy calls it with each step's chosen tokens (``[rows]``,
any batch size).

- ``generate(..., streamer=TextStreamer(tok))`` drives a transformers streamer as
  transformers' own ``generate`` does: ``put(prompt ids)`` first, ``put(tokens)``
  each step, ``end()`` at the end.
- ``logitkit.stream(model, input_ids, pipe, ...)`` returns a ``TokenStream``:
  iterate it for each step's tokens; ``.output`` is the ``GenerationOutput``.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import torch

OnTokens = Callable[[torch.Tensor], None]


def with_streamer(streamer: Any, prompt_ids: torch.Tensor, on_tokens: OnTokens | None) -> OnTokens | None:
    """``on_tokens`` that also feeds ``streamer``; the prompt is put first, as transformers does."""
    if streamer is None:
        return on_tokens
    streamer.put(prompt_ids.cpu())

    def both(tokens: torch.Tensor) -> None:
        if on_tokens is not None:
            on_tokens(tokens)
        streamer.put(tokens.cpu())

    return both


_DONE = object()


class TokenStream:
    """Each step's chosen tokens (``[rows]`` LongTensor) while ``logitkit.generate`` runs in a thread.

    Iterate it once. ``output`` is the ``GenerationOutput`` after the last step;
    an exception raised by the generation is raised in the iterating thread.
    ``timeout`` (seconds) bounds the wait for one step.
    """

    def __init__(self, run: Callable[[OnTokens], Any], timeout: float | None = None) -> None:
        self._queue: queue.Queue[Any] = queue.Queue()
        self._timeout = timeout
        self._error: BaseException | None = None
        self.output: Any = None
        self._thread = threading.Thread(target=self._work, args=(run,), daemon=True)
        self._thread.start()

    def _work(self, run: Callable[[OnTokens], Any]) -> None:
        try:
            self.output = run(self._queue.put)
        except BaseException as exc:  # handed to the consumer, not lost in the thread
            self._error = exc
        finally:
            self._queue.put(_DONE)

    def __iter__(self) -> Iterator[torch.Tensor]:
        while True:
            item = self._queue.get(timeout=self._timeout)
            if item is _DONE:
                self._thread.join()
                if self._error is not None:
                    raise self._error
                return
            yield item


def stream(model: Any, input_ids: Any, pipeline: Any = None, *, timeout: float | None = None, **kwargs: Any) -> TokenStream:
    """``logitkit.generate`` as an iterator of each step's new tokens; see ``TokenStream``."""
    from logitkit.generation import generate

    user = kwargs.pop("on_tokens", None)

    def run(put: OnTokens) -> Any:
        def each(tokens: torch.Tensor) -> None:
            if user is not None:
                user(tokens)
            put(tokens.detach().clone())

        return generate(model, input_ids, pipeline, on_tokens=each, **kwargs)

    return TokenStream(run, timeout)
