#!/usr/bin/env python3
"""
Reference renderings of tool use in DeepSeek-V3.2's and DeepSeek-V4's prompt encodings, and reference parses of
model outputs with DSML tool calls, made by running DeepSeek's own encoders (encoding/encoding_dsv32.py of
deepseek-ai/DeepSeek-V3.2, encoding/encoding_dsv4.py of deepseek-ai/DeepSeek-V4-Flash). Those files are not part of
this repository (tests/fixtures/chat-templates/README.md says which copies were used); point this script at a folder
holding them:

  python3 tools/reference/render_deepseek_tool_encodings.py DIR_WITH_ENCODERS
writes into tests/fixtures/chat-templates/
  reference-tools-dsv32.jsonl, reference-tools-dsv4.jsonl: one line per (conversation, thinking_mode, drop_thinking)
    with encode_messages' text, or "error" where the encoder refuses the conversation. The tools are the "tools" of
    a system message (OpenAI format), as DeepSeek's README shows; assistant messages carry reasoning_content and
    tool_calls (with ids), tool messages tool_call_id.
  parse-dsv32.jsonl, parse-dsv4.jsonl: one line per completion text (what the model writes after the prompt, ending
    with the end-of-sentence token) with parse_message_from_completion_text's content, reasoning_content and
    tool_calls (name and arguments), or "error" where that strict decoder refuses it.
Standard library only (Python 3.11 was used).
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from render_deepseek_encodings import ROOT, load  # noqa: E402  (the sibling script: same folder)


def write(path, lines, what):
    with open(path, 'w', encoding='utf-8') as f:
        f.write('\n'.join(lines) + '\n')
    print(os.path.basename(path), len(lines), what + ',', sum('"error"' in l for l in lines), 'refused')


WEATHER = {'type': 'function', 'function': {
    'name': 'get_weather', 'description': 'Get the weather for a city',
    'parameters': {'type': 'object', 'properties': {
        'location': {'type': 'string', 'description': 'The city name'},
        'unit': {'type': 'string', 'enum': ['celsius', 'fahrenheit']}}, 'required': ['location']}}}
SEARCH = {'type': 'function', 'function': {
    'name': 'search', 'description': 'Recherche sur le web — 搜索 🚀 "quoted"\nsecond line',
    'parameters': {'type': 'object', 'properties': {
        'query': {'type': 'string'},
        'num_results': {'type': 'integer', 'minimum': 1, 'maximum': 1e3, 'default': 10},
        'threshold': {'type': 'number', 'minimum': 0.5, 'exclusiveMaximum': 2.5e-05, 'multipleOf': 1e16},
        'filters': {'type': 'object', 'properties': {'safe': {'type': 'boolean', 'default': True}, 'site': {'type': ['string', 'null']}}}},
        'required': ['query']}}}
NODESC = {'type': 'function', 'function': {'name': 'now', 'parameters': {'type': 'object', 'properties': {}}}}
TOOLS = [WEATHER, SEARCH, NODESC]


def s(c, tools=None):
    m = {'role': 'system', 'content': c}
    if tools:
        m['tools'] = tools
    return m


def u(c): return {'role': 'user', 'content': c}


def a(c, calls=None, reasoning=None):
    m = {'role': 'assistant', 'content': c}
    if calls:
        m['tool_calls'] = [{'id': cid, 'type': 'function', 'function': {'name': n, 'arguments': args}} for cid, n, args in calls]
    if reasoning is not None:
        m['reasoning_content'] = reasoning
    return m


def t(c, cid=None):
    m = {'role': 'tool', 'content': c}
    if cid:
        m['tool_call_id'] = cid
    return m


PARIS = ('call_1', 'get_weather', '{"location": "Paris", "unit": "celsius"}')
ROME = ('call_2', 'get_weather', '{"location": "Rome"}')
RICH = ('call_3', 'search', json.dumps({'query': 'line one\nline "two" \\ 你好 🚀', 'num_results': 5, 'threshold': 0.75,
                                         'filters': {'safe': False, 'site': None}, 'tags': ['a', 1, True]}, ensure_ascii=False))
EMPTY = ('call_4', 'now', '{}')

CONVERSATIONS = [
    [s('You are a helpful assistant.', TOOLS), u('What is the weather in Paris?')],
    [s('', [WEATHER]), u('Weather in Paris?')],
    [s('Be brief.', [WEATHER]), u('Weather in Paris?'), a(None, [PARIS], 'I should call get_weather.'), t('{"temp": 21}', 'call_1')],
    [s('Be brief.', [WEATHER]), u('Paris and Rome?'), a('Let me check both.', [PARIS, ROME], 'Two cities, two calls.'),
     t('sunny', 'call_1'), t('rainy', 'call_2')],
    [s('Be brief.', [WEATHER]), u('Paris and Rome?'), a('Let me check both.', [PARIS, ROME], 'Two cities, two calls.'),
     t('rainy', 'call_2'), t('sunny', 'call_1')],
    [s('Be brief.', [WEATHER]), u('Weather in Paris?'), a('', [PARIS], 'Call it.'), t('21 C', 'call_1'),
     a('It is 21 C in Paris.', None, 'The tool says 21 C.'), u('And Rome?')],
    [s('Be brief.', [WEATHER]), u('Weather in Paris?'), a('', [PARIS], 'Call it.'), t('21 C', 'call_1'),
     a('It is 21 C in Paris.', None, 'The tool says 21 C.')],
    [s('Sys', TOOLS), u('Search something odd.'), a('', [RICH, EMPTY], 'Odd arguments.'), t('found', 'call_3'), t('12:00', 'call_4')],
    [s('Sys', TOOLS), u('Two calls, one answer back.'), a('', [PARIS, ROME], 'r'), t('only one', 'call_1')],
    [u('No tools here.'), t('a tool result without a call')],
    [s('Sys', [WEATHER]), u('Q1'), a('A1', None, 'thought 1'), u('Q2'), a('', [PARIS], 'thought 2'), t('ok', 'call_1')],
]

# what a model writes after the prompt (with its end-of-sentence token), for the decoders
EOS = '<｜end▁of▁sentence｜>'


def completions(block):
    d = '｜DSML｜'
    inv = lambda name, params: f'<{d}invoke name="{name}">\n' + '\n'.join(
        f'<{d}parameter name="{k}" string="{st}">{v}</{d}parameter>' for k, st, v in params) + f'\n</{d}invoke>'
    blk = lambda *invokes: f'\n\n<{d}{block}>\n' + '\n'.join(invokes) + f'\n</{d}{block}>'
    w = inv('get_weather', [('location', 'true', 'Paris'), ('unit', 'true', 'celsius')])
    r = inv('search', [('query', 'true', 'line one\nline "two" \\ 你好 🚀'), ('num_results', 'false', '5'),
                       ('filters', 'false', '{"safe": false, "site": null}'), ('tags', 'false', '["a", 1, true]')])
    return [
        ('chat', 'Plain answer, no calls.' + EOS),
        ('chat', blk(w) + EOS),
        ('chat', 'Let me check.' + blk(w, inv('get_weather', [('location', 'true', 'Rome')])) + EOS),
        ('chat', blk(r, inv('now', [])) + EOS),
        ('thinking', 'I need the weather.</think>' + blk(w) + EOS),
        ('thinking', 'Reasoning first.</think>Some text first.' + blk(w) + EOS),
        ('chat', 'Text with a lone marker <' + d + 'invoke name="x"> but no block.' + EOS),
        ('chat', blk(inv('get_weather', [('location', 'maybe', 'Paris')])) + EOS),
        ('chat', blk(inv('get_weather', [('location', 'true', 'Paris'), ('location', 'true', 'Rome')])) + EOS),
    ]


def main():
    src = sys.argv[1]
    out_dir = os.path.join(ROOT, 'tests', 'fixtures', 'chat-templates')
    for name, block in (('dsv32', 'function_calls'), ('dsv4', 'tool_calls')):
        enc = load(os.path.join(src, f'encoding_{name}.py'), f'encoding_{name}')
        lines = []
        for messages in CONVERSATIONS:
            for mode in ('chat', 'thinking'):
                for drop in (True, False):
                    row = {'messages': messages, 'thinking_mode': mode, 'drop_thinking': drop}
                    try:
                        row['text'] = enc.encode_messages(json.loads(json.dumps(messages)), thinking_mode=mode, drop_thinking=drop)
                    except (AssertionError, KeyError, IndexError, TypeError) as e:
                        row['error'] = type(e).__name__
                    lines.append(json.dumps(row, ensure_ascii=False))
        write(os.path.join(out_dir, f'reference-tools-{name}.jsonl'), lines, 'renderings')

        lines = []
        for mode, text in completions(block):
            row = {'thinking_mode': mode, 'completion': text}
            try:
                m = enc.parse_message_from_completion_text(text, thinking_mode=mode)
                row['content'] = m['content']
                row['reasoning_content'] = m['reasoning_content']
                row['tool_calls'] = [{'name': c['function']['name'], 'arguments': c['function']['arguments']} for c in m['tool_calls']]
            except (AssertionError, ValueError) as e:
                row['error'] = type(e).__name__
            lines.append(json.dumps(row, ensure_ascii=False))
        write(os.path.join(out_dir, f'parse-{name}.jsonl'), lines, 'parses')


if __name__ == '__main__':
    main()
