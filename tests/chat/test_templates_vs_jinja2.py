"""ember's Jinja interpreter against Python's jinja2, configured as transformers configures it
for chat templates (trim_blocks, lstrip_blocks, loop controls, its tojson, raise_exception,
strftime_now, dict and namespace): the real templates of 37 model families over message lists
of every kind a server sees, a table of single constructs, feature templates, SmolLM2's own
template and every built-in fallback. Outputs must be equal byte for byte; a template that
refuses its input must refuse it in both (an exception in jinja2, a failed `ember template`)."""
import copy
import json
import os
import pathlib
import subprocess
from datetime import datetime

import jinja2
import pytest
from jinja2.ext import Extension, loopcontrols
from jinja2.sandbox import ImmutableSandboxedEnvironment

EMBER = os.environ.get("EMBER_BIN", "build/release/bin/ember")
MODEL_CACHE = pathlib.Path(os.environ.get("EMBER_MODEL_CACHE", pathlib.Path.home() / ".cache/ember/models"))
TESTDATA = pathlib.Path(os.environ.get("EMBER_TESTDATA", pathlib.Path(__file__).parents[3] / "shared" / "testdata"))
TEMPLATES = TESTDATA / "templates"


# ---- the reference: jinja2 as transformers' _compile_jinja_template sets it up ----

class _Generation(Extension):
    """transformers' AssistantTracker without the tracking: {% generation %} renders its body."""
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_render"), [], [], body).set_lineno(lineno)

    def _render(self, caller):
        return caller()


class _TemplateDict:
    def __call__(self, *args, **kwargs):
        return dict(*args, **kwargs)

    def fromkeys(self, *args, **kwargs):
        return dict.fromkeys(*args, **kwargs)


class _TemplateNamespace(jinja2.utils.Namespace):
    def __init__(*args, **kwargs):
        self, args = args[0], args[1:]
        attrs = dict(*args, **kwargs)
        for name in attrs:
            _TemplateNamespace._check_name(name)
        jinja2.utils.Namespace.__init__(self, attrs)

    def __setitem__(self, name, value):
        _TemplateNamespace._check_name(name)
        jinja2.utils.Namespace.__setitem__(self, name, value)

    @staticmethod
    def _check_name(name):
        if isinstance(name, str) and name.startswith("_"):
            raise jinja2.exceptions.SecurityError(f"underscore-prefixed namespace attribute {name!r}")


def reference_env():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return datetime.now().strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[_Generation, loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    env.globals["dict"] = _TemplateDict()
    env.globals["namespace"] = _TemplateNamespace
    return env


REFUSED = "<refused>"


def jinja2_render(source, context):
    return reference_env().from_string(source).render(**context)


def jinja2_result(source, context):
    """What jinja2 renders, as UTF-8 bytes, or REFUSED when the template (or its input) fails."""
    try:
        return jinja2_render(source, copy.deepcopy(context)).encode("utf-8")
    except Exception:  # TemplateError, UndefinedError, TypeError, ... all refuse the request
        return REFUSED


def write_case(tmp_path, source, context):
    (tmp_path / "t.jinja").write_bytes(source.encode("utf-8") if isinstance(source, str) else source)
    (tmp_path / "c.json").write_text(json.dumps(context))


def ember_result(tmp_path, source, context):
    write_case(tmp_path, source, context)
    out = subprocess.run([EMBER, "template", "--template-file", str(tmp_path / "t.jinja"),
                          "--context", str(tmp_path / "c.json")], capture_output=True, timeout=60)
    if out.returncode == 1 and out.stderr:
        return REFUSED
    assert out.returncode == 0, out.stderr.decode(errors="replace")
    return out.stdout


def ember_render(tmp_path, source, context):
    write_case(tmp_path, source, context)
    out = subprocess.run([EMBER, "template", "--template-file", str(tmp_path / "t.jinja"),
                          "--context", str(tmp_path / "c.json")], capture_output=True)
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout.decode()


def test_reference_matches_transformers():
    """The mirror above is transformers' own environment (when transformers is installed)."""
    utils = pytest.importorskip("transformers.utils.chat_template_utils")
    source = ("{% set ns = namespace(n=1) %}{{ dict(a=1) | tojson }}{{ ns.n }}{% generation %}g{% endgeneration %}"
              "{% for x in [1, 2] %}{% if x == 2 %}{% break %}{% endif %}{{ x }}{% endfor %}\n  {% if true %}\nx\n{% endif %}")
    assert utils._compile_jinja_template(source).render() == jinja2_render(source, {})


# ---- real templates × message lists ----

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Get the current weather in a city.",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "description": "The city, e.g. Paris"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "Temperature unit"}},
        "required": ["city"]}}}
SEARCH = {"type": "function", "function": {
    "name": "search", "description": "Search the web.",
    "parameters": {"type": "object", "properties": {
        "query": {"type": "string", "description": "What to look for"},
        "max_results": {"type": "integer", "description": "How many results", "default": 5}},
        "required": ["query"]}}}
# Nested schemas: arrays of objects (a property named "items"), objects in objects, unions.
BOOK_TRIP = {"type": "function", "function": {
    "name": "book_trip", "description": "Book a trip with several legs.",
    "parameters": {"type": "object", "properties": {
        "legs": {"type": "array", "description": "The legs of the trip", "items": {
            "type": "object", "properties": {
                "from": {"type": "string"}, "to": {"type": "string"},
                "date": {"type": "string", "format": "date", "description": "Day of travel"}},
            "required": ["from", "to"]}},
        "traveller": {"type": "object", "description": "Who travels", "properties": {
            "name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}}, "required": ["name"]},
        "tags": {"type": "array", "items": {"type": "string"}, "description": "Free-form tags"},
        "class": {"type": "string", "enum": ["economy", "business", "first"], "default": "economy"},
        "notes": {"type": ["string", "null"], "description": "Anything else"}},
        "required": ["legs", "traveller"]}}}
# Parameters named like dict methods: `properties.items()` must still be the method.
CART = {"type": "function", "function": {
    "name": "add_to_cart", "description": "Add products to the cart.",
    "parameters": {"type": "object", "properties": {
        "items": {"type": "array", "description": "Products", "items": {
            "type": "object", "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}}}},
        "keys": {"type": "array", "items": {"type": "string"}, "description": "Coupon keys"},
        "get": {"type": "boolean", "description": "Pick up in store"}},
        "required": ["items"]}}}
# Numbers in schemas: float defaults and bounds that Python prints as 100.0 or 1e-05.
THERMOSTAT = {"type": "function", "function": {
    "name": "set_temperature", "description": "Set the thermostat.",
    "parameters": {"type": "object", "properties": {
        "target": {"type": "number", "description": "Degrees", "minimum": 0.5, "maximum": 1500.0, "default": 100.0},
        "tolerance": {"type": "number", "default": 1e-05, "description": "Allowed error"},
        "ramp": {"type": "number", "default": 0.25},
        "limit": {"type": "number", "default": 1e16},
        "steps": {"type": "integer", "default": 3}},
        "required": ["target"]}}}

TOOLS = [WEATHER, SEARCH]
CALL_ID = "call0abc1"  # Mistral's templates want nine alphanumerics
CALL_ID2 = "call0abc2"


def tool_call(name, arguments, call_id=CALL_ID):
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def tool_round(arguments):
    return [
        {"role": "system", "content": "You are a helpful assistant with tools."},
        {"role": "user", "content": "What's the weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [tool_call("get_weather", arguments)]},
        {"role": "tool", "tool_call_id": CALL_ID, "name": "get_weather", "content": '{"temperature": 21.5, "sky": "clear"}'},
        {"role": "assistant", "content": "It is 21.5 °C and clear in Paris."},
        {"role": "user", "content": "Thanks! And in Rome?"},
    ]


REASONING = [
    {"role": "user", "content": "What is 17 * 23?"},
    {"role": "assistant", "content": "17 × 23 = 391.", "reasoning_content": "17 * 20 = 340, 17 * 3 = 51, sum 391.",
     "thinking": "17 * 20 = 340, 17 * 3 = 51, sum 391."},
    {"role": "user", "content": "And 18 * 23?"},
]

# (name, context without bos/eos): each is rendered with every real template.
CASES = [
    ("plain", {"messages": [{"role": "user", "content": "Hello!"}], "add_generation_prompt": True}),
    ("plain_no_prompt", {"messages": [{"role": "user", "content": "Hello!"},
                                      {"role": "assistant", "content": "Hi! How can I help?"}],
                         "add_generation_prompt": False}),
    ("system", {"messages": [{"role": "system", "content": "You are terse."},
                             {"role": "user", "content": "What is the capital of France?"}],
                "add_generation_prompt": True}),
    ("multi_turn", {"messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"},
        {"role": "user", "content": "  and 3+3?  "}, {"role": "assistant", "content": "6\n"},
        {"role": "user", "content": "Line one\nLine two\n\n"}], "add_generation_prompt": True}),
    ("tools", {"messages": [{"role": "user", "content": "What's the weather in Paris?"}],
               "tools": TOOLS, "add_generation_prompt": True}),
    ("tools_system", {"messages": [{"role": "system", "content": "Use tools when useful."},
                                   {"role": "user", "content": "Find news about llamas."}],
                      "tools": TOOLS, "add_generation_prompt": True}),
    ("tool_call_dict", {"messages": tool_round({"city": "Paris", "unit": "celsius"}), "tools": TOOLS,
                        "add_generation_prompt": True}),
    ("tool_call_string", {"messages": tool_round('{"city": "Paris", "unit": "celsius"}'), "tools": TOOLS,
                          "add_generation_prompt": True}),
    ("tool_results", {"messages": [
        {"role": "user", "content": "Weather in Paris and news about it?"},
        {"role": "assistant", "content": None, "tool_calls": [
            tool_call("get_weather", {"city": "Paris"}), tool_call("search", {"query": "Paris news", "max_results": 3}, CALL_ID2)]},
        {"role": "tool", "tool_call_id": CALL_ID, "name": "get_weather", "content": "sunny, 24 degrees"},
        {"role": "tool", "tool_call_id": CALL_ID2, "name": "search", "content": "[\"Seine festival\", \"Metro strike\"]"}],
        "tools": TOOLS, "add_generation_prompt": True}),
    ("reasoning_on", {"messages": REASONING, "enable_thinking": True, "thinking": True, "reasoning_effort": "high",
                      "add_generation_prompt": True}),
    ("reasoning_off", {"messages": REASONING, "enable_thinking": False, "thinking": False, "reasoning_effort": "low",
                       "add_generation_prompt": True}),
    ("unicode", {"messages": [
        {"role": "system", "content": "Ünïcödé ✓ 🦙 — répondez en français."},
        {"role": "user", "content": "\u3000日本語の質問です\u00a0 "},
        {"role": "assistant", "content": "Ελληνικά ΣΊΣΥΦΟΣ straße İstanbul\u2003"},
        {"role": "user", "content": "quotes ' \" and \\ backslash <tag> & {{ braces }}"}], "add_generation_prompt": True}),
    ("content_parts", {"messages": [
        {"role": "system", "content": [{"type": "text", "text": "You describe things."}]},
        {"role": "user", "content": [{"type": "text", "text": "Describe"}, {"type": "image"},
                                     {"type": "text", "text": " this."}]}], "add_generation_prompt": True}),
    ("nested_schemas", {"messages": [{"role": "user", "content": "Book Paris to Rome then Rome to Oslo for Ada."}],
                        "tools": [BOOK_TRIP, WEATHER], "add_generation_prompt": True}),
    ("method_names", {"messages": [
        {"role": "user", "content": "Put two A1 in my cart."},
        {"role": "assistant", "content": "", "tool_calls": [tool_call("add_to_cart", {"items": [{"sku": "A1", "qty": 2}], "keys": ["X"], "get": False})]},
        {"role": "tool", "tool_call_id": CALL_ID, "name": "add_to_cart", "content": "done"}],
        "tools": [CART], "add_generation_prompt": True}),
    ("float_values", {"messages": [
        {"role": "user", "content": "Set it to 21.5 degrees."},
        {"role": "assistant", "content": "", "tool_calls": [tool_call("set_temperature", {"target": 21.5, "tolerance": 0.001, "ramp": 100.0})]},
        {"role": "tool", "tool_call_id": CALL_ID, "name": "set_temperature", "content": "ok"}],
        "tools": [THERMOSTAT], "add_generation_prompt": True}),
    ("documents_kwargs", {"messages": [{"role": "user", "content": "Summarise the documents."}],
                          "documents": [{"title": "Llamas", "text": "Llamas are camelids."},
                                        {"title": "Alpacas", "text": "Alpacas are smaller."}],
                          "functions": "[]", "datetime": "2024-07-01", "date_string": "01 Jul 2024",
                          "add_generation_prompt": True}),
]

TEMPLATE_FILES = sorted(TEMPLATES.glob("*.jinja"))


def real_template_pairs():
    return [(path.name, name) for path in TEMPLATE_FILES for name, _ in CASES]


def test_all_templates_are_here():
    assert len(TEMPLATE_FILES) == 37, f"expected 37 templates in {TEMPLATES}"


@pytest.mark.parametrize("template,case", real_template_pairs())
def test_real_templates(tmp_path, template, case):
    source = (TEMPLATES / template).read_text()
    context = {"bos_token": "<s>", "eos_token": "</s>", **dict(CASES)[case]}
    assert ember_result(tmp_path, source, context) == jinja2_result(source, context)


# ---- single constructs ----

SCHEMA = {"type": "object", "properties": {
    "names": {"type": "array", "items": {"type": "string"}},
    "limit": {"type": "number", "default": 1500.0}}}

CONSTRUCTS = [
    # 1. floats print as Python prints them
    ("{{ 100.0 }} {{ 1500.0 }} {{ x | tojson }} {{ 1e-4 }} {{ 1e-5 }} {{ 1e15 }} {{ 1e16 }} {{ 123456789.125 }}", {"x": 1500.0}),
    ("{{ [0.5, 2.0, -0.0, 1e100] }} {{ {'a': 3.0} }} {{ 0.1 + 0.2 }} {{ 2.0 ** 70 }} {{ 1 / 3 }} {{ 10 / 2 }}", {}),
    ("{{ v | tojson }} {{ v }}", {"v": [1e-7, 1e16, 12345678901234567.0, 0.0001, 1.5, 100.0, 3]}),
    # 2. dict methods win over keys of the same name; the keys stay reachable by subscript
    ("{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %}{{ d['items'] }} {{ d.keys() | list }} {{ d.values() | list | length }} {{ d.get('get') }}",
     {"d": {"items": {"type": "string"}, "keys": 1, "values": 2, "get": 3}}),
    ("{{ spec.items is mapping }} {{ spec['items'] is mapping }} {{ spec.type }} {{ spec.keys is defined }}", {"spec": SCHEMA["properties"]["names"]}),
    ("{% for name, p in schema.properties.items() %}{{ name }}:{{ p.items is mapping }}/{{ p['items'] is defined }};{% endfor %}", {"schema": SCHEMA}),
    # 3. undefined is iterable
    ("{{ missing is iterable }} {{ none is iterable }} {{ 3 is iterable }} {{ 'x' is iterable }} {{ missing is sequence }}", {}),
    # 4. Unicode whitespace
    ("[{{ s | trim }}] [{{ s.strip() }}] {{ s.split() }} [{{ s.lstrip() }}] [{{ s.rstrip() }}]", {"s": "\u3000\u00a0 a\u2003b\u00a0\n"}),
    ("[{{ '\u2028x\u2029' | trim }}] {{ 'a\u0085b\u200bc'.split() }}", {}),
    # 5. filter blocks
    ("{% filter upper %}hello {{ name }}{% endfilter %}|{% filter trim | title %}  a b  {% endfilter %}|{% filter indent(2, true) %}x\ny{% endfilter %}", {"name": "ember"}),
    # 6. markup safety
    ("{{ '<b>' | safe + '<i>' }} {{ '<i>' + '<b>' | safe }} {{ ('<' | safe) ~ '<' }} {{ '<a>' | escape }} {{ ('<a>' | e) + '&' }} {{ '<' + '>' }}", {}),
    ("{{ \"Use '\" | safe + name + \"' now\" | safe + t | tojson }}", {"name": "get_<weather>", "t": {"a": "<&>"}}),
    ("{{ ('<x>' | safe).upper() + '&' }} {{ ('a<' | safe) * 2 + '>' }} {{ ('<' | safe) | string + '<' }} {{ '<' | forceescape }} {{ ('<' | safe) | trim + '&' }}", {}),
    # 7. tojson options
    ("{{ d | tojson(ensure_ascii=True) }}|{{ d | tojson(indent=2) }}|{{ d | tojson(separators=(',', ':')) }}|{{ d | tojson(sort_keys=True) }}|{{ d | tojson(indent='\t') }}",
     {"d": {"z": "日本 🦙 é", "a": [1, 2.5, None, True], "m": {}}}),
    ("{{ [] | tojson(indent=2) }} {{ {} | tojson(indent=0) }} {{ 'x\u2028\x7f\x1f' | tojson }} {{ (1, 2) | tojson }} {{ x | tojson(indent=1, separators=(',', '=')) }}", {"x": {"a": [1]}}),
    # 8. filters jinja2 has
    ("{{ [3, 1, 2] | min }} {{ [3, 1, 2] | max }} {{ ['b', 'A', 'c'] | min }} {{ ['b', 'A', 'c'] | max(case_sensitive=true) }} {{ [1, 2.5] | sum }} {{ l | sum(attribute='n') }} {{ l | max(attribute='n') }} {{ [1] | sum(start=10) }}",
     {"l": [{"n": 1}, {"n": 4}]}),
    ("{{ d | attr('x') }}|{{ '%s-%d' | format('a', 3) }}|{{ '%.2f %5s|%-4d|%x %%' | format(3.14159, 'ab', 7, 255) }}|{{ '%(a)s' | format(a=1) }}", {"d": {"x": 1}}),
    ("{{ 'Hello world, this is long' | truncate(12) }}|{{ 'Hello world' | truncate(9, true) }}|{{ 'abc' | truncate(5) }}|{{ 'foo bar baz qux' | truncate(11, false, '…', 0) }}", {}),
    ("{% for row in [1, 2, 3, 4, 5] | batch(2, 'x') %}{{ row }}{% endfor %} {{ 'a b  c\td' | wordcount }} {{ [1, 2, 2] | count }} {{ 'ab' | center(6) }}|{{ 'abc' | center(6) }}|{{ 'a' | center(1) }}", {}),
    ("{{ '<p>Hello  <b>world</b></p>\n<br/>x &amp; y' | striptags }}|{{ 'a b&c/é' | urlencode }}|{{ {'a': 'x y', 'b': 1} | urlencode }}|{{ '<&>' | forceescape }}", {}),
    ("{% for g in people | groupby('city') %}{{ g.grouper }}:{{ g.list | map(attribute='name') | join(',') }};{% endfor %} {{ [1, 2, 3, 4, 5] | slice(2) | list }}",
     {"people": [{"name": "a", "city": "Oslo"}, {"name": "b", "city": "Bern"}, {"name": "c", "city": "Oslo"}]}),
    ("{{ 1000 | filesizeformat }} {{ 1536 | filesizeformat(true) }} {{ 'x' | list }} {{ {'a': 1} | list }} {{ d | dictsort(false, 'value') }} {{ d | dictsort(reverse=true) }}", {"d": {"b": 1, "a": 2}}),
    # 9. None is not an empty value; undefined is
    ("{{ 'x' in none }}", {}),
    ("{{ none[0] }}|{{ none.x }}|{{ none | string }}|{{ none | tojson }}", {}),
    ("{% for x in none %}{{ x }}{% endfor %}", {}),
    ("{{ none | length }}", {}),
    ("{{ missing | length }} {{ missing | items | list }} {{ missing | list }} {{ missing | join(',') }}|{{ missing | string }}|{{ missing ~ 'x' }}|{{ missing is defined }}", {}),
    ("{{ missing.attr }}", {}),
    ("{{ missing['key'] }}", {}),
    ("{{ d.a.b }}", {"d": {}}),
    ("{{ d.a is defined }} {{ d.a | default('z') }} {{ messages[5] is defined }} {{ messages[5] | default('none') }}", {"d": {}, "messages": []}),
    ("{{ missing + 1 }}", {}),
    ("{{ missing | tojson }}", {}),
    ("{{ missing() }}", {}),
    ("{{ missing == none }} {{ missing != 1 }} {{ not missing }} {{ missing or 'y' }} {{ 'a' in missing }}", {}),
    ("{{ [none] | sort }}", {}),
    # strings are sequences of characters, not bytes
    ("{{ s[0] }} {{ s[-1] }} {{ s[1:3] }} {{ s[::-1] }} {{ s | length }} {{ s | first }} {{ s | last }} {{ s | list }} {{ s.find('語') }} {{ s | reverse }}", {"s": "日本語é"}),
    # Unicode case mapping
    ("{{ s | lower }} {{ s | upper }} {{ s | capitalize }} {{ s | title }} {{ s.lower() }} {{ s.upper() }} {{ s.title() }} {{ s.capitalize() }}",
     {"s": "éCOLE ΣΊΣΥΦΟΣ straße ǆemal İi ﬁne"}),
    ("{{ 'hello world-wide (big) o\\'neil x_y' | title }}|{{ \"o'neil mc-d 3rd\".title() }}|{{ 'ÀB' is upper }} {{ 'àb' is lower }} {{ 'ǅ'.upper() }} {{ 'ß'.lower() }}", {}),
    # string literal escapes
    ("{{ '\\u00e9\\x41\\101\\0' | length }} {{ '\\u00e9\\x41\\101' }} {{ '\\q\\é' }} {{ '\\t|\\a|\\v' | length }} {{ '\\U0001F999' }} {{ \"\\'\" }}", {}),
    # sort and unique ignore case unless told
    ("{{ ['b', 'A', 'a', 'C'] | sort }} {{ ['b', 'A', 'a', 'C'] | sort(case_sensitive=true) }} {{ ['a', 'A', 'b'] | unique | list }} {{ ['a', 'A'] | unique(true) | list }} {{ l | sort(attribute='k') | map(attribute='k') | list }} {{ l | unique(attribute='k') | list | length }}",
     {"l": [{"k": "b"}, {"k": "A"}, {"k": "a"}]}),
    ("{{ [[1, 'b'], [1, 'a']] | sort }} {{ [2, 1.5, true] | sort }} {{ ['b', 'a'] | sort(true) }} {{ {'b': 1, 'A': 2} | dictsort }}", {}),
    # round
    ("{{ 2.5 | round }} {{ 3.5 | round }} {{ 2.675 | round(2) }} {{ 0.125 | round(2) }} {{ 7 | round }} {{ 2.1 | round(0, 'ceil') }} {{ 2.9 | round(0, 'floor') }} {{ 1234.5 | round(-2) }} {{ -0.5 | round }} {{ 1.05 | round(1, 'floor') }}", {}),
    ("{{ 2.5 | round(method='bogus') }}", {}),
    # int and float
    ("{{ '0x1A' | int(0, 16) }} {{ '1A' | int(base=16) }} {{ '0b101' | int(0, 0) }} {{ '3.7' | int }} {{ ' 42 ' | int }} {{ '1_000' | int }} {{ 'abc' | int(-1) }} {{ '1e3' | int }} {{ true | int }} {{ none | int }} {{ 'nan' | int }}", {}),
    ("{{ '1.5x' | float }} {{ ' 2.5 ' | float }} {{ 'inf' | float }} {{ '1_0.5' | float }} {{ '0x10' | float(-1.0) }} {{ 'nan' | float }} {{ '-Infinity' | float }} {{ true | float }}", {}),
    # indent
    ("{{ 'a\nb\n\nc' | indent('> ') }}|{{ 'a\nb' | indent('--', true) }}|{{ '\nx' | indent(2, true) }}|{{ 'a\r\nb\rc\n' | indent(1) }}|{{ 'a\n\nb' | indent(2, blank=true) }}", {}),
    # tuples
    ("{{ (1, 2) }} {{ (1,) }} {{ () }} {{ ('a', [1, (2, 3)]) }} {{ d.items() | list }} {{ d | dictsort }} {{ (1, 2) == [1, 2] }} {{ (1, 2) == (1, 2) }} {{ [(1, 'x')] }}", {"d": {"a": 1}}),
    # tests
    ("{{ true is number }} {{ true is integer }} {{ 1.0 is integer }} {{ 1 is float }} {{ true is boolean }} {{ 1 is boolean }} {{ 'a' is sequence }} {{ {} is sequence }} {{ none is none }} {{ 3 is callable }} {{ range is callable }}", {}),
    ("{{ 'upper' is filter }} {{ 'nope' is filter }} {{ 'odd' is test }} {{ 'nope' is test }} {{ ('<' | safe) is escaped }} {{ '<' is escaped }} {{ 1 is eq 1 }} {{ 2 is gt 1 }} {{ 2 is ge 3 }} {{ 1 is ne 1 }} {{ 'a' is in 'abc' }} {{ none is sameas none }} {{ true is sameas 1 }}", {}),
    # loop variables, recursive loops, call blocks, raw, macros
    ("{% for x in [1, 1, 2, 3, 3] %}{{ loop.changed(x) }}{% endfor %} {% for x in [1, 2] %}{{ loop.depth }}{{ loop.depth0 }}{% endfor %}", {}),
    ("{% for n in tree recursive %}({{ n.name }}@{{ loop.depth }}{% if n.kids %}{{ loop(n.kids) }}{% endif %}){% endfor %}",
     {"tree": [{"name": "a", "kids": [{"name": "b", "kids": [{"name": "c"}]}, {"name": "d"}]}, {"name": "e"}]}),
    ("{% macro box(t) %}[{{ t }}:{{ caller() }}]{% endmacro %}{% call box('x') %}inner {{ 1 + 1 }}{% endcall %} {% macro each(xs) %}{% for x in xs %}{{ caller(x) }}{% endfor %}{% endmacro %}{% call(v) each([1, 2]) %}<{{ v }}>{% endcall %}", {}),
    ("{% raw %}{{ not rendered }}{% if %}{% endraw %}|{%- raw -%}  x  {%- endraw -%}|", {}),
    ("{% macro m(a) %}{{ a }}|{{ varargs }}|{{ kwargs }}{% endmacro %}{{ m(1, 2, 3, k='v') }} {% macro n(a, b=2) %}{{ a }}{{ b }}{% endmacro %}{{ n(1) }}{{ n(b=3, a=4) }}", {}),
    ("{% macro n(a) %}{{ a }}{% endmacro %}{{ n(1, 2) }}", {}),
    ("{% macro n(a) %}{{ a }}{% endmacro %}{{ n(1, z=2) }}", {}),
    ("{% macro n(a, b) %}{{ a }}-{{ b }}-{{ b is defined }}{% endmacro %}{{ n(1) }}", {}),
    # template text: one trailing newline goes, CRLF reads as \n
    ("line\n", {}),
    ("a\n\n", {}),
    (b"one\r\ntwo\r\n{% if true %}\r\nthree\r\n{% endif %}\r\n{{ 'x\r\ny' | length }}\rend\r\n", {}),
    # globals
    ("{% set c = cycler('odd', 'even') %}{% for i in range(3) %}{{ c.next() }} {% endfor %}{{ c.current }} {% set _ = c.reset() %}{{ c.next() }}", {}),
    ("{% set j = joiner(' | ') %}{% for x in ['a', 'b', 'c'] %}{{ j() }}{{ x }}{% endfor %} {% set j2 = joiner() %}{{ j2() }}{{ j2() }}", {}),
    ("{{ dict(a=1, b=2) }} {{ dict([('x', 1)]) }} {{ dict({'y': 2}, z=3) }} {{ range(3) | list }} {{ range(10, 0, -3) | list }}", {}),
    # with blocks, set blocks with filters, namespaces
    ("{% with a = 1, b = 2 %}{{ a + b }}{% endwith %}{{ a is defined }} {% set x | upper %}text{% endset %}{{ x }}", {}),
    ("{% set ns = namespace(a=1) %}{% set ns.b = 2 %}{{ ns.a }}{{ ns.b }} {{ ns.items is defined }}", {}),
    # a variable set in a loop stays in that loop
    ("{% set x = 'outer' %}{% for i in range(2) %}{{ x }}{% set x = i %}{{ x }}{% endfor %} {{ x }}", {}),
    # dict literals, membership, string methods Python has
    ("{{ {'a': 1, 'b': 2} }} {{ 'b' in {'b': 1} }} {{ 1 in {'1': 2} }} {{ 'a,b,,c'.split(',') }} {{ 'a b'.split(' ', 1) }} {{ '  x '.rstrip() }}| {{ 'abc'.startswith(('x', 'a')) }} {{ 'a-b'.rsplit('-', 1) }}", {}),
    ("{{ 'x'.center(5, '*') }} {{ 'x'.ljust(3, '.') }}|{{ 'x'.rjust(3) }} {{ '-7'.zfill(4) }} {{ 'a b'.partition(' ') }} {{ 'a b c'.rpartition(' ') }} {{ 'Ab1'.isalnum() }} {{ 'AB'.isupper() }} {{ 'Ab'.islower() }} {{ ' \u3000'.isspace() }} {{ 'abcb'.rfind('b') }} {{ 'abc'.index('c') }} {{ 'l1\nl2\r\n'.splitlines() }} {{ 'l1\n'.splitlines(true) }} {{ 'a日b日'.count('日') }} {{ 'ab'.count('') }} {{ 'xay'.removeprefix('x') }}", {}),
    # operators
    ("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % -3 }} {{ 7.5 // 2 }} {{ 2 ** -1 }} {{ 'a' * 3 }} {{ 3 * 'a' }} {{ [1] * 2 }} {{ 1 + true }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ -(3) }} {{ +3 }} {{ 10 / 4 }}", {}),
    ("{{ 'a' + 1 }}", {}),
    ("{{ 1 < 'a' }}", {}),
    ("{{ '%s and %s' % ('a', 'b') }} {{ '%d%%' % 50 }} {{ '%05.1f' % 3.14159 }} {{ '%r' % 'x' }}", {}),
    # list methods the sandbox allows, and the ones it does not
    ("{{ [1, 2, 1].count(1) }} {{ [1, 2].index(2) }} {{ l.append is defined }}", {"l": [1]}),
    ("{% set l = [1] %}{{ l.append(2) }}", {}),
]


@pytest.mark.parametrize("index", range(len(CONSTRUCTS)))
def test_single_constructs(tmp_path, index):
    source, context = CONSTRUCTS[index]
    text = source.decode() if isinstance(source, bytes) else source
    assert ember_result(tmp_path, source, context) == jinja2_result(text, context)


# ---- feature templates and built-in fallbacks ----

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
