"""OpenAI's Responses API (stateless) through the official openai SDK against both real models:
responses.create streamed and not (the event sequence checked), instructions, max_output_tokens
(status incomplete), forced function calls and their outputs, text.format through
responses.parse, and what a stateless server must refuse."""
import json
import os
import sys

import jsonschema
import openai
import pydantic
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from ember_server import GEMMA3, GEMMA3_FILE, SMOLLM2, SMOLLM2_FILE, EmberServer  # noqa: E402

WEATHER = {"type": "function", "name": "get_weather", "description": "The current weather in a city",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    with EmberServer(tmp_path_factory.mktemp("responses"), "--backend", "cpu",
                     models=(SMOLLM2_FILE, GEMMA3_FILE)) as s:
        yield openai.OpenAI(base_url=s.url + "/v1", api_key="none")


@pytest.mark.parametrize("model", [SMOLLM2, GEMMA3])
def test_create_streamed_and_not_agree(client, model):
    kwargs = dict(model=model, input="Name the capital of France.", instructions="Answer briefly.",
                  max_output_tokens=40, temperature=0)
    r = client.responses.create(**kwargs)
    assert r.object == "response" and r.id.startswith("resp_") and r.store is False
    assert r.status in ("completed", "incomplete") and r.output_text
    assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0
    events = list(client.responses.create(stream=True, **kwargs))
    types = [e.type for e in events]
    added = next(e for e in events if e.type == "response.output_item.added")
    assert added.item.type == "message" and added.item.content == []  # the part comes next
    assert types[:4] == ["response.created", "response.in_progress", "response.output_item.added",
                         "response.content_part.added"]
    assert types[-1] in ("response.completed", "response.incomplete")
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == r.output_text
    assert events[-1].response.output_text == r.output_text


def test_max_output_tokens_gives_an_incomplete_response(client):
    r = client.responses.create(model=SMOLLM2, input="Tell me a long story.", max_output_tokens=3, temperature=0)
    assert r.status == "incomplete" and r.incomplete_details.reason == "max_output_tokens"
    assert r.usage.output_tokens == 3


@pytest.mark.parametrize("model", [SMOLLM2, GEMMA3])
def test_forced_function_calls_and_outputs(client, model):
    r = client.responses.create(model=model, input="What is the weather in Paris?", tools=[WEATHER],
                                tool_choice="required", parallel_tool_calls=False, temperature=0,
                                max_output_tokens=60)
    (call,) = [o for o in r.output if o.type == "function_call"]
    assert call.name == "get_weather" and call.call_id and call.id.startswith("fc_")
    jsonschema.validate(json.loads(call.arguments), WEATHER["parameters"])
    streamed = list(client.responses.create(model=model, input="What is the weather in Paris?", tools=[WEATHER],
                                            tool_choice={"type": "function", "name": "get_weather"},
                                            parallel_tool_calls=False, temperature=0, max_output_tokens=60,
                                            stream=True))
    args = "".join(e.delta for e in streamed if e.type == "response.function_call_arguments.delta")
    assert args == call.arguments
    follow = client.responses.create(
        model=model, tools=[WEATHER], tool_choice="none", temperature=0, max_output_tokens=30,
        input=[{"role": "user", "content": "What is the weather in Paris?"},
               {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
               {"type": "function_call_output", "call_id": call.call_id, "output": "18 degrees, light rain"}])
    alone = client.responses.create(model=model, tools=[WEATHER], tool_choice="none", max_output_tokens=1,
                                    input=[{"role": "user", "content": "What is the weather in Paris?"}])
    assert follow.output_text and follow.usage.input_tokens > alone.usage.input_tokens + 10


class City(pydantic.BaseModel):
    name: str
    country: str


def test_parse_with_text_format(client):
    r = client.responses.parse(model=SMOLLM2, input="Describe Paris.", text_format=City, temperature=0,
                               max_output_tokens=60)
    assert isinstance(r.output_parsed, City)


def test_stateless_refusals(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model=SMOLLM2, input="Hi", previous_response_id="resp_123")
    assert "stateless" in str(e.value) and e.value.body["param"] == "previous_response_id"
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model=SMOLLM2, input="Hi", tools=[{"type": "web_search"}])
    assert e.value.body["param"] == "tools"
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model=SMOLLM2, input=[{"role": "user", "content": [
            {"type": "input_image", "image_url": "data:image/png;base64,iVBORw0KGgo="}]}])
    assert e.value.body["code"] == "unsupported_content"
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="no-such-model", input="Hi")
    for field, value in [("background", True), ("include", ["reasoning.encrypted_content"]),
                         ("top_logprobs", 3), ("conversation", "conv_1")]:
        with pytest.raises(openai.BadRequestError) as e:
            client.responses.create(model=SMOLLM2, input="Hi", extra_body={field: value})
        assert e.value.body["param"] == field, e.value.body
