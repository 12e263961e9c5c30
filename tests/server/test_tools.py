"""Tool calls and reasoning through the official openai SDK against both real models: forced calls
(tool_choice "required" and a named function) come back as parsed tool_calls whose arguments
validate against the function's parameters, streamed as OpenAI streams them (id and name first,
arguments in pieces), finish_reason "tool_calls"; tool results go back through the template;
bad tool fields are 400s naming them. Reasoning: a template that opens <think> gives
reasoning_content, streamed too, and reasoning_format "none" keeps it inline."""
import json
import os
import sys

import jsonschema
import openai
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from ember_server import GEMMA3, GEMMA3_FILE, SMOLLM2, SMOLLM2_FILE, EmberServer, post  # noqa: E402

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "The current weather in a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}},
        "required": ["city", "unit"]}}}
FLIGHTS = {"type": "function", "function": {
    "name": "find_flights", "description": "Flights between two airports on a day",
    "parameters": {"type": "object", "properties": {
        "origin": {"type": "string", "minLength": 3, "maxLength": 3},
        "destination": {"type": "string", "minLength": 3, "maxLength": 3},
        "date": {"type": "string", "format": "date"},
        "passengers": {"type": "integer"}},
        "required": ["origin", "destination", "date", "passengers"]}}}
TOOLS = [WEATHER, FLIGHTS]
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with EmberServer(tmp_path_factory.mktemp("tools"), "--backend", "cpu",
                     models=(SMOLLM2_FILE, GEMMA3_FILE)) as s:
        yield s


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="none")


def is_json(text):
    try:
        json.loads(text)
        return True
    except ValueError:
        return False


def check_calls(message, names):
    assert message.tool_calls, message
    for call in message.tool_calls:
        assert call.type == "function" and call.id.startswith("call_")
        assert call.function.name in names
        jsonschema.validate(json.loads(call.function.arguments), SCHEMAS[call.function.name])


@pytest.mark.parametrize("model", [SMOLLM2, GEMMA3])
def test_required_and_named_calls_are_well_formed(client, model):
    ask = [{"role": "user", "content": "What is the weather in Paris right now?"}]
    r = client.chat.completions.create(model=model, messages=ask, tools=TOOLS,
                                       tool_choice="required", parallel_tool_calls=False,
                                       max_tokens=120, temperature=0)
    assert r.choices[0].finish_reason == "tool_calls"
    assert len(r.choices[0].message.tool_calls) == 1
    check_calls(r.choices[0].message, {"get_weather", "find_flights"})
    assert r.choices[0].message.content is None
    # Parallel calls allowed: a tiny model may repeat calls until max_tokens; the complete ones
    # come back whole.
    r = client.chat.completions.create(model=model, messages=ask, tools=TOOLS,
                                       tool_choice="required", max_tokens=120, temperature=0)
    assert r.choices[0].finish_reason in ("tool_calls", "length")
    message = r.choices[0].message
    if r.choices[0].finish_reason == "length":  # the last call may be cut off
        message.tool_calls = [c for c in message.tool_calls if is_json(c.function.arguments)]
    check_calls(message, {"get_weather", "find_flights"})

    ask = [{"role": "user", "content": "Book me a flight from Oslo to Rome on 2026-12-24 for two."}]
    r = client.chat.completions.create(
        model=model, messages=ask, tools=TOOLS, max_tokens=120, temperature=0,
        tool_choice={"type": "function", "function": {"name": "find_flights"}},
        parallel_tool_calls=False)
    assert r.choices[0].finish_reason == "tool_calls"
    assert len(r.choices[0].message.tool_calls) == 1
    check_calls(r.choices[0].message, {"find_flights"})


@pytest.mark.parametrize("model", [SMOLLM2, GEMMA3])
def test_streamed_calls_match_and_arrive_in_pieces(client, model):
    kwargs = dict(model=model, messages=[{"role": "user", "content": "Weather in Tokyo?"}],
                  tools=[WEATHER], tool_choice="required", parallel_tool_calls=False,
                  max_tokens=80, temperature=0)
    whole = client.chat.completions.create(**kwargs).choices[0].message.tool_calls[0]
    calls, pieces, finish = {}, 0, None
    for chunk in client.chat.completions.create(stream=True, **kwargs):
        choice = chunk.choices[0]
        finish = choice.finish_reason or finish
        for d in choice.delta.tool_calls or []:
            if d.index not in calls:  # the first delta of a call carries its id and name
                assert d.id and d.function.name and d.type == "function"
                calls[d.index] = {"name": d.function.name, "arguments": ""}
            calls[d.index]["arguments"] += d.function.arguments or ""
            pieces += bool(d.function.arguments)
    assert finish == "tool_calls"
    assert list(calls) == [0]
    assert calls[0] == {"name": whole.function.name, "arguments": whole.function.arguments}
    assert pieces > 1  # the arguments stream as they are written
    jsonschema.validate(json.loads(calls[0]["arguments"]), SCHEMAS["get_weather"])


@pytest.mark.parametrize("model", [SMOLLM2, GEMMA3])
def test_tool_results_go_back_through_the_template(client, model):
    messages = [{"role": "user", "content": "What is the weather in Paris?"}]
    first = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER],
                                           tool_choice="required", max_tokens=80, temperature=0)
    call = first.choices[0].message.tool_calls[0]
    messages.append(first.choices[0].message.model_dump(exclude_none=True))
    messages.append({"role": "tool", "tool_call_id": call.id, "content": "18 degrees, light rain"})
    # tool_choice "none": the model must answer in words.
    r = client.chat.completions.create(model=model, messages=messages, tools=[WEATHER],
                                       tool_choice="none", max_tokens=40, temperature=0)
    assert r.choices[0].message.tool_calls is None
    assert r.choices[0].message.content
    # The call and its result are in the prompt (as text where the template cannot show them).
    alone = client.chat.completions.create(model=model, messages=messages[:1], tools=[WEATHER],
                                           tool_choice="none", max_tokens=1)
    assert r.usage.prompt_tokens > alone.usage.prompt_tokens + 15


def test_auto_answers_with_content_or_valid_calls(client):
    r = client.chat.completions.create(
        model=SMOLLM2, messages=[{"role": "user", "content": "Say hello."}], tools=[WEATHER],
        max_tokens=40, temperature=0)
    message = r.choices[0].message
    if message.tool_calls:
        assert r.choices[0].finish_reason == "tool_calls"
        check_calls(message, {"get_weather"})
    else:
        assert message.content and r.choices[0].finish_reason in ("stop", "length")


@pytest.mark.parametrize("body,param", [
    ({"tools": {"type": "function"}}, "tools"),
    ({"tools": [{"type": "code_interpreter"}]}, "tools"),
    ({"tools": [{"type": "function", "function": {"description": "no name"}}]}, "tools"),
    ({"tools": [WEATHER], "tool_choice": {"type": "function", "function": {"name": "nope"}}},
     "tool_choice"),
    ({"tools": [WEATHER], "tool_choice": "sometimes"}, "tool_choice"),
    ({"tool_choice": "required"}, "tool_choice"),
    ({"tools": [WEATHER], "tool_choice": "required", "response_format": {"type": "json_object"}},
     "tool_choice"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"n": {"type": "integer", "multipleOf": 3}}}}}],
      "tool_choice": "required"}, "tools"),
    ({"reasoning_format": "sometimes"}, "reasoning_format"),
])
def test_bad_tool_fields_are_400_naming_them(server, body, param):
    status, answer = post(server, "/v1/chat/completions", {
        "model": SMOLLM2, "messages": [{"role": "user", "content": "hi"}], **body})
    assert status == 400, answer
    assert answer["error"]["param"] == param, answer


THINKING_TEMPLATE = (
    "{%- for message in messages -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n<think>\\n' }}{%- endif -%}")


def test_reasoning_is_split_streamed_and_kept_inline_on_request(tmp_path):
    template = tmp_path / "thinking.jinja"
    template.write_text(THINKING_TEMPLATE)
    with EmberServer(tmp_path, "--backend", "cpu", "--chat-template-file", str(template),
                     models=(SMOLLM2_FILE,)) as s:
        body = {"model": SMOLLM2, "messages": [{"role": "user", "content": "Is 7 prime?"}],
                "max_tokens": 24, "temperature": 0}
        status, split = post(s, "/v1/chat/completions", body)
        assert status == 200, split
        message = split["choices"][0]["message"]
        # The prompt opened the block and the model did not close it: all of it is reasoning.
        assert message["reasoning_content"] and message["reasoning"] == message["reasoning_content"]
        assert not message["content"]
        status, inline = post(s, "/v1/chat/completions", {**body, "reasoning_format": "none"})
        assert "reasoning_content" not in inline["choices"][0]["message"]
        assert inline["choices"][0]["message"]["content"].strip() == message["reasoning_content"]

        client = openai.OpenAI(base_url=s.url + "/v1", api_key="none")
        streamed = ""
        for chunk in client.chat.completions.create(stream=True, **body):
            delta = chunk.choices[0].delta
            streamed += (delta.model_extra or {}).get("reasoning_content") or ""
            assert not delta.content
        assert streamed == message["reasoning_content"]


def test_a_bad_template_file_is_a_usage_error(tmp_path):
    bad = tmp_path / "bad.jinja"
    bad.write_text("{% if %}")
    with pytest.raises(AssertionError, match="chat-template"):
        with EmberServer(tmp_path, "--chat-template-file", str(bad), models=(SMOLLM2_FILE,)):
            pass


def test_chat_template_by_name_or_source(tmp_path):
    """--chat-template takes a built-in's name or (as llama-server with --jinja) the template."""
    with EmberServer(tmp_path / "a", "--backend", "cpu", "--chat-template", THINKING_TEMPLATE,
                     models=(SMOLLM2_FILE,)) as s:
        status, out = post(s, "/v1/chat/completions", {
            "model": SMOLLM2, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4})
        assert status == 200 and out["choices"][0]["message"]["reasoning_content"], out
    with EmberServer(tmp_path / "b", "--backend", "cpu", "--chat-template", "gemma",
                     models=(SMOLLM2_FILE,)) as s:
        status, out = post(s, "/v1/chat/completions", {
            "model": SMOLLM2, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4})
        assert status == 200 and "reasoning_content" not in out["choices"][0]["message"], out
    for bad in ("no-such-template", "{% if %}"):
        with pytest.raises(AssertionError, match="chat-template"):
            with EmberServer(tmp_path / "c", "--chat-template", bad, models=(SMOLLM2_FILE,)):
                pass
    with pytest.raises(AssertionError, match="not both"):
        with EmberServer(tmp_path / "d", "--chat-template", "gemma", "--chat-template-file",
                         str(tmp_path / "x.jinja"), models=(SMOLLM2_FILE,)):
            pass
