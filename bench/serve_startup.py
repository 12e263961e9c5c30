"""Startup time of `ember serve`: from process start to the `listening on` line, and to the first
answered /health, with the two real models in ./models (none is loaded at startup).

    python bench/serve_startup.py [--runs 10]
"""
import argparse
import os
import pathlib
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

sys.path.insert(0, str(pathlib.Path(__file__).parent.parent / "tests" / "server"))
from ember_server import EMBER, GEMMA3_FILE, SMOLLM2_FILE  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    a = ap.parse_args()
    listen, health = [], []
    with tempfile.TemporaryDirectory() as tmp:
        models = pathlib.Path(tmp) / "models"
        models.mkdir()
        for m in (SMOLLM2_FILE, GEMMA3_FILE):
            (models / m.name).symlink_to(m)
        for _ in range(a.runs):
            start = time.perf_counter()
            p = subprocess.Popen([os.path.abspath(EMBER), "serve", "--bind", "127.0.0.1:0"], cwd=tmp,
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
            line = p.stdout.readline()
            listen.append(time.perf_counter() - start)
            urllib.request.urlopen(f"http://{line.split()[-1]}/health").read()
            health.append(time.perf_counter() - start)
            p.terminate()
            p.wait()
    ms = lambda xs: f"median {statistics.median(xs) * 1000:.1f} ms, max {max(xs) * 1000:.1f} ms"  # noqa: E731
    print(f"start → listening: {ms(listen)}; start → first /health answer: {ms(health)} ({a.runs} runs)")


if __name__ == "__main__":
    main()
