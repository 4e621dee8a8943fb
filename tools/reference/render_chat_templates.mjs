// Reference renderings of DeepSeek chat templates by an implementation independent of the engine: Hugging Face's
// own JavaScript Jinja (@huggingface/jinja, the engine behind transformers.js apply_chat_template) renders each
// template over a fixed set of conversations, and Hugging Face's tokenizers (@huggingface/tokenizers) encode the
// text with DeepSeek-V3's tokenizer.json (tests/fixtures/tokenizers/deepseek-v3) with R1's two added tokens: R1, R1-0528
// and V3.1 ship the V3 vocabulary with placeholders 128798/128799 renamed "<think>" / "</think>" (not special).
//
// Usage (in a scratch folder outside the repository, never committing node_modules):
//   npm install @huggingface/jinja@0.5.11 @huggingface/tokenizers@0.2.0
//   cp /path/to/repo/tools/reference/render_chat_templates.mjs . && node render_chat_templates.mjs /path/to/repo
// writes tests/fixtures/chat-templates/reference-<name>.jsonl for every <name>.jinja there.
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
