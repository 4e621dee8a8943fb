#!/usr/bin/env python3
"""
Reference renderings of DeepSeek-V3.2's and DeepSeek-V4's prompt encodings, made by running DeepSeek's own encoders
(no Jinja template ships with those models): encoding/encoding_dsv32.py and encoding/encoding_dsv4.py from the models'
Hugging Face repositories (deepseek-ai/DeepSeek-V3.2, deepseek-ai/DeepSeek-V4-Flash). Those files are not part of
this repository; point this script at a folder holding them:

  python3 tools/reference/render_deepseek_encodings.py DIR_WITH_ENCODERS
writes tests/fixtures/chat-templates/reference-dsv32.jsonl and reference-dsv4.jsonl: one line per (conversation,
thinking_mode, drop_thinking[, reasoning_effort]) with the encoder's text, or "error" where the encoder refuses
the conversation (an assert). Messages carry only role and content, as the engine's ChatMessage does.
"""
import importlib.util
import json
import os
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..'))


def load(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def u(c): return {'role': 'user', 'content': c}
def a(c): return {'role': 'assistant', 'content': c}
def s(c): return {'role': 'system', 'content': c}
def t(c): return {'role': 'tool', 'content': c}


CONVERSATIONS = [
    [u('What is 1+1?')],
    [s('You are a concise assistant.'), u('Name a prime number.')],
    [u('hello'), a('Hello! I am DeepSeek.'), u('1+1=?')],
    [s('Sys'), u('Q1'), a('A1'), u('Q2'), a('A2'), u('Q3')],
    [s('Be brief.'), s('Answer in French.'), u('Hello')],
    [u('First part.'), u('Second part.')],
    [u('Look both up.'), t('result one'), t('result two')],
    [u('Weather?'), t('sunny'), a('It is sunny.'), u('Thanks')],
    [u('Q'), a('A prefilled answer')],
    [u('你好，请介绍一下你自己。 🚀\nLine two')],
]


def main():
    src = sys.argv[1]
    out_dir = os.path.join(ROOT, 'tests', 'fixtures', 'chat-templates')
    encoders = {
        'dsv32': (load(os.path.join(src, 'encoding_dsv32.py'), 'encoding_dsv32'), [None]),
        'dsv4': (load(os.path.join(src, 'encoding_dsv4.py'), 'encoding_dsv4'), [None, 'high', 'max']),
    }
    for name, (enc, efforts) in encoders.items():
        lines = []
        for messages in CONVERSATIONS:
            for mode in ('chat', 'thinking'):
                for drop in (True, False):
                    for effort in efforts:
                        kwargs = dict(thinking_mode=mode, drop_thinking=drop)
                        if effort is not None:
                            kwargs['reasoning_effort'] = effort
                        row = {'messages': messages, 'thinking_mode': mode, 'drop_thinking': drop, 'reasoning_effort': effort}
                        try:
                            row['text'] = enc.encode_messages(json.loads(json.dumps(messages)), **kwargs)
                        except (AssertionError, KeyError, IndexError) as e:
                            row['error'] = type(e).__name__
                        lines.append(json.dumps(row, ensure_ascii=False))
        with open(os.path.join(out_dir, f'reference-{name}.jsonl'), 'w', encoding='utf-8') as f:
            f.write('\n'.join(lines) + '\n')
        print(name, len(lines), 'renderings,', sum('"error"' in l for l in lines), 'refused')


if __name__ == '__main__':
    main()
