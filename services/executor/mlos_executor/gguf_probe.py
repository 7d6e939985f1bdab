"""Loads a GGUF file in a child process before the executor's own process does.

llama.cpp aborts the whole process on some malformed files (GGML_ASSERT in the vocabulary or tensor
loaders) instead of returning an error, so an executor that loaded a hostile or truncated GGUF
directly would die with every model it serves. `probe(path, embedding)` runs
`python -m mlos_executor.gguf_probe PATH` (a full load with a small context) and turns a failure -
an error, an abort, a signal, a time-out - into ModelLoadFailed (FAILED_PRECONDITION) carrying
llama.cpp's own reason. A file that loaded once is marked (`PATH.probed`, beside the verified
artifact in the executor's cache) and not probed again.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import sys
from pathlib import Path

from mlos_executor.errors import ModelLoadFailed

PROBE_TIMEOUT_S = 120.0
# llama.cpp's reasons, most telling first
_REASONS = (
    re.compile(r"GGML_ASSERT\(.*?\) failed"),
    re.compile(r"error loading model: [^\n]*"),
    re.compile(r"(?:error|failed to|invalid)[^\n]*", re.IGNORECASE),
)
_PATH = re.compile(r"(?:/[\w.+\-]+){2,}")


async def probe(path: Path, embedding: bool, timeout_s: float = PROBE_TIMEOUT_S) -> dict:
    """The facts the child read ({"n_params", "n_ctx_train", "n_vocab"}), or ModelLoadFailed."""
    marker = path.with_name(path.name + ".probed")
    if marker.exists():
        return json.loads(marker.read_text())
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "mlos_executor.gguf_probe", str(path), "1" if embedding else "0",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout_s)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise ModelLoadFailed(f"llama.cpp did not finish loading the GGUF file within {timeout_s:.0f} s") from None
    if process.returncode != 0:
        raise ModelLoadFailed(f"llama.cpp cannot load this GGUF file: {_reason(process.returncode or 0, err)}")
    facts = json.loads(out.decode().strip().splitlines()[-1])
    marker.write_text(json.dumps(facts))
    return facts


def _reason(returncode: int, stderr: bytes) -> str:
    text = stderr.decode("utf-8", "replace")
    found = next((m.group(0).strip() for r in _REASONS if (m := r.search(text))), "no reason given")
    why = _PATH.sub("<path>", found)[:300]
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            name = f"signal {-returncode}"
        return f"the loader crashed ({name}): {why}"
    return why


def main() -> None:
    import llama_cpp  # its load log goes to stderr, which the parent reads for the reason

    path, embedding = sys.argv[1], sys.argv[2] == "1"
    llama = llama_cpp.Llama(model_path=path, n_ctx=64, n_batch=64, embedding=embedding, verbose=True)
    facts = {"n_params": int(llama._model.n_params()), "n_ctx_train": int(llama._model.n_ctx_train()),
             "n_vocab": int(llama.n_vocab())}
    llama.close()
    print(json.dumps(facts))


if __name__ == "__main__":
    main()
