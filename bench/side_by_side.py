#!/usr/bin/env python3
"""ember and llama.cpp on the same files, the same threads, one after the other, in one run.

    python3 bench/side_by_side.py --llama-bench PATH/llama-bench MODEL.gguf...
        [--prompt 512] [--gen 64] [--repeat 2] [--threads 2] [--long 4096] [--cache-type q8_0]

For each model: `ember bench e2e` (prompt tokens/s, generation tokens/s, the generation's GB/s
and the read-bandwidth floor it measures in the same run) and `llama-bench` (pp and tg, as JSON),
then one Markdown row with the ratios. `--long N` adds rows for a prompt of N tokens and for
generation with N tokens already in the cache (llama-bench's `-d N`); there the generation's
bytes per token include the KV cache it reads, so its GB/s and floor count them too.
Speed lives here and in `ember bench`, never in the test suite.
"""
import argparse
import json
import os
import re
import subprocess
import sys

EMBER = os.environ.get("EMBER_BIN", "build/release/bin/ember")


def ember_e2e(model, prompt, gen, repeat, threads, cache):
    cmd = [EMBER, "bench", "e2e", "--model", model, "-p", str(prompt), "-n", str(gen),
           "--repeat", str(repeat), "-t", str(threads), "--backend", "cpu", "--cache-type", cache]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    floor = float(re.search(r"floor tokens/s \(([\d.]+) GB/s\)", out).group(1))
    row = re.search(r"^\| ([\d.]+) tokens/s \| ([\d.]+) tokens/s \| ([\d.]+) \| ([\d.]+) \| (\d+)%",
                    out, re.M)
    return {"pp": float(row.group(1)), "tg": float(row.group(2)), "gbs": float(row.group(3)),
            "floor_gbs": floor, "of_floor": int(row.group(5)), "cmd": " ".join(cmd)}


def llama_bench(binary, model, prompt, gen, repeat, threads, depth, cache):
    """pp (from an empty cache) and tg (after `depth` tokens) tokens/s, as ember measures them."""
    result = {"cmd": []}
    for p, n, d in ([(prompt, gen, 0)] if depth == 0 else [(prompt, 0, 0), (0, gen, depth)]):
        cmd = [binary, "-m", model, "-t", str(threads), "-p", str(p), "-n", str(n),
               "-r", str(repeat), "-d", str(d), "-ctk", cache, "-ctv", cache, "-o", "json"]
        if cache != "f16":
            cmd += ["-fa", "1"]  # llama.cpp quantises the V cache only with flash attention
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
        result["cmd"].append(" ".join(cmd))
        for r in json.loads(out):
            result["pp" if r["n_gen"] == 0 else "tg"] = r["avg_ts"]
    result["cmd"] = "\n".join(result["cmd"])
    return result


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--llama-bench", required=True)
    ap.add_argument("--prompt", type=int, default=512)
    ap.add_argument("--gen", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--long", type=int, default=0)
    ap.add_argument("--cache-type", default="f16")
    a = ap.parse_args()
    print("| model | ember prompt | llama.cpp pp | ratio | ember generation | llama.cpp tg | ratio "
          "| ember gen. GB/s (of floor) |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |")
    commands = []
    for model in a.models:
        runs = [(a.prompt, 0)] + ([(a.long, a.long)] if a.long else [])
        for prompt, depth in runs:
            e = ember_e2e(model, prompt, a.gen, a.repeat, a.threads, a.cache_type)
            ll = llama_bench(a.llama_bench, model, prompt, a.gen, a.repeat, a.threads, depth,
                             a.cache_type)
            commands += [e["cmd"], ll["cmd"]]
            name = os.path.basename(model) + (f", {prompt} in context" if depth else "")
            print(f"| {name} | {e['pp']:.1f} | {ll['pp']:.1f} | {e['pp'] / ll['pp']:.2f}× "
                  f"| {e['tg']:.1f} | {ll['tg']:.1f} | {e['tg'] / ll['tg']:.2f}× "
                  f"| {e['gbs']:.1f} GB/s ({e['of_floor']}% of {e['floor_gbs']:.1f} GB/s) |",
                  flush=True)
    print("\ncommands:\n" + "\n".join(commands))


if __name__ == "__main__":
    sys.exit(main())
