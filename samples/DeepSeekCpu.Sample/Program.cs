// A console application on DeepSeekCpu's NuGet packages: loads a model (a .gguf file, a Hugging Face folder, a
// llama2.c checkpoint or a repo id) and streams a greedy answer through Microsoft.Extensions.AI's IChatClient.
//
//   dotnet run --project samples/DeepSeekCpu.Sample -- MODEL [PROMPT] [MAX_TOKENS]
//
// A model without a chat template (the demo model, stories260K) continues the prompt as plain text, so the output is
// the prompt and its continuation, as `deepseek-cpu run -p PROMPT --temp 0 -n MAX_TOKENS` prints it.
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

bool plainText = client.GetService<DeepSeekCpu.Generation.ChatEngine>()?.Tokenizer.ChatTemplate == null;
if (plainText) Console.Write(prompt);   // a plain continuation: the prompt first, as the CLI echoes it
ChatFinishReason? finish = null;
await foreach (var update in client.GetStreamingResponseAsync(prompt, options))
{
    foreach (var content in update.Contents)
        if (content is TextContent text) Console.Write(text.Text);                  // the answer
        else if (content is TextReasoningContent thought) Console.Error.Write(thought.Text);   // an R1 model's reasoning
    finish ??= update.FinishReason;
}
Console.WriteLine();
Console.Error.WriteLine($"[finish: {finish}]");
return 0;
