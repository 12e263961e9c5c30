"""Ollama's API through the official `ollama` Python client against both real models: chat and
generate, streamed (NDJSON) and not, options, format (JSON and schemas), tools, keep_alive
(including 0 to unload), show, ps, list; errors in Ollama's shape {"error": ...}."""
import json
import os
import sys
import urllib.request

import jsonschema
import ollama
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from ember_server import GEMMA3, GEMMA3_FILE, SMOLLM2, SMOLLM2_FILE, EmberServer, post  # noqa: E402
from mock_hub import MockHub, Repo  # noqa: E402

OPTIONS = {"temperature": 0, "num_predict": 12}


@pytest.fixture(scope="module")
def hub():
    h = MockHub()
    synthetic = os.path.join(os.environ.get("EMBER_TESTDATA", os.path.join(os.path.dirname(__file__),
                             "../../../shared/testdata")), "synthetic")
    with open(os.path.join(synthetic, "tiny-llama-q4_0.gguf"), "rb") as f:
        h.add("test/tiny", Repo({"tiny-llama-Q4_K_M.gguf": f.read()}))
    yield h
    h.close()


@pytest.fixture(scope="module")
def server(hub, tmp_path_factory):
    with EmberServer(tmp_path_factory.mktemp("ollama"), "--backend", "cpu",
                     models=(SMOLLM2_FILE, GEMMA3_FILE), env={"HF_ENDPOINT": hub.url, "HF_TOKEN": ""}) as s:
        yield s


@pytest.fixture(scope="module")
def client(server):
    return ollama.Client(host=server.url)


@pytest.mark.parametrize("model", [SMOLLM2, GEMMA3])
def test_chat_streamed_and_not_agree(client, model):
    messages = [{"role": "user", "content": "Name the capital of France."}]
    r = client.chat(model=model, messages=messages, options=OPTIONS)
    assert r.done and r.done_reason in ("stop", "length") and r.message.role == "assistant"
    assert r.message.content and r.eval_count > 0 and r.prompt_eval_count > 0
    assert r.total_duration >= r.eval_duration > 0 and r.created_at
    pieces = list(client.chat(model=model, messages=messages, options=OPTIONS, stream=True))
    assert all(not p.done for p in pieces[:-1]) and pieces[-1].done
    assert "".join(p.message.content for p in pieces) == r.message.content
    assert pieces[-1].eval_count == r.eval_count


@pytest.mark.parametrize("model", [SMOLLM2, GEMMA3])
def test_generate_uses_the_template_unless_raw(client, model):
    r = client.generate(model=model, prompt="Name the capital of France.", options=OPTIONS)
    assert r.done and r.response
    chat = client.chat(model=model, messages=[{"role": "user", "content": "Name the capital of France."}],
                       options=OPTIONS)
    assert r.response == chat.message.content  # the same prompt through the template
    raw = client.generate(model=model, prompt="The capital of France is", raw=True, options=OPTIONS)
    assert raw.response and raw.response != r.response
    streamed = "".join(p.response for p in client.generate(model=model, prompt="The capital of France is",
                                                            raw=True, options=OPTIONS, stream=True))
    assert streamed == raw.response


def test_neutral_and_null_options_are_accepted(client):
    opts = {"temperature": 0, "num_predict": 4, "mirostat": 0, "typical_p": 1.0, "tfs_z": 1.0,
            "top_k": None, "repeat_last_n": -1, "penalize_newline": True}
    assert client.generate(model=SMOLLM2, prompt="Hi", options=opts).eval_count == 4


def test_options_system_and_stop_are_honoured(client):
    r = client.generate(model=SMOLLM2, prompt="Count from one to ten in words.",
                        options={"temperature": 0, "num_predict": 3})
    assert r.eval_count == 3 and r.done_reason == "length"
    r = client.generate(model=SMOLLM2, prompt="Count from one to ten in words, comma separated.",
                        options={"temperature": 0, "num_predict": 40, "stop": [","]})
    assert "," not in r.response
    a = client.generate(model=SMOLLM2, prompt="Who are you?", system="You are a pirate.", options=OPTIONS)
    b = client.generate(model=SMOLLM2, prompt="Who are you?", options=OPTIONS)
    assert a.response != b.response  # (SmolLM2's template has a default system prompt of its own)


@pytest.mark.parametrize("model", [SMOLLM2, GEMMA3])
def test_format_json_and_schema(client, model):
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
              "required": ["city", "country"]}
    r = client.chat(model=model, messages=[{"role": "user", "content": "Where is the Eiffel tower?"}],
                    format=schema, options={"temperature": 0, "num_predict": 60})
    assert r.done_reason == "stop", r
    jsonschema.validate(json.loads(r.message.content), schema)
    r = client.generate(model=model, prompt="Describe Paris as JSON.", format="json",
                        options={"temperature": 0, "num_predict": 40})
    if r.done_reason == "stop":
        assert isinstance(json.loads(r.response), dict)


def test_tools_come_back_with_object_arguments(client):
    weather = {"type": "function", "function": {
        "name": "get_weather", "description": "The weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
    messages = [{"role": "user", "content": "What is the weather in Paris? Use the tool."}]
    r = client.chat(model=SMOLLM2, messages=messages, tools=[weather], options={"temperature": 0, "num_predict": 60})
    assert r.done
    for call in r.message.tool_calls or []:
        assert call.function.name == "get_weather" and isinstance(call.function.arguments, dict)
    # A conversation with a call and its result goes back through the template.
    messages += [{"role": "assistant", "content": "",
                  "tool_calls": [{"function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
                 {"role": "tool", "content": "18 degrees and rain", "tool_name": "get_weather"}]
    r = client.chat(model=SMOLLM2, messages=messages, options=OPTIONS)
    assert r.done and r.message.content


def test_keep_alive_show_ps_and_list(client, server):
    loaded = client.generate(model=GEMMA3, prompt="", keep_alive="10m")  # an empty prompt loads
    assert loaded.done and loaded.done_reason == "load" and loaded.response == ""
    ps = {m.model: m for m in client.ps().models}
    assert GEMMA3 in ps and ps[GEMMA3].size > 0 and ps[GEMMA3].expires_at
    gone = client.generate(model=GEMMA3, prompt="", keep_alive=0)
    assert gone.done_reason == "unload"
    assert GEMMA3 not in {m.model for m in client.ps().models}
    client.generate(model=GEMMA3, prompt="Hi", keep_alive="1s", options={"num_predict": 1})
    deadline = __import__("time").time() + 10
    while GEMMA3 in {m.model for m in client.ps().models}:  # unloaded once idle for a second
        assert __import__("time").time() < deadline
        __import__("time").sleep(0.2)

    # Each request sets keep_alive anew: one without it keeps the model loaded (ember's default).
    client.generate(model=GEMMA3, prompt="", keep_alive="10m")
    client.generate(model=GEMMA3, prompt="Hi", options={"num_predict": 1})
    assert {m.model: m for m in client.ps().models}[GEMMA3].expires_at.year == 9999
    # Unloading a model that is not loaded does not load it.
    client.generate(model=GEMMA3, prompt="", keep_alive=0)
    assert client.generate(model=GEMMA3, prompt="", keep_alive=0).done_reason == "unload"
    assert GEMMA3 not in {m.model for m in client.ps().models}

    names = {m.model for m in client.list().models}
    assert {SMOLLM2, GEMMA3} <= names
    show = client.show(SMOLLM2)
    assert show.details.family == "llama" and show.details.quantization_level == "Q4_1"
    assert show.modelinfo["general.architecture"] == "llama"
    assert "im_start" in show.template and "completion" in show.capabilities
    with urllib.request.urlopen(server.url + "/api/version") as r:
        assert json.loads(r.read())["version"]


def test_pull_speaks_ollama_to_ollama_clients(client):
    """The client's pull() (Ollama's body and line shapes), with the hf.co/ name form."""
    statuses = [p.status for p in client.pull("hf.co/test/tiny:Q4_K_M", stream=True)]
    assert statuses[0] == "pulling manifest" and statuses[-1] == "success", statuses
    assert any(s.startswith("pulling ") and s != "pulling manifest" for s in statuses)
    assert client.pull("test/tiny").status == "success"  # not streamed: the last line only
    assert any("tiny-llama" in m.model for m in client.list().models)
    with pytest.raises(ollama.ResponseError):
        client.pull("test/no-such-repo")


def test_langchain_chat_ollama(server):
    """LangChain's ChatOllama, one chat streamed and not."""
    from langchain_ollama import ChatOllama
    llm = ChatOllama(model=SMOLLM2, base_url=server.url, temperature=0, num_predict=12)
    answer = llm.invoke("Name the capital of France.")
    assert answer.content
    assert "".join(chunk.content for chunk in llm.stream("Name the capital of France.")) == answer.content


def test_errors_are_ollama_shaped(client, server):
    with pytest.raises(ollama.ResponseError) as e:
        client.chat(model="no-such-model", messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code == 404 and "no-such-model" in e.value.error
    for path, body, words in [
        ("/api/chat", {"model": SMOLLM2, "messages": "hi"}, "messages"),
        ("/api/generate", {"model": SMOLLM2, "prompt": "hi", "keep_alive": "soon"}, "keep_alive"),
        ("/api/generate", {"model": SMOLLM2, "prompt": "hi", "template": "{{ .Prompt }}"}, "template"),
        ("/api/generate", {"model": SMOLLM2, "prompt": "hi", "options": {"mirostat": 1}}, "mirostat"),
        ("/api/show", {}, "model"),
        ("/api/generate", {"model": SMOLLM2, "prompt": "hi", "tools": [{"type": "function",
                           "function": {"name": "f"}}]}, "tools"),
    ]:
        status, out = post(server, path, body)
        assert status == 400 and set(out) == {"error"} and words in out["error"], (path, out)
