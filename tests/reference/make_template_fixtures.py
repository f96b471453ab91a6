#!/usr/bin/python3
"""Renders a fixed set of conversations through DeepSeek's V3.2 and V4 Jinja chat templates and writes the strings
to tests/data/chat_templates/deepseek_dsml.json, which tests/unit/test_chat_template.cpp compares the native
renderer against byte for byte.

Usage: make_template_fixtures.py TEMPLATE_DIR [OUT.json]
  TEMPLATE_DIR holds deepseek-ai-DeepSeek-V3.2.jinja, deepseek-ai-DeepSeek-V4.jinja and
  deepseek-ai-DeepSeek-V4-Flash-0731.jinja (llama.cpp's models/templates). The templates are read, never copied.

The Jinja environment is the one chat templates are written for (Hugging Face transformers, and llama.cpp's own
engine behaves the same on these templates): trim_blocks + lstrip_blocks, loop controls, `tojson` as
json.dumps(ensure_ascii=False) with the default ", " / ": " separators and no key sorting (jinja2's built-in
tojson would sort keys and HTML-escape), and `from_json` (a llama.cpp extension the templates use for string
arguments) as json.loads. The output is deterministic: a rerun gives the same bytes.
"""
import hashlib
import json
import os
import sys

import jinja2
import jinja2.sandbox

BOS = "<｜begin▁of▁sentence｜>"

# Key order matters (tool schemas and arguments are serialised in insertion order), so every dict is written in the
# order the fixture keeps.
TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather",
        "description": "Current weather for a city — température, vent.",
        "parameters": {"type": "object", "properties": {
            "city": {"type": "string", "description": "City name, e.g. \"Zürich\""},
            "units": {"type": "string", "enum": ["metric", "imperial"]},
            "days": {"type": "integer", "minimum": 1}},
            "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "search",
        "description": "Search the web.",
        "parameters": {"type": "object", "properties": {
            "query": {"type": "string"},
            "filters": {"type": "object", "properties": {
                "site": {"type": "string"}, "after": {"type": "string", "format": "date"}}},
            "limit": {"type": "number"}}}}},
]


def call(cid, name, args):
    # Arguments travel as JSON text, as in the OpenAI API.
    return {"id": cid, "type": "function", "function": {"name": name, "arguments": json.dumps(args, ensure_ascii=False)}}


WEATHER_ARGS = {"city": "Zürich 東京 \"quoted\"\nline2", "units": "metric", "days": 3}
SEARCH_ARGS = {"query": "naïve 😀 search", "filters": {"site": "example.org", "nested": {"deep": [1, 2.5, None, True]}},
               "limit": 10, "ratio": 0.1, "flag": False, "empty": {}, "list": []}

CONVERSATIONS = {
    "system_user": {"messages": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Hi"}]},
    "user_only": {"messages": [{"role": "user", "content": "2+2?"}]},
    "multi_turn_reasoning": {"messages": [
        {"role": "system", "content": "S1"},
        {"role": "system", "content": "S2"},
        {"role": "user", "content": "1+1?"},
        {"role": "assistant", "content": "2", "reasoning_content": "add one and one"},
        {"role": "user", "content": "and 2+2?"},
        {"role": "assistant", "content": "4"},
        {"role": "user", "content": "thanks"}]},
    "ends_on_assistant": {"messages": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!", "reasoning_content": "greet back"}]},
    "consecutive_users": {"messages": [
        {"role": "user", "content": "first"},
        {"role": "user", "content": "second"}]},
    "tools_defined": {"tools": TOOLS, "messages": [
        {"role": "system", "content": "Use tools when useful."},
        {"role": "user", "content": "Weather in Zürich?"}]},
    "tools_multi_turn": {"tools": TOOLS, "messages": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!", "reasoning_content": "greet"},
        {"role": "user", "content": "Weather?"}]},
    "tools_no_system": {"tools": TOOLS, "messages": [{"role": "user", "content": "Search something"}]},
    "tool_loop": {"tools": TOOLS, "messages": [
        {"role": "system", "content": "You are an agent."},
        {"role": "user", "content": "Weather and news?"},
        {"role": "assistant", "content": "Let me check.", "reasoning_content": "need both tools",
         "tool_calls": [call("c0", "get_weather", WEATHER_ARGS), call("c1", "search", SEARCH_ARGS)]},
        {"role": "tool", "tool_call_id": "c0", "content": "18°C, sunny"},
        {"role": "tool", "tool_call_id": "c1", "content": "{\"results\": []}"}]},
    "tool_loop_answered": {"tools": TOOLS, "messages": [
        {"role": "user", "content": "Weather?"},
        {"role": "assistant", "content": None, "reasoning_content": "call it",
         "tool_calls": [call("c0", "get_weather", {"city": "Paris"})]},
        {"role": "tool", "tool_call_id": "c0", "content": "18C"},
        {"role": "assistant", "content": "It is 18C.", "reasoning_content": "read the result"},
        {"role": "user", "content": "And tomorrow?"}]},
    "tool_calls_without_tools": {"messages": [
        {"role": "user", "content": "a"},
        {"role": "assistant", "content": "b", "reasoning_content": "old thoughts"},
        {"role": "user", "content": "c"},
        {"role": "assistant", "content": "", "reasoning_content": "need f",
         "tool_calls": [call("c0", "f", {})]},
        {"role": "tool", "tool_call_id": "c0", "content": "42"}]},
    "tool_then_user": {"messages": [
        {"role": "user", "content": "q"},
        {"role": "assistant", "content": None, "tool_calls": [call("c0", "f", {"x": [1, {"y": "z"}]})]},
        {"role": "tool", "tool_call_id": "c0", "content": "r"},
        {"role": "user", "content": "more"}]},
}

TEMPLATES = {"deepseek-v3.2": "deepseek-ai-DeepSeek-V3.2.jinja", "deepseek-v4": "deepseek-ai-DeepSeek-V4.jinja"}
# Differs from V4 only in its reasoning_effort preambles, which the native renderer does not take: checked equal.
V4_FLASH = "deepseek-ai-DeepSeek-V4-Flash-0731.jinja"


def environment():
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                                       extensions=["jinja2.ext.loopcontrols"])
    env.filters["tojson"] = lambda x, ensure_ascii=False, indent=None, separators=None, sort_keys=False: json.dumps(
        x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)
    env.filters["from_json"] = json.loads

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)
    env.globals["raise_exception"] = raise_exception
    return env


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    tdir = sys.argv[1]
    here = os.path.dirname(os.path.abspath(__file__))
    out = sys.argv[2] if len(sys.argv) == 3 else os.path.join(here, "..", "data", "chat_templates", "deepseek_dsml.json")
    env = environment()
    sources, compiled = {}, {}
    for fmt, fname in list(TEMPLATES.items()) + [("v4-flash", V4_FLASH)]:
        with open(os.path.join(tdir, fname), "rb") as f:
            raw = f.read()
        sources[fmt] = {"file": fname, "sha256": hashlib.sha256(raw).hexdigest()}
        compiled[fmt] = env.from_string(raw.decode("utf-8"))
    cases = []
    for fmt in TEMPLATES:
        for name, conv in CONVERSATIONS.items():
            for thinking in (True, False):
                for agp in (True, False):
                    kw = dict(messages=conv["messages"], bos_token=BOS, add_generation_prompt=agp, thinking=thinking)
                    if "tools" in conv:
                        kw["tools"] = conv["tools"]
                    text = compiled[fmt].render(**kw)
                    if fmt == "deepseek-v4":
                        flash = compiled["v4-flash"].render(**kw)
                        assert flash == text, f"V4-Flash-0731 differs from V4 on {name}"
                    cases.append({"format": fmt, "conversation": name, "thinking": thinking,
                                  "add_generation_prompt": agp, "expected": text})
    convs = {name: {"tools": conv.get("tools", []), "messages": conv["messages"]} for name, conv in CONVERSATIONS.items()}
    doc = {"generated_by": "tests/reference/make_template_fixtures.py", "templates": sources, "bos_token": BOS,
           "conversations": convs, "cases": cases}
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    data = json.dumps(doc, ensure_ascii=False, indent=1) + "\n"
    with open(out, "w", encoding="utf-8") as f:
        f.write(data)
    print(f"{out}: {len(cases)} cases, {len(data.encode())} bytes")


if __name__ == "__main__":
    main()
