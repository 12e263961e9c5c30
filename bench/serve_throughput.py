"""Aggregate generation speed of `ember serve` with 1 and with N parallel streams (continuous
batching), measured by a client: tokens/s = completion tokens of all streams / wall time.

    python bench/serve_throughput.py --model-file ~/.cache/ember/models/SmolLM2-135M-Instruct.Q4_1.gguf \
        [--streams 1,4] [--tokens 128] [--threads 2]
"""
import argparse
import json
import os
import pathlib
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).parent.parent / "tests" / "server"))
from ember_server import EmberServer  # noqa: E402


def stream_once(url, model, tokens, seed):
    body = json.dumps({"model": model, "prompt": "Once upon a time", "max_tokens": tokens,
                       "temperature": 0.8, "seed": seed, "stream": True,
                       "stream_options": {"include_usage": True}}).encode()
    req = urllib.request.Request(url + "/v1/completions", body, {"Content-Type": "application/json"})
    used = 0
    with urllib.request.urlopen(req) as r:
        for line in r:
            # Only the usage event is parsed: the client shares the machine's cores with the
            # server, and decoding every event's JSON would take its time from the server.
            if line.startswith(b"data: {") and b'"completion_tokens"' in line:
                event = json.loads(line[6:])
                if event.get("usage"):
                    used = event["usage"]["completion_tokens"]
    return used


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model-file", required=True, type=pathlib.Path)
    ap.add_argument("--streams", default="1,4")
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--threads", default=str(os.cpu_count()))
    a = ap.parse_args()
    counts = [int(x) for x in a.streams.split(",")]
    with tempfile.TemporaryDirectory() as tmp, \
            EmberServer(tmp, "--parallel", str(max(counts)), "--threads", a.threads,
                        models=(a.model_file.expanduser(),)) as s:
        model = json.loads(urllib.request.urlopen(s.url + "/v1/models").read())["data"][0]["id"]
        stream_once(s.url, model, 8, 0)  # load the model, warm up
        for n in counts:
            results = [0] * n
            start = time.time()
            threads = [threading.Thread(target=lambda i=i: results.__setitem__(i, stream_once(s.url, model, a.tokens, i)))
                       for i in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            wall = time.time() - start
            print(f"{n} stream(s): {sum(results)} tokens in {wall:.2f} s = {sum(results) / wall:.1f} tokens/s aggregate, "
                  f"{sum(results) / wall / n:.1f} per stream")


if __name__ == "__main__":
    main()
