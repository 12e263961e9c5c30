"""Anthropic's Messages API through the official `anthropic` SDK against both real models:
messages streamed and not (the event sequence checked), system prompts, stop sequences,
max_tokens, forced tool use and tool results, structured output (output_config), count_tokens,
x-api-key, and errors in Anthropic's shape."""
import json
import os
import sys
import urllib.error
import urllib.request

import anthropic
import jsonschema
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from ember_server import GEMMA3, GEMMA3_FILE, SMOLLM2, SMOLLM2_FILE, EmberServer  # noqa: E402

GREEDY = {"temperature": 0}  # ember's extension: this SDK sends no sampling fields
WEATHER = {"name": "get_weather", "description": "The current weather in a city",
           "input_schema": {"type": "object", "properties": {"city": {"type": "string"}},
                            "required": ["city"]}}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with EmberServer(tmp_path_factory.mktemp("anthropic"), "--backend", "cpu", "--api-key", "sk-test",
                     models=(SMOLLM2_FILE, GEMMA3_FILE)) as s:
        yield s


@pytest.fixture(scope="module")
def client(server):
    return anthropic.Anthropic(base_url=server.url, api_key="sk-test")


@pytest.mark.parametrize("model", [SMOLLM2, GEMMA3])
def test_messages_streamed_and_not_agree(client, model):
    kwargs = dict(model=model, max_tokens=24, extra_body=GREEDY,
                  system=[{"type": "text", "text": "Answer in one sentence."}],
                  messages=[{"role": "user", "content": "Name the capital of France."}])
    m = client.messages.create(**kwargs)
    assert m.type == "message" and m.role == "assistant" and m.id.startswith("msg_")
    assert m.stop_reason in ("end_turn", "max_tokens") and m.content[0].type == "text"
    assert m.usage.input_tokens > 0 and m.usage.output_tokens > 0
    with client.messages.stream(**kwargs) as stream:
        text = "".join(stream.text_stream)
        final = stream.get_final_message()
    assert text == m.content[0].text and final.stop_reason == m.stop_reason
    assert final.usage.output_tokens == m.usage.output_tokens


def test_the_event_sequence_is_anthropics(server):
    req = urllib.request.Request(server.url + "/v1/messages", data=json.dumps({
        "model": SMOLLM2, "max_tokens": 8, "stream": True, "temperature": 0,
        "messages": [{"role": "user", "content": "Hi"}]}).encode(),
        headers={"x-api-key": "sk-test", "content-type": "application/json"})
    with urllib.request.urlopen(req) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        events = [line[7:] for line in r.read().decode().splitlines() if line.startswith("event: ")]
    assert events[:3] == ["message_start", "ping", "content_block_start"]
    assert events[-3:] == ["content_block_stop", "message_delta", "message_stop"]
    assert set(events[3:-3]) == {"content_block_delta"}


def test_stop_sequences_and_max_tokens(client):
    m = client.messages.create(model=SMOLLM2, max_tokens=40, extra_body=GREEDY, stop_sequences=[","],
                               messages=[{"role": "user", "content": "List three colours, comma separated."}])
    if m.stop_reason == "stop_sequence":
        assert m.stop_sequence == "," and "," not in m.content[0].text
    m = client.messages.create(model=SMOLLM2, max_tokens=2, extra_body=GREEDY,
                               messages=[{"role": "user", "content": "Tell me a long story."}])
    assert m.stop_reason == "max_tokens" and m.usage.output_tokens == 2


@pytest.mark.parametrize("model", [SMOLLM2, GEMMA3])
def test_forced_tool_use_and_results(client, model):
    ask = [{"role": "user", "content": "What is the weather in Paris?"}]
    for choice in ({"type": "any"}, {"type": "tool", "name": "get_weather"}):
        m = client.messages.create(model=model, max_tokens=60, extra_body=GREEDY, tools=[WEATHER],
                                   tool_choice=dict(choice, disable_parallel_tool_use=True), messages=ask)
        assert m.stop_reason == "tool_use"
        (use,) = [b for b in m.content if b.type == "tool_use"]
        assert use.name == "get_weather" and use.id.startswith("toolu_")
        jsonschema.validate(use.input, WEATHER["input_schema"])
    with client.messages.stream(model=model, max_tokens=60, extra_body=GREEDY, tools=[WEATHER],
                                tool_choice={"type": "any", "disable_parallel_tool_use": True},
                                messages=ask) as stream:
        streamed = stream.get_final_message()
    assert [b.input for b in streamed.content if b.type == "tool_use"] == [use.input]
    # The result goes back as a tool_result block; the model answers in words.
    follow = client.messages.create(model=model, max_tokens=30, extra_body=GREEDY, tools=[WEATHER],
                                    tool_choice={"type": "none"},
                                    messages=ask + [{"role": "assistant", "content": m.content},
                                                    {"role": "user", "content": [
                                                        {"type": "tool_result", "tool_use_id": use.id,
                                                         "content": "18 degrees, light rain"}]}])
    assert follow.content and follow.content[0].type == "text" and follow.content[0].text


def test_structured_output_and_count_tokens(client):
    schema = {"type": "object", "properties": {"city": {"type": "string"}, "country": {"type": "string"}},
              "required": ["city", "country"]}
    m = client.messages.create(model=SMOLLM2, max_tokens=60, extra_body=GREEDY,
                               output_config={"format": {"type": "json_schema", "schema": schema}},
                               messages=[{"role": "user", "content": "Where is the Eiffel tower?"}])
    assert m.stop_reason == "end_turn"
    jsonschema.validate(json.loads(m.content[0].text), schema)
    count = client.messages.count_tokens(model=SMOLLM2, messages=[{"role": "user", "content": "Hi"}])
    longer = client.messages.count_tokens(model=SMOLLM2,
                                          messages=[{"role": "user", "content": "Hi there, how are you?"}])
    plain = client.messages.create(model=SMOLLM2, max_tokens=1, messages=[{"role": "user", "content": "Hi"}])
    assert count.input_tokens == plain.usage.input_tokens and longer.input_tokens > count.input_tokens


def test_errors_are_anthropic_shaped(client, server):
    with pytest.raises(anthropic.NotFoundError) as e:
        client.messages.create(model="no-such-model", max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    assert e.value.body["type"] == "error" and e.value.body["error"]["type"] == "not_found_error"
    with pytest.raises(anthropic.AuthenticationError):
        anthropic.Anthropic(base_url=server.url, api_key="wrong").messages.create(
            model=SMOLLM2, max_tokens=5, messages=[{"role": "user", "content": "hi"}])
    for body, words in [
        ({"messages": [{"role": "user", "content": "hi"}]}, "max_tokens"),
        ({"max_tokens": 5, "messages": []}, "messages"),
        ({"max_tokens": 5, "messages": [{"role": "system", "content": "hi"}]}, "role"),
        ({"max_tokens": 5, "messages": [{"role": "user", "content": [
            {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}]}]},
         "text-only"),
        ({"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
          "tools": [{"type": "web_search_20250305", "name": "web_search"}]}, "server tools"),
        ({"max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
          "mcp_servers": [{"type": "url", "url": "https://example.com", "name": "x"}]}, "mcp_servers"),
    ]:
        req = urllib.request.Request(server.url + "/v1/messages", data=json.dumps(dict(body, model=SMOLLM2)).encode(),
                                     headers={"x-api-key": "sk-test", "content-type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(req)
        out = json.loads(e.value.read())
        assert e.value.code == 400 and out["type"] == "error", out
        assert out["error"]["type"] == "invalid_request_error" and words in out["error"]["message"], out
