"""ember's GGUF reader against Python's gguf package (the reference reader), through
`ember inspect --json --full-arrays`: same metadata keys, types and values, same tensor names,
types, shapes, offsets and sizes, for every file of the shared test data and both real models.
Also the CLI's error behaviour and the tensor-type table."""
import json
import os
import pathlib
import subprocess

import numpy as np
import pytest
from gguf import GGUFReader, GGUFValueType, GGUFWriter
from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

EMBER = os.environ.get("EMBER_BIN", "build/release/bin/ember")
TESTDATA = pathlib.Path(os.environ.get("EMBER_TESTDATA", "../shared/testdata"))
MODEL_CACHE = pathlib.Path(os.environ.get("EMBER_MODEL_CACHE", pathlib.Path.home() / ".cache/ember/models"))
REAL_MODELS = ["SmolLM2-135M-Instruct.Q4_1.gguf", "gemma-3-270m-q4_k_m.gguf"]


def all_files():
    files = sorted((TESTDATA / "synthetic").glob("*.gguf")) + sorted((TESTDATA / "tokenizer").glob("*.gguf"))
    assert len(files) >= 25, f"no test data under {TESTDATA}"
    return files + [MODEL_CACHE / name for name in REAL_MODELS]


def inspect_json(path):
    out = subprocess.run([EMBER, "inspect", "--json", "--full-arrays", str(path)], capture_output=True, check=True)
    return json.loads(out.stdout)


def python_value(field):
    """The field's value as ember's JSON shows it, or None where gguf-py cannot decode it."""
    main = field.types[0]
    if main == GGUFValueType.ARRAY and len(field.types) > 2:
        return None  # gguf-py does not decode nested arrays
    if main == GGUFValueType.STRING:
        return bytes(field.parts[-1]).decode("utf-8", "replace")
    if main == GGUFValueType.ARRAY and field.types[-1] == GGUFValueType.STRING:
        return [bytes(field.parts[i]).decode("utf-8", "replace") for i in field.data]
    if main == GGUFValueType.ARRAY:
        return [v for i in field.data for v in field.parts[i].tolist()]
    return field.parts[-1].tolist()[0]


def same_string(a, b):
    # Both readers replace invalid UTF-8, possibly with different numbers of U+FFFD.
    return a == b or ("\ufffd" in a and a.replace("\ufffd", "") == b.replace("\ufffd", ""))


@pytest.mark.parametrize("path", all_files(), ids=lambda p: p.name)
def test_same_as_gguf_py(path):
    assert path.exists(), f"{path} is missing: run scripts/fetch-models.sh (make test does)"
    ours = inspect_json(path)
    reader = GGUFReader(str(path))
    assert ours["version"] == reader.fields["GGUF.version"].parts[-1][0]

    py_fields = {name: f for name, f in reader.fields.items() if not name.startswith("GGUF.")}
    assert list(ours["metadata"].keys()) == list(py_fields.keys())
    for name, field in py_fields.items():
        expected = python_value(field)
        if expected is None:
            continue
        got = ours["metadata"][name]
        if isinstance(expected, str):
            assert same_string(got, expected), name
        elif isinstance(expected, list) and expected and isinstance(expected[0], str):
            assert len(got) == len(expected), name
            bad = [i for i, (a, b) in enumerate(zip(got, expected)) if not same_string(a, b)]
            assert not bad, f"{name}: entries {bad[:5]} differ"
        elif field.types[0] == GGUFValueType.BOOL or field.types[-1] == GGUFValueType.BOOL:
            assert got == (expected if isinstance(expected, list) else bool(expected)) or \
                   got == [bool(v) for v in expected], name
        else:
            assert got == expected, name

    assert len(ours["tensors"]) == len(reader.tensors)
    for t, rt in zip(ours["tensors"], reader.tensors):
        assert t["name"] == rt.name
        assert t["type"] == rt.tensor_type.name, t["name"]
        assert t["shape"] == [int(d) for d in rt.shape], t["name"]
        assert t["offset"] == rt.data_offset, t["name"]
        assert t["bytes"] == rt.n_bytes, t["name"]


def test_every_tensor_type_has_the_reference_layout(tmp_path):
    """A file with one tensor of every type gguf-py knows: ember must name each type and size
    its data exactly as gguf-py's GGML_QUANT_SIZES says."""
    path = tmp_path / "all_types.gguf"
    writer = GGUFWriter(str(path), "llama")
    expected = {}
    for qtype, (block_size, type_size) in GGML_QUANT_SIZES.items():
        rows, blocks_per_row = 3, 2
        data = np.arange(rows * blocks_per_row * type_size, dtype=np.uint8).reshape(rows, blocks_per_row * type_size)
        writer.add_tensor(f"t.{qtype.name}", data, raw_dtype=qtype)  # shape from the byte shape
        expected[f"t.{qtype.name}"] = (qtype.name, rows * blocks_per_row * type_size, [blocks_per_row * block_size, rows])
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    ours = inspect_json(path)
    assert len(ours["tensors"]) == len(expected)
    for t in ours["tensors"]:
        assert (t["type"], t["bytes"], t["shape"]) == expected[t["name"]]


def run_ember(*args):
    return subprocess.run([EMBER, *args], capture_output=True, text=True)


def test_inspect_text_summary():
    out = run_ember("inspect", str(TESTDATA / "synthetic/tiny-qwen3moe-q4_k_m.gguf"))
    assert out.returncode == 0, out.stderr
    assert "architecture:  qwen3moe" in out.stdout
    assert "expert_count" in out.stdout
    assert "blk.0.ffn_up_exps.weight" in out.stdout
    assert "[256, 256, 4]" in out.stdout
    assert "chat template: no" in out.stdout
    assert "tensors" in out.stdout.splitlines()[-2] or "total:" in out.stdout


@pytest.mark.parametrize("cut", [0, 3, 20, 1000, 100000])
def test_inspect_rejects_a_truncated_file_in_one_line(tmp_path, cut):
    source = (TESTDATA / "synthetic/tiny-llama-q4_0.gguf").read_bytes()
    bad = tmp_path / "truncated.gguf"
    bad.write_bytes(source[:cut])
    out = run_ember("inspect", str(bad))
    assert out.returncode == 1
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1, out.stderr
    assert lines[0].startswith(f"ember inspect: {bad}: "), lines[0]
    assert "truncated" in lines[0] or "not a GGUF" in lines[0], lines[0]


def test_inspect_usage_and_missing_file():
    assert run_ember("inspect").returncode == 2
    assert run_ember("inspect", "--bogus", "x.gguf").returncode == 2
    out = run_ember("inspect", "/nonexistent.gguf")
    assert out.returncode == 1 and "cannot open" in out.stderr
    assert run_ember("no-such-command").returncode == 2
    assert run_ember("--version").stdout.startswith("ember ")
