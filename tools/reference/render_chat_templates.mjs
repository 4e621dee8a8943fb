// Reference renderings of DeepSeek chat templates by an implementation independent of the engine: Hugging Face's
// own JavaScript Jinja (@huggingface/jinja, the engine behind transformers.js apply_chat_template) renders each
// template over a fixed set of conversations, and Hugging Face's tokenizers (@huggingface/tokenizers) encode the
// text with DeepSeek-V3's tokenizer.json (tests/fixtures/tokenizers/deepseek-v3) with R1's two added tokens: R1, R1-0528
// and V3.1 ship the V3 vocabulary with placeholders 128798/128799 renamed "<think>" / "</think>" (not special).
//
// Usage (in a scratch folder outside the repository, never committing node_modules):
//   npm install @huggingface/jinja@0.5.11 @huggingface/tokenizers@0.2.0
//   cp /path/to/repo/tools/reference/render_chat_templates.mjs . && node render_chat_templates.mjs /path/to/repo
// writes tests/fixtures/chat-templates/reference-<name>.jsonl for every <name>.jinja there, and
// reference-tools-<name>.jsonl: conversations with assistant tool_calls and tool results, over those templates and the
// chat_template of tests/fixtures/tokenizers/{r1-distill-qwen (as "r1"), deepseek-v3 (as "v3")}/tokenizer_config.json.
import { Template } from "@huggingface/jinja";
import { Tokenizer } from "@huggingface/tokenizers";
import fs from "node:fs";
import path from "node:path";

const repo = process.argv[2] ?? ".";
const dir = path.join(repo, "tests", "fixtures", "chat-templates");
const tokDir = path.join(repo, "tests", "fixtures", "tokenizers", "deepseek-v3");
const tokJson = JSON.parse(fs.readFileSync(path.join(tokDir, "tokenizer.json"), "utf8"));
for (const added of tokJson.added_tokens)
  if (added.id === 128798 || added.id === 128799) Object.assign(added, { content: added.id === 128798 ? "<think>" : "</think>", special: false });
const tokenizer = new Tokenizer(tokJson,
                                JSON.parse(fs.readFileSync(path.join(tokDir, "tokenizer_config.json"), "utf8")));
const bos = "<｜begin▁of▁sentence｜>";

const u = (content) => ({ role: "user", content });
const a = (content) => ({ role: "assistant", content });
const s = (content) => ({ role: "system", content });
const t = (content) => ({ role: "tool", content });
const conversations = [
  [u("What is 1+1?")],
  [s("You are a concise assistant."), u("Name a prime number.")],
  [s("Be brief."), s("Answer in French."), u("Hello")],
  [u("Hi"), a("<think>\nThe user greets me.\n</think>\n\nHello! How can I help?"), u("Tell me a joke.")],
  [u("Hi"), a("Hello there."), u("Again")],
  [u("Hi"), a("<think>first</think>middle</think>last"), u("Which part stays?")],
  [u("What's the weather in Paris?"), t("{\"temp\": 18}"), a("It is 18 degrees."), u("Thanks")],
  [u("Look both up."), t("result one"), t("result two")],
  [s("Sys"), u("Q1"), a("A1"), u("Q2"), a("<think>\nr2\n</think>\n\nA2")],
  [u("你好，请介绍一下你自己。 🚀")],
  [u("Line one\nline two\n\n  indented"), a("ok"), s("late system"), u("next")],
];

for (const file of fs.readdirSync(dir).filter((f) => f.endsWith(".jinja")).sort()) {
  const name = file.slice(0, -".jinja".length);
  const template = new Template(fs.readFileSync(path.join(dir, file), "utf8"));
  const switches = fs.readFileSync(path.join(dir, file), "utf8").includes("thinking") ? [false, true] : [null];
  const lines = [];
  for (const messages of conversations)
    for (const add_generation_prompt of [true, false])
      for (const thinking of switches) {
        const vars = { messages, add_generation_prompt, bos_token: bos };
        if (thinking !== null) vars.thinking = thinking;
        const text = template.render(vars);
        const ids = tokenizer.encode(text, { add_special_tokens: false }).ids;
        lines.push(JSON.stringify({ messages, add_generation_prompt, thinking, text, ids }));
      }
  fs.writeFileSync(path.join(dir, `reference-${name}.jsonl`), lines.join("\n") + "\n");
  console.log(name, lines.length);
}

// Tool-bearing conversations (OpenAI message shapes: assistant "content": null with "tool_calls", role "tool" results).
const call = (name, args) => ({ type: "function", function: { name, arguments: args } });
const ac = (content, ...tool_calls) => ({ role: "assistant", content, tool_calls });
const toolConversations = [
  [u("What's the weather in Paris?"), ac(null, call("get_weather", "{\"city\": \"Paris\"}")), t("{\"temp\": 18}")],
  [s("Use the tools."), u("Weather in Paris and Rome?"), ac(null, call("get_weather", "{\"city\": \"Paris\"}"), call("get_weather", "{\"city\": \"Rome\"}")),
   t("18"), t("21"), a("Paris 18, Rome 21.")],
  [u("Find x."), ac("Let me look it up.", call("lookup", "{\"q\": \"x\"}")), t("found"), a("<think>ok</think>It is x."), u("Thanks")],
  [u("A then B"), ac(null, call("first", "{}")), t("one"), ac(null, call("second", "{\"n\": 2}")), t("two"), a("done"), u("more?")],
  [u("搜索 🚀"), ac(null, call("search", "{\"q\": \"你好 🚀\", \"k\": [1, 2]}"))],
];
const templates = fs.readdirSync(dir).filter((f) => f.endsWith(".jinja")).sort()
  .map((f) => [f.slice(0, -".jinja".length), fs.readFileSync(path.join(dir, f), "utf8")]);
for (const [name, folder] of [["r1", "r1-distill-qwen"], ["v3", "deepseek-v3"]])
  templates.push([name, JSON.parse(fs.readFileSync(path.join(repo, "tests", "fixtures", "tokenizers", folder, "tokenizer_config.json"), "utf8")).chat_template]);
for (const [name, source] of templates) {
  const template = new Template(source);
  const switches = source.includes("thinking") ? [false, true] : [null];
  const lines = [];
  for (let messages of toolConversations)
    for (const add_generation_prompt of [true, false])
      for (const thinking of switches) {
        const vars = { messages, add_generation_prompt, bos_token: bos };
        if (thinking !== null) vars.thinking = thinking;
        // R1-0528 tests '</think>' in content, which fails on a null content: such lines are rendered with "" instead
        // and say so ("null_content": "empty"); the engine treats the two alike for a turn with tool calls.
        let text, null_content = "null";
        try { text = template.render(vars); }
        catch {
          vars.messages = messages.map((m) => (m.content === null ? { ...m, content: "" } : m));
          text = template.render(vars);
          null_content = "empty";
        }
        const ids = tokenizer.encode(text, { add_special_tokens: false }).ids;
        lines.push(JSON.stringify({ messages, add_generation_prompt, thinking, null_content, text, ids }));
      }
  fs.writeFileSync(path.join(dir, `reference-tools-${name}.jsonl`), lines.join("\n") + "\n");
  console.log("tools", name, lines.length);
}
