"""Embeddings: OpenAI's /v1/embeddings through the openai SDK and Ollama's /api/embed and
/api/embeddings through the ollama client, on both real models — the same text gives the same
vector alone and in a batch, a paraphrase ranks above an unrelated sentence, vectors are
L2-normalised, base64 decodes to the floats, token-id inputs work, `dimensions` other than the
model's is a 400."""
import base64
import os
import sys

import numpy as np
import ollama
import openai
import pytest

sys.path.insert(0, os.path.dirname(__file__))
from ember_server import GEMMA3, GEMMA3_FILE, SMOLLM2, SMOLLM2_FILE, EmberServer, post  # noqa: E402

TEXTS = ["The cat sat on the mat.", "A cat was sitting on the rug.",
         "Quarterly revenue grew by eight percent."]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with EmberServer(tmp_path_factory.mktemp("embeddings"), "--backend", "cpu",
                     models=(SMOLLM2_FILE, GEMMA3_FILE)) as s:
        yield s


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key="none")


@pytest.mark.parametrize("model,width", [(SMOLLM2, 576), (GEMMA3, 640)])
def test_batch_alone_and_ranking(client, model, width):
    r = client.embeddings.create(model=model, input=TEXTS, encoding_format="float")
    v = [np.array(d.embedding) for d in r.data]
    assert [d.index for d in r.data] == [0, 1, 2] and len(v[0]) == width
    assert r.usage.prompt_tokens == r.usage.total_tokens > 0
    for x in v:
        assert abs(np.linalg.norm(x) - 1) < 1e-5
    alone = np.array(client.embeddings.create(model=model, input=TEXTS[0], encoding_format="float").data[0].embedding)
    assert np.max(np.abs(alone - v[0])) < 1e-5
    assert v[0] @ v[1] > v[0] @ v[2]  # the paraphrase is closer than the unrelated sentence
    raw = client.embeddings.create(model=model, input=TEXTS[0], encoding_format="base64").data[0].embedding
    assert np.max(np.abs(np.frombuffer(base64.b64decode(raw), dtype="<f4") - v[0])) < 1e-6
    default = client.embeddings.create(model=model, input=TEXTS[0]).data[0].embedding  # the SDK's base64
    assert np.max(np.abs(np.array(default) - v[0])) < 1e-6


def test_token_ids_and_dimensions(client):
    ids = client.embeddings.create(model=SMOLLM2, input=[[1, 504, 2365], [1, 504]], encoding_format="float")
    assert len(ids.data) == 2 and ids.usage.prompt_tokens == 5
    with pytest.raises(openai.BadRequestError) as e:
        client.embeddings.create(model=SMOLLM2, input="x", dimensions=64)
    assert "576" in str(e.value)
    assert len(client.embeddings.create(model=SMOLLM2, input="x", dimensions=576).data[0].embedding) == 576
    with pytest.raises(openai.BadRequestError):
        client.embeddings.create(model=SMOLLM2, input=[[1, 10**8]])
    with pytest.raises(openai.NotFoundError):
        client.embeddings.create(model="no-such-model", input="x")
    with pytest.raises(openai.BadRequestError) as e:  # bounded: it runs while others wait
        client.embeddings.create(model=SMOLLM2, input=[[1] * 2000] * 9)
    assert "16384" in str(e.value)


def test_ollama_embed_and_embeddings(server, client):
    o = ollama.Client(host=server.url)
    e = o.embed(model=GEMMA3, input=TEXTS[:2])
    assert len(e.embeddings) == 2 and len(e.embeddings[0]) == 640 and e.prompt_eval_count > 0
    single = o.embeddings(model=GEMMA3, prompt=TEXTS[0])
    assert np.max(np.abs(np.array(single.embedding) - np.array(e.embeddings[0]))) < 1e-5
    status, out = post(server, "/api/embed", {"model": GEMMA3})
    assert status == 400 and "input" in out["error"]
