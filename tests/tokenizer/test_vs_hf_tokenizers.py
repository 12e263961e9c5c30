"""ember's tokenizer against Hugging Face `tokenizers` on the two real models: the reference
tokenizer is built from the same GGUF file by transformers' GGUF converter (no torch: the
metadata is read with the gguf package and handed to `convert_gguf_tokenizer`). Every corpus
string must give the same ids, and ids → text must give the string back."""
import os
import pathlib
import subprocess

import pytest
from gguf import GGUFReader, GGUFValueType
from transformers.integrations.gguf.gguf_tokenizer_mapping import GGUF_TOKENIZER_MAPPING, convert_gguf_tokenizer

EMBER = os.environ.get("EMBER_BIN", "build/release/bin/ember")
MODEL_CACHE = pathlib.Path(os.environ.get("EMBER_MODEL_CACHE", pathlib.Path.home() / ".cache/ember/models"))
MODELS = ["SmolLM2-135M-Instruct.Q4_1.gguf", "gemma-3-270m-q4_k_m.gguf"]

CORPUS = [
    "Hello world",
    "The capital of France is Paris.",
    "  leading spaces and trailing   ",
    "tabs\tand\nnew\n\nlines\r\n\r\nwindows",
    "I'm sure you'll see it's DON'T and we've they're",
    "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
    'for (int i = 0; i < 10; ++i) { printf("%d\\n", i); }',
    '{"key": [1, 2.5, -3e10], "nested": {"ok": true}}',
    "こんにちは世界。今日はいい天気ですね！",
    "中文测试：模型的词表很大。",
    "한국어 텍스트도 있습니다",
    "Emoji: 🦙🔥👍🏽 👨‍👩‍👧 ❤️",
    "naïve café résumé façade Ångström",
    "Ελληνικά και русский язык",
    "مرحبا بالعالم",
    "1234567890 3.14159 1,000,000 2026-11-23",
    "https://huggingface.co/HuggingFaceTB/SmolLM2-135M-Instruct?x=1&y=2#frag",
    "!!!??? ... --- *** ### @@@ $$$ %%% ^^^",
    "a" * 300,
    "     \n     \n",
    " ",
    "",
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "<start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\n",
    "<bos>text after a special<eos>",
    "mixed<|im_end|>specials<end_of_turn>inline",
]


def field_value(field):
    if field.types[0] == GGUFValueType.ARRAY:
        if field.types[-1] == GGUFValueType.STRING:
            return [bytes(field.parts[i]).decode("utf-8", "replace") for i in field.data]
        return [v for i in field.data for v in field.parts[i].tolist()]
    if field.types[0] == GGUFValueType.STRING:
        return bytes(field.parts[-1]).decode("utf-8", "replace")
    return field.parts[-1].tolist()[0]


@pytest.fixture(scope="module", params=MODELS)
def model(request):
    path = MODEL_CACHE / request.param
    assert path.exists(), f"{path} is missing: run scripts/fetch-models.sh (make test does)"
    reader = GGUFReader(str(path))
    meta = {k: field_value(f) for k, f in reader.fields.items()
            if k.startswith("tokenizer.") or k == "general.architecture"}
    tokenizer_dict = {name: meta["tokenizer." + key]
                      for key, name in GGUF_TOKENIZER_MAPPING["tokenizer"].items() if "tokenizer." + key in meta}
    reference, _ = convert_gguf_tokenizer(meta["general.architecture"], tokenizer_dict)
    return path, reference


def ember(*args):
    out = subprocess.run([EMBER, *args], capture_output=True)
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout


def test_ids_equal_the_reference(model, tmp_path):
    path, reference = model
    mismatches = []
    for i, text in enumerate(CORPUS):
        (tmp_path / "t.txt").write_bytes(text.encode())
        ours = [int(x) for x in ember("tokenize", "--model", str(path), "--file", str(tmp_path / "t.txt"),
                                      "--no-bos", "--special").split()]
        theirs = reference.encode(text, add_special_tokens=False).ids
        if ours != theirs:
            mismatches.append(f"#{i} {text[:40]!r}\n  ember: {ours}\n  hf:    {theirs}")
    assert not mismatches, "\n".join(mismatches)


def test_text_round_trips(model, tmp_path):
    path, _ = model
    for text in CORPUS:
        if not text:
            continue
        (tmp_path / "t.txt").write_bytes(text.encode())
        ids = ember("tokenize", "--model", str(path), "--file", str(tmp_path / "t.txt"), "--no-bos", "--special")
        ids = ids.decode().split()
        back = ember("detokenize", "--model", str(path), "--ids", ",".join(ids), "--special").decode()
        assert back == text
