// A console application on DeepSeekCpu's NuGet packages: loads a model (a .gguf file, a Hugging Face folder, a
// llama2.c checkpoint or a repo id) and streams a greedy answer through Microsoft.Extensions.AI's IChatClient.
//
//   dotnet run --project samples/DeepSeekCpu.Sample -- MODEL [PROMPT] [MAX_TOKENS]
//
// An R1 model reasons before it answers: the reasoning streams as TextReasoningContent, the answer as TextContent.
// Both are shown as they come, the way `deepseek-cpu run` shows them: on a terminal the reasoning is dim between
// "Thinking..." and "...done thinking." ("...reasoning cut off." when MAX_TOKENS ended it); piped, it is framed by
// <think> tags. A model without a chat template (the demo model, stories260K) continues the prompt as plain text,
// so the output is the prompt and its continuation. Either way stdout is what
// `deepseek-cpu run -m MODEL -p PROMPT --temp 0 -n MAX_TOKENS` prints (build/check-packages.sh checks both kinds).
using DeepSeekCpu;
using DeepSeekCpu.Extensions.AI;
using Microsoft.Extensions.AI;

if (args.Length == 0)
{
    Console.Error.WriteLine("usage: DeepSeekCpu.Sample MODEL [PROMPT] [MAX_TOKENS]");
    return 2;
}
string prompt = args.Length > 1 ? args[1] : "Once upon a time";
int maxTokens = args.Length > 2 ? int.Parse(args[2]) : 64;

using IChatClient client = new DeepSeekChatClient(LocalModel.Load(args[0]), slots: 1, contextLength: 512);
var options = new ChatOptions { Temperature = 0, MaxOutputTokens = maxTokens };   // temperature 0: greedy

bool plainText = client.GetService<DeepSeekCpu.Generation.ChatEngine>()?.Tokenizer.HasChatTemplate != true;
if (plainText) Console.Write(prompt);   // a plain continuation: the prompt first, as the CLI echoes it

bool terminal = !Console.IsOutputRedirected;
bool reasoning = false;       // inside the reasoning block
bool atLineStart = true;      // the last character written was a newline (or nothing was written)
bool trimAnswer = false;      // drop the newlines a model writes right after </think>
ChatFinishReason? finish = null;
await foreach (var update in client.GetStreamingResponseAsync(prompt, options))
{
    foreach (var content in update.Contents)
    {
        if (content is TextReasoningContent { Text.Length: > 0 } thought)   // an R1 model's reasoning, as it streams
        {
            if (!reasoning) { Console.Write(terminal ? "\e[2mThinking...\n" : "<think>\n"); reasoning = atLineStart = true; }
            Write(thought.Text);
        }
        else if (content is TextContent { Text.Length: > 0 } text)          // the answer
        {
            if (reasoning) { EndReasoning(cut: false); trimAnswer = true; }
            string t = trimAnswer ? text.Text.TrimStart('\n') : text.Text;
            if (t.Length == 0) continue;
            trimAnswer = false;
            Write(t);
        }
    }
    finish ??= update.FinishReason;
}
if (reasoning) EndReasoning(cut: finish == ChatFinishReason.Length);   // the answer never began
if (!atLineStart) Console.WriteLine();
Console.Error.WriteLine($"[finish: {finish}]");
return 0;

void Write(string s)
{
    Console.Write(s);
    atLineStart = s.EndsWith('\n');
}

void EndReasoning(bool cut)
{
    if (!atLineStart) Console.Write('\n');
    Console.Write(terminal ? (cut ? "...reasoning cut off.\e[0m\n\n" : "...done thinking.\e[0m\n\n") : "</think>\n\n");
    reasoning = false;
    atLineStart = true;
}
