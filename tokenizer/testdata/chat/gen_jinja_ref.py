# Generates jinja_ref.jsonl: small chat-template cases rendered by Python's
# Jinja2 set up exactly as transformers' apply_chat_template sets it up
# (ImmutableSandboxedEnvironment, trim_blocks, lstrip_blocks, loopcontrols,
# {% generation %}, its tojson, raise_exception and strftime_now; tools and
# documents passed as None when absent). tokenizer/chat_test.go compares
# moco's renders with these. Run: python3 gen_jinja_ref.py (needs jinja2>=3.1).
import json, os, sys
# Render a chat template as transformers does (independent reference for moco tests).
from datetime import datetime
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.exceptions import TemplateError
from jinja2.ext import loopcontrols

from jinja2.ext import Extension
from jinja2 import nodes
class Generation(Extension):
    tags = {"generation"}
    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return nodes.CallBlock(self.call_method("_render", []), [], [], body).set_lineno(lineno)
    def _render(self, caller):
        return caller()

def raise_exception(msg):
    raise TemplateError(msg)
def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
    return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

def render(src, messages, kwargs, now=None):
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[loopcontrols, Generation])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda f: (now or datetime.now()).strftime(f)
    kwargs = dict(kwargs)
    kwargs.setdefault("tools", None)
    kwargs.setdefault("documents", None)
    return env.from_string(src).render(messages=messages, **kwargs)



NOW = datetime(2026, 7, 26, 9, 5, 3)
M1 = [{"role": "system", "content": "  Be brief.\n"}, {"role": "user", "content": "Hi"}, {"role": "assistant", "content": "<think>\nhmm\n</think>\n\nHello!"}, {"role": "user", "content": "Bye"}]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather «now»", "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer", "default": 3}}, "required": ["city"]}}}]
MTOOL = [{"role": "user", "content": "Weather?"}, {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris", "days": 2}}}]}, {"role": "tool", "content": "{\"t\": 21}"}, {"role": "tool", "content": "sunny"}]
MM = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": " What is this? "}]}]

cases = []
def add(name, tpl, messages=M1, **kw):
    cases.append({"name": name, "template": tpl, "messages": messages, "kwargs": kw})

SPECIAL_TOKENS = ["bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token", "additional_special_tokens"]
def special_tokens_map(config):
    # What apply_chat_template passes for the special tokens of
    # tokenizer_config.json: transformers' special_tokens_map, the tokens as
    # strings (an AddedToken as its content), leaving out those that are
    # falsy (None, "", an empty list).
    out = {}
    for k in SPECIAL_TOKENS:
        v = config.get(k)
        if isinstance(v, list):
            v = [t["content"] if isinstance(t, dict) else t for t in v]
        elif isinstance(v, dict):
            v = v["content"]
        if v:
            out[k] = v
    # transformers >= 4.48 (and 5) adds the keys of a mapping
    # extra_special_tokens to its special tokens (_set_model_specific_special_tokens),
    # so special_tokens_map passes them too; the list form names none.
    extra = config.get("extra_special_tokens")
    if isinstance(extra, dict):
        for k, v in extra.items():
            v = v["content"] if isinstance(v, dict) else v
            if v:
                out[k] = v
    return out

def add_config(name, tpl, config, messages=M1):
    # A case whose tokenizer_config.json has these special tokens instead of
    # bos_token <s> and eos_token </s>.
    cases.append({"name": name, "template": tpl, "messages": messages, "kwargs": {}, "config": config})

LLAMA31 = r'''{{- bos_token }}
{%- if custom_tools is defined %}
    {%- set tools = custom_tools %}
{%- endif %}
{%- if not date_string is defined %}
    {%- set date_string = strftime_now("%d %b %Y") %}
{%- endif %}
{%- if not tools is defined %}
    {%- set tools = none %}
{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{%- if tools is not none %}
    {%- for t in tools %}
        {{- t | tojson(indent=4) }}
        {{- "\n\n" }}
    {%- endfor %}
{%- endif %}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {%- if not (message.role == 'ipython' or message.role == 'tool' or 'tool_calls' in message) %}
        {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
    {%- elif 'tool_calls' in message %}
        {%- if not message.tool_calls|length == 1 %}
            {{- raise_exception("one tool call only") }}
        {%- endif %}
        {%- set tool_call = message.tool_calls[0].function %}
        {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' -}}
        {{- '{"name": "' + tool_call.name + '", ' }}
        {{- '"parameters": ' }}
        {{- tool_call.arguments | tojson }}
        {{- "}" }}
        {{- "<|eot_id|>" }}
    {%- elif message.role == "tool" or message.role == "ipython" %}
        {{- "<|start_header_id|>ipython<|end_header_id|>\n\n" }}
        {%- if message.content is mapping or message.content is iterable %}
            {{- message.content | tojson }}
        {%- else %}
            {{- message.content }}
        {%- endif %}
        {{- "<|eot_id|>" }}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
'''
add("llama31_plain", LLAMA31)
add("llama31_tools", LLAMA31, MTOOL, tools=TOOLS)
add("llama31_date", LLAMA31, date_string="01 Jan 2025")

MISTRAL = r'''{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content'] %}
    {%- set loop_messages = messages[1:] %}
{%- else %}
    {%- set loop_messages = messages %}
{%- endif %}

{{- bos_token }}
{%- for message in loop_messages %}
    {%- if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{- raise_exception('After the optional system message, conversation roles must alternate user/assistant/user/assistant/...') }}
    {%- endif %}
    {%- if message['role'] == 'user' %}
        {%- if loop.first and system_message is defined %}
            {{- ' [INST] ' + system_message + '\n\n' + message['content'] + ' [/INST]' }}
        {%- else %}
            {{- ' [INST] ' + message['content'] + ' [/INST]' }}
        {%- endif %}
    {%- elif message['role'] == 'assistant' %}
        {{- ' ' + message['content'] + eos_token}}
    {%- else %}
        {{- raise_exception('Only user and assistant roles are supported, with the exception of an initial optional system message!') }}
    {%- endif %}
{%- endfor %}
'''
add("mistral", MISTRAL)
add("mistral_bad", MISTRAL, [{"role": "assistant", "content": "x"}])

DEEPSEEK = r'''{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}{% set ns = namespace(is_first=false, is_tool=false, system_prompt='') %}{%- for message in messages %}{%- if message['role'] == 'system' %}{% set ns.system_prompt = message['content'] %}{%- endif %}{%- endfor %}{{bos_token}}{{ns.system_prompt}}{%- for message in messages %}{%- if message['role'] == 'user' %}{%- set ns.is_tool = false -%}{{'<|User|>' + message['content']}}{%- endif %}{%- if message['role'] == 'assistant' and message['content'] is not none %}{% set content = message['content'] %}{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}{{'<|Assistant|>' + content + '<|end▁of▁sentence|>'}}{%- endif %}{%- endfor -%}{% if add_generation_prompt and not ns.is_tool %}{{'<|Assistant|><think>\n'}}{% endif %}'''
add("deepseek", DEEPSEEK)

GEMMA_MM = r'''{{ bos_token }}{%- for message in messages -%}
{{ '<start_of_turn>' + ('model' if message['role'] == 'assistant' else message['role']) + '
' }}
{%- if message['content'] is string -%}{{ message['content'] | trim }}
{%- elif message['content'] is iterable -%}
{%- for item in message['content'] -%}
{%- if item['type'] == 'image' -%}{{ '<start_of_image>' }}{%- elif item['type'] == 'text' -%}{{ item['text'] | trim }}{%- endif -%}
{%- endfor -%}
{%- endif -%}
{{ '<end_of_turn>
' }}
{%- endfor -%}'''
add("gemma_mm", GEMMA_MM, MM)

add("filters", r'''{{ messages|length }}|{{ messages|selectattr('role','equalto','user')|list|length }}|{{ messages|map(attribute='role')|join(',') }}|{{ messages[-1].content }}|{{ (messages|last).role }}|{{ (messages|first).role }}|{{ messages[::-1][0].role }}|{{ 'a' ~ 1 }}|{{ 10 // 3 }}|{{ 10 / 4 }}|{{ 7 % 3 }}|{{ x|default('dflt') }}|{{ 'abc'|upper }}|{{ 'A b'|lower }}|{{ 'hello world'|title }}|{{ 'hello'|capitalize }}|{{ 'a-b'|replace('-', '+') }}''')
add("reverse", r'''{% for m in messages|reverse %}{{ m.role }}{{ ',' if not loop.last }}{% endfor %}''')
add("loopvars", r'''{% for m in messages %}{{ loop.index }}/{{ loop.length }}/{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }} {% endfor %}''')
add("macro", r'''{% macro render(m, sep=': ') %}{{ m.role }}{{ sep }}{{ m.content|trim }}{% endmacro %}{% for m in messages %}[{{ render(m) }}]{% endfor %}''')
add("tests", r'''{% for m in messages %}{{ m.content is string }}{{ m.content is not none }}{{ m.nothing is defined }}{{ m.nothing is undefined }}{{ m.nothing is none }}{% endfor %}''')
add("tests2", r'''{{ 3 is number }}{{ [] is iterable }}{{ {} is mapping }}{{ 'x' is mapping }}{{ 4 is even }}{{ none is none }}{{ true is true }}{{ false is false }}{{ 0 is false }}''')
add("setcond", r'''{% for m in messages %}{% set c = m.content if m.content is string else m.content[0].text %}{{ c|trim }};{% endfor %}''', MM + M1)
add("nestcond_args", r'''{% for m in messages %}{{ m.role.upper() + (' first' if loop.first else (' last' if loop.last else '')) }};{{ [1 if loop.first else 2, 3]|join('') }}{% endfor %}''')
add("dictlit", r'''{% set d = {'b': 1, 'a': [2, 'x'], 'c': {'z': none, 'y': true}} %}{{ d | tojson }}|{{ d | tojson(indent=2) }}|{% for k, v in d.items() %}{{ k }}{% endfor %}|{{ d.keys()|list|join(',') }}''')
add("tojson_misc", r'''{{ tools | tojson }}|{{ tools[0] | tojson(indent=4) }}|{{ 'é"\\\n\t' | tojson }}|{{ [1, 2.5, 1e20, 0.0001, 1e-5] | tojson }}|{{ tools|tojson(sort_keys=true) }}|{{ {'a': 1}|tojson(separators=(',', ':')) }}''', tools=TOOLS)
add("strmethods", r'''{% set s = '  Hello World  \n' %}[{{ s.strip() }}][{{ s.lstrip() }}][{{ s.rstrip() }}][{{ s.strip(' \nH') }}][{{ s.split() }}][{{ 'a,b,,c'.split(',') }}][{{ 'a b c'.split(' ', 1) }}][{{ s.strip().startswith('Hell') }}][{{ s.strip().endswith(('x', 'ld')) }}][{{ 'x'.join(['a','b']) }}][{{ "it's o'k".title() }}][{{ 'abc'.replace('b', '') }}][{{ 'a\nb'.splitlines() }}]''')
add("strmethods2", r'''{{ 'a,b,,c'.split(',')|join('|') }}+{{ 'a b  c'.split()|join('|') }}+{{ 'k=v=w'.split('=', 1)[1] }}+{{ 'k=v=w'.rsplit('=', 1)[0] }}+{{ 'Hello'.lower() }}{{ 'Hello'.upper() }}+{{ 'x' * 3 }}+{{ 'abc'[1:] }}{{ 'abc'[-1] }}{{ 'abc'[::-1] }}+{{ 'abc'.find('c') }}''')
add("whitespace", "A\n  {% if true %}\n  B\n  {%+ if true %}C{% endif %}\n  {#- comment #}\n  D {{- ' E ' -}} F\n{% endif %}\nG\n")
add("undefined", r'''[{{ nothing }}][{{ messages[0].nothing }}][{% if messages[0].nothing %}y{% else %}n{% endif %}][{{ nothing|default('d') }}]''')
add("none_print", r'''[{{ none }}][{{ true }}][{{ 1.0 }}][{{ 3 }}][{{ 1/2 }}]''')
add("in_ops", r'''{{ 'role' in messages[0] }}{{ 'x' in messages[0] }}{{ messages[0].role in ['system', 'user'] }}{{ 'b' not in 'abc' }}{{ 'Be' in messages[0].content }}''')
add("breakcont", r'''{% for m in messages %}{% if loop.index0 == 1 %}{% continue %}{% endif %}{% if loop.index0 == 3 %}{% break %}{% endif %}{{ m.role }} {% endfor %}''')
add("set_messages", r'''{% set messages = messages[1:] %}{% for m in messages %}{{ m.role }},{% endfor %}{{ messages|length }}''')
add("ns_loop", r'''{% set ns = namespace(last=-1, found=false) %}{% for m in messages %}{% if m.role == 'user' %}{% set ns.last = loop.index0 %}{% set ns.found = true %}{% endif %}{% endfor %}{{ ns.last }}{{ ns.found }}''')
add("tool_calls", r'''{%- for message in messages %}{%- if message.tool_calls is defined and message.tool_calls %}{%- for tc in message.tool_calls %}{%- if tc.function is defined %}{%- set tc = tc.function %}{%- endif %}<tool_call>{"name": "{{ tc.name }}", "arguments": {{ tc.arguments | tojson }}}</tool_call>{%- endfor %}{%- elif message.role == 'tool' %}{%- if loop.first or (messages[loop.index0 - 1].role != "tool") %}<user>{%- endif %}<resp>{{ message.content }}</resp>{%- if loop.last or (messages[loop.index0 + 1].role != "tool") %}</user>{%- endif %}{%- else %}{{ message.content }}{%- endif %}{%- endfor %}''', MTOOL)
add("strftime", r'''{{ strftime_now('%Y-%m-%d %H:%M:%S %a %A %b %B %j %y %p %I') }}''')
add("string_escapes", r'''{{ "a\tb\\n" }}|{{ 'it\'s' }}|{{ "\"q\"" }}|{{ '\u00e9' }}''')
add("filter_block", r'''{% filter upper %}abc{{ 'd' }}{% endfilter %}''')
add("is_in_list_content", r'''{% for m in messages %}{% if m.content is not string %}{% for c in m.content %}{{ c.type }}{% if c.text is defined %}={{ c.text|trim }}{% endif %};{% endfor %}{% endif %}{% endfor %}''', MM)
add("join_attr", r'''{{ messages|map(attribute='content')|map('trim')|join(' / ') }}''')
add("items_filter", r'''{% for k, v in tools[0].function.parameters.properties|items %}{{ k }}:{{ v.type }};{% endfor %}|{{ tools[0].function.parameters.properties.days.get('default') }}|{{ tools[0].function.parameters.get('nope', 'dd') }}''', tools=TOOLS)
add("loop_cycle", r'''{% for m in messages %}{{ loop.cycle('a', 'b') }}{% endfor %}''')
add("previtem", r'''{% for m in messages %}{% if loop.previtem is defined %}{{ loop.previtem.role }}>{% endif %}{{ m.role }} {% endfor %}''')
add("selectattr_eq", r'''{{ (messages|selectattr('role', 'equalto', 'system')|first).content|trim }}|{{ messages|rejectattr('role', 'equalto', 'user')|map(attribute='role')|join(',') }}''')
add("generation", r'''{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}{{ m.content }}{% endgeneration %}{% else %}{{ m.content }}{% endif %}|{% endfor %}''')
add("int_filters", r'''{{ '3'|int + 1 }}|{{ 3.7|int }}|{{ 2|float }}|{{ 3|string + 'x' }}|{{ -2|abs }}|{{ [3,1,2]|sort|join }}|{{ [1,2,3]|sum }}|{{ [1,2,3]|max }}''')

# batch 2
MNULL = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q 日本語 😀"}, {"role": "assistant", "content": None, "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{\"x\": 1}"}}]}, {"role": "tool", "content": "ok", "tool_call_id": "c1"}, {"role": "assistant", "content": "Done."}]
NESTED = [{"type": "function", "function": {"name": "g", "parameters": {"type": "object", "properties": {"l": {"type": "array", "items": {"type": "string"}}, "e": {}, "n": [], "f": [1e16, -0.0, 1.5e-7, 123456789012, 0.1, 100.0, 1e22]}}}}]
cases2 = []
add("chatml_null", r'''{%- for message in messages %}
{%- if message.content is none %}<none>{% endif %}
{%- if message.content %}{{ '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' }}{% endif %}
{%- if message.tool_calls is defined and message.tool_calls is not none %}{% for tc in message.tool_calls %}{{ tc.function.name }}({{ tc.function.arguments if tc.function.arguments is string else tc.function.arguments|tojson }}){% endfor %}{% endif %}
{%- set c = message.content or '' %}[{{ c | length }}]{{ message.content | default('', true) }}|{{ message.missing is none }}{{ message.missing is defined }}{{ message.content is defined }}
{% endfor %}''', MNULL)
add("for_if", r'''{% for m in messages if m.role != 'system' %}{{ loop.index }}:{{ m.role }}{{ ', ' if not loop.last }}{% endfor %}''', MNULL)
add("ns_list", r'''{% set x = namespace(items=[], flag=false) %}{% for m in messages %}{% set x.items = x.items + [m.role] %}{% set x.flag = x.flag or (m.role == 'tool') %}{% endfor %}{{ x.items|join('>') }} {{ x.flag }}''', MNULL)
add("tool_names", r'''{{ tools | map(attribute='function') | map(attribute='name') | join(', ') }}|{{ (tools | first).function.parameters | tojson(indent=2) }}|{{ tools|tojson }}''', tools=NESTED)
add("str_slices", r'''{% for m in messages %}{% if m.content is string %}[{{ m.content[:3] }}|{{ m.content[-2:] }}|{{ m.content|length }}|{{ m.content.split('\n')[0] }}]{% endif %}{% endfor %}''', MNULL)
add("comments_ws", "A\n  {# c #}\nB\n  {#- c2 -#}  \nC {# c3 #} D\n{% raw %}  {{ x }} {% if %}\n{% endraw %}\nE")
add("multiline_expr", "{{\n  messages[0]['role']\n  + '|' +\n  messages[1]['role']\n}}\n{%\n  if true\n%}\nX\n{% endif %}")
add("divisible", r'''{% for m in messages %}{% if loop.index0 is divisibleby(2) %}E{% else %}O{% endif %}{{ (loop.index0 / 2) | int }}{% endfor %}''')
add("enable_thinking_f", r'''{{ "true" if enable_thinking else "false" }}|{{ enable_thinking is defined }}|{{ enable_thinking is false }}''', enable_thinking=False)
add("enable_thinking_u", r'''{{ "true" if enable_thinking else "false" }}|{{ enable_thinking is defined }}|{{ enable_thinking is false }}''')
add("strftime2", r'''{{ strftime_now('%-d %B %Y, %H:%M') }}''')
add("json_to_py", r'''{%- macro py_type(spec) %}
{%- set m = {"string": "str", "number": "float", "integer": "int", "boolean": "bool"} %}
{%- if spec.type in m %}{{- m[spec.type] }}
{%- elif spec.type == "array" %}{{- "list[" + py_type(spec['items']) + "]" }}
{%- elif spec.type is defined %}{{- spec.type }}
{%- else %}Any{%- endif %}
{%- endmacro %}
{%- for name, p in tools[0].function.parameters.properties.items() %}{{ name }}: {{ py_type(p) }}
{% endfor %}''', tools=NESTED)
add("tools_none", r'''{{ tools is none }}{{ tools is defined }}{{ documents is none }}{% if tools is not none %}T{% endif %}''')
add("compare", r'''{{ 'a' < 'b' }}{{ messages|length > 1 and messages[1].role == 'user' }}{{ 'system' == messages[0]['role'] }}{{ 2 >= 3 }}{{ 1 != 1.0 }}''')
add("selectattr_ops", r'''{{ messages | selectattr('role', '==', 'user') | list | length }}|{% set s = messages | selectattr('role', 'equalto', 'system') | list %}{% if s %}{{ s[0].content|trim }}{% endif %}''')
add("ws_ctrl", "{%- for m in messages -%}\n  {{- ' <' + m.role + '> ' -}}\n  {%- if m.role == 'user' %}\n    U {{ m.content|trim }}\n  {% endif -%}\n{%- endfor %}\nEND\n")
add("concat_tilde", r'''{% for m in messages %}{{ "[" ~ loop.index ~ "]" ~ m.role }}{% endfor %}''')
add("unicode_json", r'''{{ messages[1] | tojson }}|{{ messages[1].content | tojson(ensure_ascii=true) }}''', MNULL)
add("raise_cond", r'''{{ raise_exception('bad') if messages|length > 100 else 'fine' }}''')
add("list_content_join", r'''{% for m in messages %}{% if m.content is string %}{{ m.content }}{% else %}{{ m.content | selectattr('type', 'equalto', 'text') | map(attribute='text') | join('') }}{% endif %}{% endfor %}''', MM)
add("ifexpr_in_call", r'''{% for m in messages %}{{ m.content.strip() if m.content is string else '' }}{{ '|'.join([m.role, ('a' if loop.first else 'b')]) }};{% endfor %}''')

# batch 3: more constructs seen in published chat templates
add("set_cond_none", r'''{%- set sys = messages[0]['content'] if messages[0]['role'] == 'system' else none %}{{ sys is none }}|{{ sys|trim if sys is not none else 'NONE' }}''')
add("replace_nl", r'''{{ messages[2]['content'] | replace('\n', '\\n') }}''')
add("not_in", r'''{% for m in messages[1:] %}{% if m['role'] not in ['user', 'assistant'] %}X{% else %}{{ m.role[0] }}{% endif %}{% endfor %}''')
add("unique", r'''{{ messages | map(attribute='role') | unique | list | length }}|{{ messages | map(attribute='role') | unique | join(',') }}''')
add("tilde_ns", r'''{% set ns = namespace(x='') %}{% for m in messages %}{% set ns.x = ns.x ~ m.role[:1] %}{% endfor %}{{ ns.x }}''')
add("dict_len", r'''{{ tools[0].function.parameters.properties | length }}|{{ 5 | string }}|{{ tools[0].function.name | capitalize }}''', tools=TOOLS)
add("content_parts_for_if", r'''{%- for message in messages -%}{%- if message.content is string -%}{{ message.content }}{%- else -%}{%- for c in message.content if c.type == 'text' -%}{{ c.text }}{%- endfor -%}{%- endif -%}{%- endfor -%}''', MM)
add("dictsort", r'''{% for k, v in tools[0].function.parameters.properties|dictsort %}{{ k }}{% endfor %}''', tools=TOOLS)
add("upper_first", r'''{{ messages[1].content[:1].upper() + messages[1].content[1:] }}|{{ {'a': 1}['a'] }}|{{ [1,2,3][1:] }}|{{ ['a'] }}''')
add("format_filter", r'''{{ "%s, %s!"|format("Hello", messages[1].content) }}|{{ "%d items"|format(messages|length) }}''')
add("get_on_message", r'''{% for m in messages %}{{ m.get('content', '')|length }},{{ m.get('nope', 'd') }},{{ m.get('nope') is none }};{% endfor %}''')
add("in_and", r'''{% for m in messages %}{% if 'content' in m and m.content %}{{ m.content.lstrip('<').rstrip('!')[:5] }}{% endif %}{% endfor %}''')
add("range_loop", r'''{% for i in range(3) %}{{ i }}{% endfor %}|{{ range(2)|list|length }}|{% for i in range(1, 7, 2) %}{{ i }}{% endfor %}''')
add("default_none", r'''{{ undefined_var|default(none) is none }}|{{ messages[0].role|default('x') }}|{{ none|default('d') }}''')
add("sameas", r'''{{ enable_thinking is sameas false }}|{{ enable_thinking is not sameas true }}''', enable_thinking=False)
add("or_trim", r'''{% for m in messages %}[{{ (m.content or '') | trim }}]{% endfor %}''', MNULL)
add("newline_not_last", "{%- for m in messages %}\n{{ m.role }}\n{%- if not loop.last %}\n---\n{% endif %}\n{%- endfor %}")
add("batch_filter", r'''{{ messages|batch(3)|list|length }}''')
add("string_multiply", r'''{{ '=' * 5 }}{{ '-' * (messages|length) }}''')
add("float_ops", r'''{{ 7 / 2 }}|{{ 7 // 2 }}|{{ 1.5 + 1 }}|{{ 3 * 1.0 }}|{{ 10 % 4 }}''')
add("bool_print", r'''{{ true and 'x' }}|{{ false or 'y' }}|{{ (1 > 2) }}''')
add("loop_nested", r'''{% for m in messages[:2] %}{% for c in m.role %}{{ loop.index }}{{ c }}{% endfor %}{{ loop.index }};{% endfor %}''')
add("tojson_list_messages", r'''{{ messages | tojson }}''', MNULL)
add("tojson_indent_str", r'''{{ tools[0] | tojson(indent='\t') }}''', tools=TOOLS)

# batch 4: tool-calling constructs (Mistral, Command-R, Granite, Hermes styles)
MTC = [{"role": "user", "content": "Weather?"}, {"role": "assistant", "tool_calls": [{"id": "abcdefghi", "type": "function", "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]}, {"role": "tool", "tool_call_id": "abcdefghi", "content": "21C"}, {"role": "assistant", "content": "It is 21C."}, {"role": "user", "content": "Thanks"}]
CRTOOLS = [{"name": "search", "description": "Search the web", "parameter_definitions": {"query": {"description": " the query ", "type": "str", "required": True}, "limit": {"description": "max hits", "type": "int", "required": False}}}]
add("mistral_tools", r'''{%- set user_messages = messages | selectattr("role", "equalto", "user") | list %}
{%- set plain = messages | rejectattr("role", "equalto", "tool") | selectattr("tool_calls", "undefined") | list %}
{{- plain | length }}/{{ user_messages | length }}
{%- for message in messages %}
    {%- if message.tool_calls is defined %}
        {%- for tool_call in message.tool_calls %}
            {%- if tool_call.id is not defined or tool_call.id|length != 9 %}
                {{- raise_exception("Tool call IDs should be alphanumeric strings with length 9!") }}
            {%- endif %}
            {{- "[TOOL_CALLS] [" + tool_call.function|tojson + ", " + {"id": tool_call.id}|tojson + "]" }}
        {%- endfor %}
    {%- elif message.role == "tool" %}
        {{- '[TOOL_RESULTS] {"content": ' + message.content|string + ', "call_id": "' + message.tool_call_id + '"}[/TOOL_RESULTS]' }}
    {%- elif loop.index0 is even %}
        {{- "[INST] " + message.content + "[/INST]" }}
    {%- else %}
        {{- " " + message.content|trim + eos_token }}
    {%- endif %}
{%- endfor %}''', MTC)
add("mistral_tool_items", r'''{%- for tool in tools %}{%- for key, val in tool.function.items() if key != "return" %}{%- if val is string %}{{ key }}="{{ val }}" {% else %}{{ key }}={{ val|tojson }} {% endif %}{%- endfor %}{%- endfor %}''', tools=TOOLS)
add("command_r_macro", r'''{%- macro json_to_python_type(json_spec) %}
{%- set basic_type_map = {"string": "str", "number": "float", "integer": "int", "boolean": "bool"} %}
{%- if basic_type_map[json_spec.type] is defined %}
    {{- basic_type_map[json_spec.type] }}
{%- elif json_spec.type == "array" %}
    {{- "List[" +  json_to_python_type(json_spec['items']) + "]" }}
{%- elif json_spec.type == "object" %}
    {{- "Dict[str, Any]" }}
{%- elif json_spec.type is iterable %}
    {{- "Union[" }}{%- for t in json_spec.type %}{{- json_to_python_type({"type": t}) }}{%- if not loop.last %},{% endif %}{%- endfor %}{{- "]" }}
{%- else %}
    {{- "Any" }}
{%- endif %}
{%- endmacro %}
{%- for tool in tools %}
def {{ tool.name }}({% for param_name, param_fields in tool.parameter_definitions.items() %}{% if loop.index0 != 0 %}, {% endif %}{{ param_name }}: {% if not param_fields.required %}Optional[{{ param_fields.type }}] = None{% else %}{{ param_fields.type }}{% endif %}{% endfor %}) -> List[Dict]:
    """{{ tool.description }}
{%- for param_name, param_fields in tool.parameter_definitions.items() %}
        {{ param_name }} ({% if not param_fields.required %}Optional[{{ param_fields.type }}]{% else %}{{ param_fields.type }}{% endif %}): {{ param_fields.description.strip() }}
{%- endfor %}
    """
{% endfor %}
{{- json_to_python_type({"type": "array", "items": {"type": "integer"}}) }}|{{ json_to_python_type({"type": ["string", "integer"]}) }}''', tools=CRTOOLS)
# Endless recursion: Python's RecursionError, moco's macro depth limit.
add("macro_recursion", r'''{%- macro f(x) %}{{ f(x) }}{%- endmacro %}{{ f(1) }}''')
add("granite_docs", r'''{%- if tools and documents %}both{%- elif documents %}docs{%- else %}none{%- endif %}|{%- if documents %}{%- for document in documents %}{{- document | tojson(indent=4) }}{%- endfor %}{%- endif %}''', documents=[{"doc_id": 1, "text": "Paris is in France."}])
add("gemma2", r'''{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role = 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt %}{{'<start_of_turn>model\n'}}{% endif %}''', M1[1:])
add("gemma2_system_error", r'''{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}ok''')
add("hermes_set_content", r'''{%- for message in messages %}{%- set content = message.content if message.content is string else "" %}{%- if message.role == "assistant" and message.tool_calls is defined %}{%- for tc in message.tool_calls %}<tool_call>
{{ tc.function | tojson }}
</tool_call>{% endfor %}{%- else %}<|im_start|>{{ message.role }}
{{ content }}<|im_end|>
{% endif %}{%- endfor %}''', MTC)
add("phi3", r'''{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'user') %}{{'<|user|>' + '\n' + message['content'] + '<|end|>' + '\n' + '<|assistant|>' + '\n'}}{% elif (message['role'] == 'assistant') %}{{message['content'] + '<|end|>' + '\n'}}{% endif %}{% endfor %}''', M1[1:])
add("llama32_defined_fn", r'''{%- if not date_string is defined %}{%- if strftime_now is defined %}{%- set date_string = strftime_now("%d %b %Y") %}{%- else %}{%- set date_string = "26 Jul 2024" %}{%- endif %}{%- endif %}{%- if not tools is defined %}{%- set tools = none %}{%- endif %}{{ date_string }}|{{ tools is none }}|{%- if tools is not none and not tools_in_user_message %}T{% endif %}{%- if tools_in_user_message and not tools is none %}U{% endif %}''')

add("title_filters", r'''{{ "it's o'k-ay (x) [y]z  MIXED case"|title }}|{{ "hELLO wORLD"|capitalize }}|{{ "ÉTÉ"|lower }}|{{ 'straße'|upper|length }}|{{ "1st place"|title }}''')

# batch 5: scoping and constructs from published templates
add("scope_for", r'''{% set x = 1 %}{% for m in messages %}{% set x = 2 %}{% set y = 3 %}{% endfor %}{{ x }}{{ y is defined }}''')
add("scope_if", r'''{% if true %}{% set y = 1 %}{% endif %}{{ y }}{% if false %}{% else %}{% set z = 2 %}{% endif %}{{ z }}''')
add("scope_found_item", "{%- set found_item = false -%}\n{%- for message in messages -%}\n    {%- if message['role'] == 'system' -%}\n        {%- set found_item = true -%}\n    {%- endif -%}\n{%- endfor -%}\n{%- if not found_item -%}\nDEFAULT\n{%- endif %}\nEND")
add("scope_macro", r'''{% set g = 'outer' %}{% macro m() %}{% set g = 'inner' %}{{ g }}{% endmacro %}{{ m() }}{{ g }}''')
add("range_idx", "{%- for idx in range(0, messages|length) -%}\n{%- if messages[idx]['role'] == 'user' -%}\n{%- if idx > 1 -%}\n{{- bos_token + '[INST] ' + messages[idx]['content'] + ' [/INST]' -}}\n{%- else -%}\n{{- messages[idx]['content'] + ' [/INST]' -}}\n{%- endif -%}\n{% elif messages[idx]['role'] == 'system' %}\n{{- '[INST] <<SYS>>\\n' + messages[idx]['content'] + '\\n<</SYS>>\\n\\n' -}}\n{%- elif messages[idx]['role'] == 'assistant' -%}\n{{- ' '  + messages[idx]['content'] + ' ' + eos_token -}}\n{% endif %}\n{% endfor %}")
add("set_filter_prec", r'''{% for message in messages %}{% set content = 'Source: ' + message['role'] + '\n\n ' + message['content'] | trim %}{{ content + ' <step> ' }}{% endfor %}''')
add("previtem_role", r'''{% for message in messages %}{% if loop.index > 1 and loop.previtem['role'] != 'assistant' %}{{ ' ' }}{% endif %}{{ message['role'] }}{% endfor %}''')
add("text_newlines", "Intro line\n\n{% for message in messages %}{% if message['role'] == 'user' %}### Instruction:\n{{ message['content']|trim -}}{% if not loop.last %}{{ '\\n\\n' }}{% endif %}{% elif message['role'] == 'assistant' %}### Response:\n{{ message['content']|trim -}}\n{% endif %}{% endfor %}\n{% if add_generation_prompt %}### Response:\n{% endif %}")
add("zephyr_newlines", "{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\\n' + message['content'] + eos_token }}\n{% elif message['role'] == 'assistant' %}\n{{ '<|assistant|>\\n'  + message['content'] + eos_token }}\n{% endif %}\n{% if loop.last and add_generation_prompt %}\n{{ '<|assistant|>' }}\n{% endif %}\n{% endfor %}")
add("messages_neg_index", r'''{% if add_generation_prompt and messages[-1]['role'] != 'assistant' %}G{% elif messages[-1]['role'] == 'assistant' %}{{ eos_token }}{% endif %}''')

add("str_methods3", r'''{{ '{} {}'.format('a', 1) }}|{{ '{0}-{0}'.format('x') }}|{{ '{name}!'.format(name='n') }}|{{ 'a,b,c'.count(',') }}|{{ 'aaaa'.count('aa') }}|{{ 'a,b,c'.count(',', 2) }}|{{ 'abc'.find('z') }}|{{ '  '.isspace() }}|{{ 'abc'.isalpha() }}|{{ '12'.isdigit() }}|{{ '5'.zfill(3) }}|{{ 'a b'.partition(' ')|join('/') }}|{{ 'ab'.index('b') }}|{{ 'a\nb'.splitlines()|length }}|{{ 'A'.isupper() }}|{{ 'x'.ljust(3) + '|' }}|{{ 'x'.rjust(3) }}|{{ 'x'.center(5) + '|' }}|{{ 'ab'.center(5, '*') }}|{{ 'abc'.center(6, '*') }}|{{ 'é'.ljust(3, '·') }}|{{ 'Hello'.swapcase() }}|{{ 'a-b-c'.rpartition('-')|join('/') }}|{{ 'abcabc'.rfind('b') }}|{{ 'éab'.find('b') }}|{{ 'xéx'.rindex('x') }}|{{ 'abcabc'.find('b', 2) }}''')

add("filters2", r'''{{ messages|join(', ', attribute='role') }}|{{ messages|map(attribute='content')|map('trim')|map('upper')|first }}|{{ [1, 2, 3, 4]|select('odd')|list|join }}|{{ [1, 2, 3, 4]|reject('even')|list|join }}|{{ 'abc'|first }}{{ 'abc'|last }}|{{ 'abc'|list|join('.') }}|{{ [3, 1, 2]|min }}{{ [3, 1, 2]|max }}|{{ messages|selectattr('content')|list|length }}|{{ 3.14159|round(2) }}|{{ 2.5|round }}|{{ 3.5|round }}|{{ 2.675|round(2) }}|{{ 7|round }}|{{ 1.21|round(1, 'ceil') }}|{{ -1.25|round(1, 'floor') }}|{{ '42'|int * 2 }}|{{ 'x'|default('d', true) }}|{{ ''|default('d', true) }}|{{ [1,2,3,4,5]|batch(2)|list|length }}|{{ 'a  b c'|wordcount }}|{{ messages|sum(attribute='n', start=0) if false else 0 }}''')
add("indent_filter", r'''{{ "a\nb\nc"|indent(2) }}|{{ "a\nb"|indent(4, true) }}|{{ "a\n\nb"|indent(2, blank=true) }}''')
add("escape_safe", r'''{{ '<b>&"'|e }}|{{ '<i>'|safe }}|{{ '<p>x</p>'|striptags }}''')
add("truncate_filter", r'''{{ 'hello world foo bar'|truncate(9) }}|{{ 'hello world'|truncate(5, true) }}|{{ 'hi'|truncate(5) }}''')

add("elif_nested_cond", "{% for m in messages %}\n  {%- if m.role == 'system' %}S\n  {%- elif (m.content if m.content is string else '')|length > 4 -%}\n    L{{ m.role[0] }}\n  {% elif m.role == ('user' if loop.first else 'assistant') %}\n    F\n  {%- else %}O{% endif %}\n{% endfor %}\n{% if true %}{% if false %}{% elif ('a' if true else 'b') == 'a' %}inner{% endif %}outer{% endif %}")

# Subscripts as Python indexes: from the end down to -len (Mistral v0.3 and
# Nemo put their tools before the user message equal to user_messages[-1],
# so a one-message conversation lost them), strings by character.
add("neg_index_one", r"""{% set users = messages|selectattr('role', 'equalto', 'user')|list %}{% for m in messages %}{% if m == users[-1] %}[TOOLS]{% endif %}{{ m.content }}{% endfor %}|{{ messages[-1].role }}|{{ [1, 2][-2] }}|{{ [1, 2][-3] is defined }}|{{ [1, 2][2] is defined }}|{{ 'héllo'[1] }}{{ '日本'[-1] }}{{ 'ab'[-2] }}|{{ 'ab'[2] is defined }}|{{ none[0] is defined }}""", [{"role": "user", "content": "Hi"}])

# "+" between a string and anything else is a TypeError (an UndefinedError
# for undefined): Phi-3, SmolLM2, OLMo 2, TinyLlama and Qwen2.5 add
# message['content'] to strings, so transformers refuses None or list content
# rather than printing it.
add("concat_none", r"""{% for m in messages %}{{ '<|' + m.role + '|>' + m.content + '<|end|>' }}{% endfor %}""", MNULL)
add("concat_list", r"""{{ 'x' + messages[0].content }}""", MM)
add("concat_int", r"""{{ 'n=' + messages|length }}""")
add("concat_undefined", r"""{{ 'x' + nothing }}""")
add("concat_ok", r"""{{ 'a' + 'b' }}|{{ [1] + [2] }}|{{ 1 + 2.5 }}|{{ 'a' ~ none ~ 1 }}|{{ 'n=' + messages|length|string }}""")

# "in" needs a container on its right: None, numbers and booleans raise
# TypeError (Qwen3 tests '</think>' in an assistant message's content, which
# is None on a tool-call message), as do a non-string left operand of
# "in <string>" and an unhashable key of a dict. An undefined right operand
# iterates as empty.
add("in_none", r"""{% for m in messages %}{% if m.role == 'assistant' and '</think>' in m.content %}T{% endif %}{{ m.role }};{% endfor %}""", MNULL)
add("not_in_none", r"""{{ 'x' not in none }}""")
add("in_int", r"""{% set n = messages|length %}{{ 'x' in n }}""")
add("in_test_bool", r"""{{ 'x' is in add_generation_prompt }}""")
add("in_string_int", r"""{{ 1 in 'a1' }}""")
add("in_string_none", r"""{{ none in 'None' }}""")
add("in_string_undefined", r"""{{ nothing in 'abc' }}""")
add("in_dict_list", r"""{{ ['role'] in messages[0] }}""")
add("in_ok", r"""{{ 'b' in 'abc' }}|{{ '' in '' }}|{{ 'x' not in 'abc' }}|{{ '日本' in messages[1].content }}|{{ 1 in [1, 2] }}|{{ 1.0 in [1] }}|{{ none in [none] }}|{{ [1] in [[1]] }}|{{ 'role' in messages[0] }}|{{ 'x' in messages[0] }}|{{ 'a' in ('a', 'b') }}|{{ 'x' in nothing }}|{{ 'x' not in nothing }}|{{ nothing in [1] }}|{{ nothing in {'a': 1} }}|{{ 'x' is in ['x'] }}""", MNULL)

# Filters bind tighter than in and not in, and the right operand of in is a
# whole sum: gonja applied a filter after it to the result of the test.
add("in_filter", r"""{{ 'a' in ['a']|list }}|{{ 'A' in 'abc'|upper }}|{{ 'A' not in 'abc'|upper }}|{% if 'user' in messages|map(attribute='role')|list %}U{% endif %}|{% set y = 'x' in 'X'|lower %}{{ y }}|{{ ['x' in 'X'|lower, 1] }}|{% for m in messages if m.role not in ['system']|list %}{{ m.role[0] }}{% endfor %}|{{ 'A' in messages[1].content|upper -}}
|""")
add("in_sum", r"""{{ 'a' in 'a' + 'b' }}|{{ 'ab' in 'a' ~ 'b' }}|{{ 'a' in ['b'] + ['a'] }}|{{ 'x' in 'x' if 'y' in 'Y'|lower else 'z' }}|{{ 'a' in ('a', 'b') }}|{{ 1 in [1] and 2 in [2]|list or 3 in [3] }}""")
add("in_filter_int", r"""{{ 'a' in ['a']|list|length }}""")

# Equality is Python's: True == 1, False == 0, 1 == 1.0, and None equals
# only None (gonja took None for 0 and told booleans from numbers), in
# ==, !=, in and the tests eq, equalto and ne.
add("py_equality", r"""{{ true in [1] }}|{{ false in [0] }}|{{ 1 in [true] }}|{{ 0.0 in [false] }}|{{ true in {1: 'x'} }}|{{ 2 in [true] }}|{{ true == 1 }}|{{ false == 0 }}|{{ true != 1 }}|{{ true == 2 }}|{{ 1 == 1.0 }}|{{ [true] == [1] }}|{{ {'a': 1} == {'a': true} }}|{{ none == 0 }}|{{ none != 0 }}|{{ 0 in [none] }}|{{ none == none }}|{{ nothing == none }}|{{ true is eq 1 }}|{{ 1 is ne true }}|{{ [1, 2]|select('equalto', true)|list }}|{{ messages|selectattr('role', 'equalto', 'user')|list|length }}""")

# A namespace is not iterable and not a mapping (gonja's was a dict of its
# attributes); its attributes work as before.
add("in_namespace", r"""{% set ns = namespace(a=1) %}{{ 'a' in ns }}""")
add("for_namespace", r"""{% set ns = namespace(a=1) %}{% for k in ns %}{{ k }}{% endfor %}""")
add("namespace_ok", r"""{% set ns = namespace(found=false, n=0) %}{% for m in messages %}{% if m.role == 'user' %}{% set ns.found = true %}{% endif %}{% set ns.n = ns.n + 1 %}{% endfor %}{{ ns.found }}|{{ ns.n }}|{{ ns is mapping }}|{{ ns.x is defined }}|{% set ns2 = namespace({'x': 5}, y=2) %}{{ ns2.x }}{{ ns2.y }}|{{ ns2['y'] }}""")

# Special tokens that are null or empty in tokenizer_config.json are not
# passed at all (Qwen2.5 and Qwen3 have "bos_token": null), nor is an empty
# additional_special_tokens.
AT = lambda c: {"__type": "AddedToken", "content": c, "lstrip": False, "normalized": False, "rstrip": False, "single_word": False}
add_config("special_empty", r"""{{ bos_token is defined }}|{{ unk_token is defined }}|{{ pad_token is defined }}|{{ additional_special_tokens is defined }}|{{ bos_token|default('-') }}|{{ eos_token }}""",
           {"bos_token": None, "eos_token": AT("<|im_end|>"), "unk_token": None, "pad_token": "", "additional_special_tokens": []})
add_config("special_set", r"""{{ bos_token }}|{{ unk_token }}|{{ pad_token }}|{{ mask_token }}|{{ additional_special_tokens|join(',') }}|{{ eos_token is defined }}|{{ sep_token is defined }}""",
           {"bos_token": "<s>", "unk_token": AT("<unk>"), "pad_token": "<pad>", "mask_token": AT("<mask>"), "additional_special_tokens": ["<a>", AT("<b>")]})

# Named extra_special_tokens are template variables like bos_token (Gemma 3:
# image_token, boi_token, eoi_token); the list form defines no names.
add_config("extra_special_named", r"""{{ image_token }}|{{ boi_token }}|{{ audio_token is defined }}|{{ empty_token is defined }}|{{ eos_token }}|{% for m in messages %}{{ boi_token + image_token + eoi_token if m.role == 'user' }}{% endfor %}""",
           {"eos_token": "<eos>", "extra_special_tokens": {"image_token": "<image_soft_token>", "boi_token": AT("<start_of_image>"), "eoi_token": "<end_of_image>", "empty_token": ""}})
add_config("extra_special_list", r"""{{ image_token is defined }}|{{ additional_special_tokens is defined }}|{{ eos_token }}""",
           {"eos_token": "<eos>", "extra_special_tokens": ["<image>"]})

out = open(os.path.join(os.path.dirname(os.path.abspath(__file__)), "jinja_ref.jsonl"), "w")
for c in cases:
    kw = special_tokens_map(c["config"]) if "config" in c else {"bos_token": "<s>", "eos_token": "</s>"}
    kw["add_generation_prompt"] = True
    kw.update(c["kwargs"])
    try:
        c["rendered"] = render(c["template"], c["messages"], kw, NOW)
        c["error"] = None
    except Exception as e:
        c["rendered"] = None
        c["error"] = type(e).__name__ + ": " + str(e)
    out.write(json.dumps(c, ensure_ascii=False) + "\n")
print(len(cases), "cases;", sum(1 for c in cases if c["error"]), "errors")
for c in cases:
    if c["error"]: print(c["name"], c["error"])

