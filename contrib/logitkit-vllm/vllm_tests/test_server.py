"""The OpenAI server with logitkit configs through vllm_xargs: a good one works, a bad one is an HTTP 400.

The "Serving with vLLM" page's OpenAI-client example runs here too, as written, against this server.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from vllm_helpers import DEMO_MODEL, greedy_reference

PROMPT = [17, 230, 41, 902, 5]
DOCS_PAGE = Path(__file__).resolve().parents[3] / "docs" / "serving-vllm.md"
#: Where the page's client example sends its requests (the page's server command's port).
DOCS_URL = "http://127.0.0.1:8000/v1"
CONFIG = {"processors": [{"repetition_penalty": 1.6}, {"no_repeat_ngram_size": 2}]}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    port = free_port()
    log = tmp_path_factory.mktemp("server") / "server.log"
    env = {**os.environ, "VLLM_ENABLE_V1_MULTIPROCESSING": "1"}
    command = [
        sys.executable, "-m", "vllm.entrypoints.openai.api_server",
        "--model", DEMO_MODEL, "--dtype", "float32", "--max-model-len", "256",
        "--host", "127.0.0.1", "--port", str(port), "--enforce-eager",
    ]
    with log.open("w") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                pytest.fail(f"the server exited with {proc.returncode}:\n{_tail(log)}")
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"the server did not come up in 300 s:\n{_tail(log)}")
            time.sleep(1)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _tail(log: Path) -> str:
    return "\n".join(log.read_text(errors="replace").splitlines()[-40:])


def complete(base: str, xargs: dict[str, Any] | None) -> tuple[int, dict[str, Any]]:
    body: dict[str, Any] = {
        "model": DEMO_MODEL, "prompt": PROMPT, "max_tokens": 16, "temperature": 0,
        "ignore_eos": True, "return_token_ids": True,
    }
    if xargs is not None:
        body["vllm_xargs"] = xargs
    request = urllib.request.Request(
        f"{base}/v1/completions", json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_vllm_xargs_config_bad_config_then_serving_again(server: str, demo_model: Any) -> None:
    status, plain = complete(server, None)
    assert status == 200
    status, shaped = complete(server, {"logitkit": json.dumps(CONFIG)})
    assert status == 200, shaped
    tokens = shaped["choices"][0]["token_ids"]
    assert tokens == greedy_reference(demo_model, CONFIG, PROMPT, 16, None)
    assert tokens != plain["choices"][0]["token_ids"]

    status, refused = complete(server, {"logitkit": '{"processors": [{"top_p": 1.5}, {"tmperature": 1}]}'})
    assert status == 400, refused
    message = refused["error"]["message"] if "error" in refused else str(refused)
    assert "extra_args.logitkit: processors[0]" in message and "unknown processor 'tmperature'" in message

    status, again = complete(server, {"logitkit": "combined"})
    assert status == 200, again
    assert len(again["choices"][0]["token_ids"]) == 16


def docs_client_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOCS_PAGE.read_text(encoding="utf-8"), re.DOTALL)
    [example] = [b for b in blocks if "from openai import OpenAI" in b]
    assert example.count(DOCS_URL) == 1, "the example's server address changed: update DOCS_URL"
    return example


def test_the_docs_client_example_runs_as_written(server: str) -> None:
    # Only the address differs: this server listens on a free port, not the page's 8000.
    code = docs_client_example().replace(DOCS_URL, f"{server}/v1")
    printed: list[tuple[Any, ...]] = []
    namespace: dict[str, Any] = {"MODEL": DEMO_MODEL, "print": lambda *args: printed.append(args)}
    exec(compile(code, f"{DOCS_PAGE.name} (OpenAI client example)", "exec"), namespace)
    assert [args[0] for args in printed] == [None, {"logitkit": namespace["config"]}, {"logitkit": "combined"}]
    texts = [args[1] for args in printed]
    assert all(text not in ("''", '""') for text in texts), texts
    # What the page says of them: the second differs from plain greedy; the third (a truncation preset) does not.
    assert texts[1] != texts[0] and texts[2] == texts[0], texts
