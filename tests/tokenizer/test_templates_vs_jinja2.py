"""ember's Jinja interpreter against Python's jinja2, configured as transformers configures it
for chat templates (trim_blocks, lstrip_blocks, loop controls, its tojson and raise_exception):
feature templates, SmolLM2's own template and every built-in fallback, over several
conversations. Outputs must be equal byte for byte."""
import json
import os
import pathlib
import subprocess

import jinja2
import pytest
from jinja2.ext import loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

EMBER = os.environ.get("EMBER_BIN", "build/release/bin/ember")
MODEL_CACHE = pathlib.Path(os.environ.get("EMBER_MODEL_CACHE", pathlib.Path.home() / ".cache/ember/models"))


def reference_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env


def jinja2_render(source, context):
    return reference_env().from_string(source).render(**context)


def ember_render(tmp_path, source, context):
    (tmp_path / "t.jinja").write_text(source)
    (tmp_path / "c.json").write_text(json.dumps(context))
    out = subprocess.run([EMBER, "template", "--template-file", str(tmp_path / "t.jinja"),
                          "--context", str(tmp_path / "c.json")], capture_output=True)
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout.decode()


CONVERSATIONS = [
    [{"role": "user", "content": "Hi!"}],
    [{"role": "system", "content": "You are terse."}, {"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}, {"role": "user", "content": "  and 3+3?  "}],
    [{"role": "system", "content": "Sys"}, {"role": "user", "content": "Line one\nLine two\n\n"},
     {"role": "assistant", "content": "Ünïcödé ✓ 🦙"}, {"role": "user", "content": "quotes ' \" and \\ backslash"}],
]

FEATURES = [
    # loops, loop variables, conditionals, whitespace control
    ("{% for m in messages %}{{ loop.index }}/{{ loop.length }} {{ m.role }}{% if loop.first %} first{% elif loop.last %} last{% else %} mid{% endif %}\n{% endfor %}", {}),
    ("{% for m in messages %}\n  {{ loop.index0 }}:{{ loop.revindex }}:{{ loop.revindex0 }} {{ loop.cycle('a', 'b') }}\n{% endfor %}", {}),
    ("{%- for m in messages -%}\n    [{{ m['role'] | upper }}]\n{%- endfor %}\nend", {}),
    ("{# comment #}\n  {% if true %}\n    yes\n  {% endif %}\n{{ 'x' if false else 'y' }}|{{ 'z' if none }}|", {}),
    ("{% for m in messages if m.role == 'user' %}{{ m.content | trim }};{% else %}none{% endfor %}", {}),
    ("{% for x in [] %}never{% else %}empty{% endfor %} {% for i in range(10) %}{% if i == 5 %}{% break %}{% endif %}{% if i is odd %}{% continue %}{% endif %}{{ i }}{% endfor %}", {}),
    # namespaces, set, set blocks, macros
    ("{% set ns = namespace(count=0, seen='') %}{% for m in messages %}{% set ns.count = ns.count + 1 %}{% set ns.seen = ns.seen ~ m.role[0] %}{% endfor %}{{ ns.count }} {{ ns.seen }}", {}),
    ("{% set greeting %}Hello {{ name }}!{% endset %}{{ greeting | upper }} {% set a, b = 1, 2 %}{{ a + b }}", {"name": "ember"}),
    ("{% macro tag(name, value='none') -%}<{{ name }}={{ value }}>{%- endmacro %}{{ tag('a') }}{{ tag('b', 3) }}{{ tag(name='c', value=[1]) }}", {}),
    # filters
    ("{{ messages | length }} {{ 'AbC' | lower }} {{ 'hello world' | title }} {{ 'hELLO' | capitalize }} {{ '  pad  ' | trim }}|", {}),
    ("{{ tools | tojson }}\n{{ tools | tojson(indent=2) }}\n{{ {'b': 1.5, 'a': [True, None, 'x\"y']} | tojson }}", {"tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}]}),
    ("{{ words | join(', ') }} {{ words | first }} {{ words | last }} {{ words | reverse | list }} {{ words | sort }} {{ [3, 1, 3, 2] | unique | list }}", {"words": ["pear", "apple", "fig"]}),
    ("{{ messages | map(attribute='role') | join(',') }} {{ messages | selectattr('role', 'equalto', 'user') | list | length }} {{ messages | rejectattr('role', 'equalto', 'user') | map(attribute='role') | list }}", {}),
    ("{{ missing | default('dflt') }} {{ '' | default('empty', true) }} {{ 3.7 | int }} {{ '42' | int + 1 }} {{ 2 | float }} {{ -5 | abs }} {{ 2.567 | round(2) }} {{ 17 | string + '!' }}", {}),
    ("{{ 'line1\nline2\n\nline4' | indent(2) }}|{{ 'a\nb' | indent(4, true) }}|{{ 'a-b-c' | replace('-', '+') }}", {}),
    ("{% for k, v in d | dictsort %}{{ k }}={{ v }};{% endfor %} {% for k, v in d.items() %}{{ k }}{% endfor %} {{ d.keys() | list }} {{ d.values() | list }} {{ d.get('zz', 'none') }} {{ d.get('b') }}", {"d": {"b": 2, "a": 1, "c": 3}}),
    # tests
    ("{{ x is defined }} {{ y is defined }} {{ y is undefined }} {{ n is none }} {{ s is string }} {{ 1 is number }} {{ d is mapping }} {{ l is iterable }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 'a' is in 'cat' }} {{ x is not none }}", {"x": 1, "n": None, "s": "s", "d": {}, "l": []}),
    # string and list methods, slicing
    ("{{ s.startswith('He') }} {{ s.endswith(('x', 'lo')) }} {{ s.upper() }} {{ s.lower() }} {{ '  x  '.strip() }}|{{ 'xxhixx'.strip('x') }} {{ s.split('l') }} {{ 'a b  c'.split() }} {{ s.replace('l', 'L') }} {{ s.find('l') }} {{ ', '.join(['a', 'b']) }} {{ s.title() }}", {"s": "Hello"}),
    ("{{ messages[1:] | length }} {{ messages[-1].role }} {{ s[1:3] }} {{ s[::-1] }} {{ s[:-1] }} {{ [1, 2, 3, 4][::2] }} {{ s[0] }}", {"s": "abcdef"}),
    # operators and Python-style printing
    ("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 1 + 2 * 3 }} {{ 'ab' ~ 1 ~ none }} {{ 'ab' * 3 }} {{ [1] + [2] }}", {}),
    ("{{ 'ab' * 0 }}|{{ 'ab' * -1 }}|{{ '' * 4 }}|{{ 'xy' * 5 }}|{{ 'a-b--c'.replace('-', '+', 2) }}|{{ 'aaa' | replace('a', 'bb') }}|{{ 'abc'.replace('', '-') }}", {}),
    ("{{ 1 < 2 < 3 }} {{ 'a' in ['a'] }} {{ 'z' not in 'abc' }} {{ not true or false and true }} {{ 1 == 1.0 }} {{ none == none }} {{ [1, 'a', none, true, 1.5] }} {{ {'k': 'v'} }} {{ 0.1 + 0.2 }} {{ 1e20 }} {{ 3.0 }}", {}),
    # errors raised by templates
    ("{% if messages[0].role != 'system' %}{{ raise_exception('first message must be system') }}{% endif %}ok", {"messages": [{"role": "system", "content": "x"}]}),
]


@pytest.mark.parametrize("index", range(len(FEATURES)))
def test_feature_templates(tmp_path, index):
    source, extra = FEATURES[index]
    for messages in CONVERSATIONS:
        context = {"messages": messages, "add_generation_prompt": True, **extra}
        assert ember_render(tmp_path, source, context) == jinja2_render(source, context)


def template_of(*args):
    out = subprocess.run([EMBER, "template", *args, "--print-source"], capture_output=True)
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout.decode()


def smollm2_template():
    path = MODEL_CACHE / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.exists(), f"{path} is missing: run scripts/fetch-models.sh (make test does)"
    return template_of("--model", str(path))


@pytest.mark.parametrize("name", ["smollm2", "chatml", "llama3", "gemma", "phi3", "mistral"])
def test_chat_templates(tmp_path, name):
    source = smollm2_template() if name == "smollm2" else template_of("--builtin", name)
    conversations = CONVERSATIONS + ([] if name == "smollm2" else [
        [{"role": "user", "content": [{"type": "text", "text": "Describe"}, {"type": "image"},
                                      {"type": "text", "text": " this."}]}]])
    for messages in conversations:
        for add_generation_prompt in (True, False):
            context = {"messages": messages, "add_generation_prompt": add_generation_prompt,
                       "bos_token": "<s>", "eos_token": "</s>"}
            assert ember_render(tmp_path, source, context) == jinja2_render(source, context)


def test_model_without_template_uses_the_gemma_fallback(tmp_path):
    path = MODEL_CACHE / "gemma-3-270m-q4_k_m.gguf"
    assert template_of("--model", str(path)) == template_of("--builtin", "gemma")
    (tmp_path / "m.json").write_text(json.dumps(CONVERSATIONS[1]))
    out = subprocess.run([EMBER, "template", "--model", str(path), "--messages", str(tmp_path / "m.json"),
                          "--add-generation-prompt"], capture_output=True)
    assert out.stdout.decode() == ("<bos><start_of_turn>user\nYou are terse.\n\nWhat is the capital of France?"
                                   "<end_of_turn>\n<start_of_turn>model\n")


def test_errors_are_reported(tmp_path):
    (tmp_path / "bad.jinja").write_text("{% for x in %}")
    out = subprocess.run([EMBER, "template", "--template-file", str(tmp_path / "bad.jinja")], capture_output=True)
    assert out.returncode == 1 and b"template line 1" in out.stderr
    (tmp_path / "raise.jinja").write_text("{{ raise_exception('roles must alternate') }}")
    out = subprocess.run([EMBER, "template", "--template-file", str(tmp_path / "raise.jinja")], capture_output=True)
    assert out.returncode == 1 and b"roles must alternate" in out.stderr


HOSTILE = [
    ("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}", b"cannot contain itself"),
    ("{% set ns = namespace(a=[]) %}{% for i in range(1000) %}{% set ns.a = [ns.a] %}{% endfor %}", b"nested too deeply"),
    ("{% set ns = namespace(a=[1]) %}{% for i in range(64) %}{% set ns.a = [ns.a, ns.a] %}{% endfor %}{{ ns.a }}", b"too large"),
    ("{{ 'x' * 99999999999 }}", b"too large"),
    ("{{ ('a' * 50000000) | replace('a', 'bb') }}", b"too large"),
    ("{% for i in range(1000000) %}{% for j in range(1000000) %}{{ i }}{% endfor %}{% endfor %}", b"too much work"),
]


@pytest.mark.parametrize("index", range(len(HOSTILE)))
def test_hostile_templates_fail_cleanly(tmp_path, index):
    source, message = HOSTILE[index]
    (tmp_path / "t.jinja").write_text(source)
    out = subprocess.run([EMBER, "template", "--template-file", str(tmp_path / "t.jinja")],
                         capture_output=True, timeout=60)
    assert out.returncode == 1 and message in out.stderr, out.stderr.decode()
