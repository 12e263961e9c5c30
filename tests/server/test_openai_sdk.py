"""`ember serve` driven by the official openai Python SDK, with the real models (SmolLM2 for
chat, Gemma 3 for plain completions): listing, chat and completions streaming and not, stop
strings, seeds, max_tokens, usage counts against the tokenizer, logprobs, and errors as the
SDK's exception types."""
import json
import os
import subprocess
import sys

import openai
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from ember_server import EMBER, GEMMA3, GEMMA3_FILE, SMOLLM2, SMOLLM2_FILE, EmberServer  # noqa: E402

QUESTION = [{"role": "user", "content": "What's the capital of France? Answer in one word."}]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with EmberServer(tmp_path_factory.mktemp("serve"), "--parallel", "4", "--ctx", "2048") as s:
        yield s


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=120)


def prompt_token_count(model_file, messages, tmp_path):
    """The tokenizer's count for a chat prompt, through the CLI (template, then tokenize)."""
    (tmp_path / "m.json").write_text(json.dumps(messages))
    text = subprocess.run([EMBER, "template", "--model", str(model_file), "--messages", str(tmp_path / "m.json"),
                           "--add-generation-prompt"], capture_output=True, text=True, check=True).stdout
    (tmp_path / "p.txt").write_text(text)
    ids = subprocess.run([EMBER, "tokenize", "--model", str(model_file), "--file", str(tmp_path / "p.txt"),
                          "--special"], capture_output=True, text=True, check=True).stdout.split()
    return len(ids)


def test_lists_models(client):
    ids = [m.id for m in client.models.list().data]
    assert SMOLLM2 in ids and GEMMA3 in ids
    m = client.models.retrieve(SMOLLM2)
    assert m.id == SMOLLM2 and m.object == "model" and m.owned_by == "ember"


def test_chat_answers_and_counts_tokens(client, tmp_path):
    r = client.chat.completions.create(model=SMOLLM2, messages=QUESTION, temperature=0, max_tokens=16)
    assert "Paris" in r.choices[0].message.content
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].finish_reason in ("stop", "length")
    assert r.usage.prompt_tokens == prompt_token_count(SMOLLM2_FILE, QUESTION, tmp_path)
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_alias_without_quantisation_suffix(client):
    r = client.chat.completions.create(model="smollm2-135m-instruct", messages=QUESTION, temperature=0,
                                       max_tokens=4)
    assert r.model == SMOLLM2


def test_chat_stream_equals_non_stream(client):
    args = dict(model=SMOLLM2, messages=QUESTION, temperature=0, max_tokens=12)
    whole = client.chat.completions.create(**args)
    chunks = list(client.chat.completions.create(stream=True, stream_options={"include_usage": True}, **args))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    finals = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finals == [whole.choices[0].finish_reason]
    assert chunks[-1].usage.completion_tokens == whole.usage.completion_tokens
    assert chunks[-1].usage.prompt_tokens == whole.usage.prompt_tokens


def test_max_tokens_gives_length(client):
    r = client.chat.completions.create(model=SMOLLM2, messages=[{"role": "user", "content": "Tell me a long story."}],
                                       temperature=0, max_tokens=5)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 5
    r = client.chat.completions.create(model=SMOLLM2, messages=[{"role": "user", "content": "Tell me a long story."}],
                                       temperature=0, max_completion_tokens=3)
    assert r.choices[0].finish_reason == "length" and r.usage.completion_tokens == 3


def test_stop_strings(client):
    free = client.chat.completions.create(model=SMOLLM2, messages=QUESTION, temperature=0, max_tokens=16)
    text = free.choices[0].message.content
    word = "Paris"
    assert word in text
    r = client.chat.completions.create(model=SMOLLM2, messages=QUESTION, temperature=0, max_tokens=16, stop=[word])
    assert r.choices[0].message.content == text[:text.index(word)]
    assert r.choices[0].finish_reason == "stop"
    chunks = client.chat.completions.create(model=SMOLLM2, messages=QUESTION, temperature=0, max_tokens=16,
                                            stop=word, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == text[:text.index(word)]


def test_seed_reproducibility(client):
    args = dict(model=SMOLLM2, messages=[{"role": "user", "content": "Write a sentence about cats."}],
                temperature=1.0, top_p=0.95, max_tokens=24)
    a = client.chat.completions.create(seed=1234, **args).choices[0].message.content
    b = client.chat.completions.create(seed=1234, **args).choices[0].message.content
    others = {client.chat.completions.create(seed=s, **args).choices[0].message.content for s in (1, 2, 3)}
    assert a == b
    assert len(others | {a}) > 1  # different seeds give different samples


def test_completions_with_gemma(client):
    prompt = "Q: What is the capital of France?\nA:"
    r = client.completions.create(model=GEMMA3, prompt=prompt, temperature=0, max_tokens=8)
    assert "Paris" in r.choices[0].text
    assert r.object == "text_completion"
    chunks = list(client.completions.create(model=GEMMA3, prompt=prompt, temperature=0, max_tokens=8, stream=True))
    assert "".join(c.choices[0].text for c in chunks) == r.choices[0].text
    ids = subprocess.run([EMBER, "tokenize", "--model", str(GEMMA3_FILE), "--text", prompt],
                         capture_output=True, text=True, check=True).stdout.split()
    assert r.usage.prompt_tokens == len(ids)


def test_logprobs(client):
    r = client.chat.completions.create(model=SMOLLM2, messages=QUESTION, temperature=0, max_tokens=6,
                                       logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens
    for entry in content:
        assert entry.logprob <= 0 and len(entry.top_logprobs) == 3
        # greedy: the chosen token is the most likely one
        assert entry.top_logprobs[0].token == entry.token
        assert abs(entry.top_logprobs[0].logprob - entry.logprob) < 1e-5
    assert "".join(e.token for e in content).replace("Ġ", " ").strip() != ""
    c = client.completions.create(model=GEMMA3, prompt="The sky is", temperature=0, max_tokens=4, logprobs=2)
    assert len(c.choices[0].logprobs.tokens) == c.usage.completion_tokens
    assert all(len(t) == 2 for t in c.choices[0].logprobs.top_logprobs)


def test_errors_are_sdk_exceptions(client, server):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="no-such-model", messages=QUESTION)
    assert SMOLLM2 in str(e.value)  # the message names the available models
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=SMOLLM2, messages=QUESTION, n=2)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=SMOLLM2, messages=[])
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=SMOLLM2, messages=QUESTION, temperature=-1)
    with pytest.raises(openai.BadRequestError):
        client.chat.completions.create(model=SMOLLM2, messages=[{"role": "wizard", "content": "hi"}])
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("no-such-model")


def test_api_key(tmp_path):
    with EmberServer(tmp_path, "--api-key", "s3cret", models=(SMOLLM2_FILE,)) as s:
        bad = openai.OpenAI(base_url=s.url + "/v1", api_key="wrong", max_retries=0)
        with pytest.raises(openai.AuthenticationError):
            bad.models.list()
        good = openai.OpenAI(base_url=s.url + "/v1", api_key="s3cret", max_retries=0)
        assert [m.id for m in good.models.list().data] == [SMOLLM2]
    with EmberServer(tmp_path / "env", env={"EMBER_API_KEY": "k2"}, models=(SMOLLM2_FILE,)) as s:
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=s.url + "/v1", api_key="wrong", max_retries=0).models.list()
        assert openai.OpenAI(base_url=s.url + "/v1", api_key="k2", max_retries=0).models.list().data


def test_next_turn_reuses_the_cache(client):
    first = "The capital of France is"
    r1 = client.completions.create(model=SMOLLM2, prompt=first, temperature=0, max_tokens=8)
    second = first + r1.choices[0].text + " The capital of Germany is"
    r2 = client.completions.create(model=SMOLLM2, prompt=second, temperature=0, max_tokens=8)
    assert r2.usage.prompt_tokens_details.cached_tokens >= r1.usage.prompt_tokens
    # The same text as a run from an empty cache (the CLI).
    alone = subprocess.run([EMBER, "generate", "--model", str(SMOLLM2_FILE), "--prompt", second,
                            "--max-tokens", "8", "--temperature", "0"], capture_output=True, text=True, check=True)
    assert alone.stdout.rstrip("\n") == r2.choices[0].text
    # Chat: the second turn starts with the first turn's rendered prompt.
    turn1 = [{"role": "user", "content": "Name a colour."}]
    a1 = client.chat.completions.create(model=SMOLLM2, messages=turn1, temperature=0, max_tokens=6)
    turn2 = turn1 + [{"role": "assistant", "content": a1.choices[0].message.content},
                     {"role": "user", "content": "Another one?"}]
    a2 = client.chat.completions.create(model=SMOLLM2, messages=turn2, temperature=0, max_tokens=6)
    assert a2.usage.prompt_tokens_details.cached_tokens >= a1.usage.prompt_tokens - 1
