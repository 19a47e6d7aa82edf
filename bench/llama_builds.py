"""llama.cpp builds side by side: SmolLM2-135M-Instruct's generation and prompt speed with the
portable build noosphere installs (``scripts/llama-wheel``, AVX2) and any other builds named in
``NOOSPHERE_BENCH_BUILDS`` (``name=/path/to/python,...``: each a Python with its own
llama-cpp-python, e.g. a native ``-march=native`` build for comparison).

Each build runs in its own process, so a build that dies on this CPU ("Illegal instruction") is
reported as such instead of ending the benchmark. Runs alternate between builds, 3 rounds.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from statistics import median

from bench.report import write_section

ROUNDS = 3
# Measured in the build's own interpreter: load, 1 warm-up, then timed prompt and generation.
PROBE = r"""
import json, sys, time
from llama_cpp import Llama
model = sys.argv[1]
llm = Llama(model_path=model, n_ctx=2048, n_threads=None, verbose=False)
messages = [{"role": "user", "content": "Write a long story about a lighthouse keeper."}]
llm.create_chat_completion(messages=messages, max_tokens=8, temperature=0)
prompt = "The history of the lighthouse. " * 60
tokens = llm.tokenize(prompt.encode())
llm.reset()
t = time.perf_counter(); llm.eval(tokens); prompt_s = time.perf_counter() - t
t, n = time.perf_counter(), 0
for part in llm.create_chat_completion(messages=messages, max_tokens=200, temperature=0, stream=True):
    n += bool(part["choices"][0]["delta"].get("content"))
gen_s = time.perf_counter() - t
print(json.dumps({"prompt_tps": len(tokens) / prompt_s, "gen_tps": n / gen_s, "tokens": n}))
"""


def _builds() -> dict[str, str]:
    builds = {"portable AVX2 (scripts/llama-wheel, shipped)": sys.executable}
    for item in filter(None, os.environ.get("NOOSPHERE_BENCH_BUILDS", "").split(",")):
        name, _, python = item.rpartition("=")  # the path is after the last "="
        builds[name.strip()] = python.strip()
    return builds


def _probe(python: str, model: Path) -> dict[str, float] | str:
    done = subprocess.run(
        [python, "-c", PROBE, str(model)], capture_output=True, text=True, timeout=600, check=False
    )
    if done.returncode < 0:
        return f"died: {signal.Signals(-done.returncode).name}"
    if done.returncode != 0:
        return f"failed: {done.stderr.strip().splitlines()[-1] if done.stderr.strip() else done.returncode}"
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


async def run() -> None:
    from noosphere.pool.backends.llama import bundled_smollm2

    model = bundled_smollm2()
    builds = _builds()
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in builds}
    failures: dict[str, str] = {}
    for _ in range(ROUNDS):
        for name, python in builds.items():
            if name in failures:
                continue
            result = _probe(python, model)
            if isinstance(result, str):
                failures[name] = result
            else:
                samples[name].append(result)
    baseline = median(s["gen_tps"] for s in samples[next(iter(builds))])
    rows = ["| build | generation tokens/s | prompt tokens/s | vs. shipped |", "|---|---|---|---|"]
    for name in builds:
        if name in failures:
            rows.append(f"| {name} | {failures[name]} | — | — |")
            continue
        gen = median(s["gen_tps"] for s in samples[name])
        prompt = median(s["prompt_tps"] for s in samples[name])
        rows.append(f"| {name} | {gen:.1f} | {prompt:.0f} | {gen / baseline:.2f}x |")
    write_section(
        "llama_builds",
        "llama.cpp builds",
        "SmolLM2-135M-Instruct (Q4_1) through llama-cpp-python 0.3.36 on all cores, each build in its own "
        f"process, {ROUNDS} alternating rounds, medians: 200 generated tokens at temperature 0 after one "
        "warm-up, and a ~480-token prompt evaluated at once.\n\n" + "\n".join(rows),
    )
