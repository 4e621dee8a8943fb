using System.Text;
using System.Text.Json.Nodes;
using DeepSeekCpu.Generation;
using DeepSeekCpu.Tokenization;

namespace DeepSeekCpu.Server;

/// <summary>
/// Whole (not streamed) answers with OpenAI's n choices and logprobs: the choices run one after another, each with
/// seed + index when a seed is given, so each reuses the prompt's cached prefix; usage counts the prompt once and
/// every choice's tokens. Log-probabilities are those of the answer tokens (chat: <c>logprobs.content</c> entries with
/// token, logprob, bytes and top_logprobs; completions: tokens, token_logprobs, top_logprobs and text_offset).
/// </summary>
internal static partial class OpenAiServer
{
    /// <summary>Checks the fields that depend on the model: tools need a template with a call format, logit_bias ids
    /// must be tokens of its vocabulary.</summary>
    private static void CheckAgainstModel(ApiRequest req, ChatEngine engine)
    {
        if (req.Tools is { Active: true } && engine.Tokenizer.ChatTemplate?.ToolCallFormat == null)
            throw new ApiError(400, "this model's chat template has no tool-call format (tools work with the DeepSeek R1/V3/V3-0324/R1-0528/V3.1 templates and the V3.2/V4 encodings)", "tools");
        if (req.MaxBiasedToken >= engine.Tokenizer.VocabSize)
            throw new ApiError(400, $"logit_bias names token {req.MaxBiasedToken}, but the vocabulary has {engine.Tokenizer.VocabSize} tokens", "logit_bias");
    }

    private static async Task<(JsonArray Choices, JsonObject Usage)> Choices(ChatEngine engine, bool chat, ApiRequest req, ChatPrompt prompt,
        GenerationResult first, CancellationToken cancel)
    {
        var choices = new JsonArray();
        int completion = 0;
        for (int i = 0; i < req.Choices; i++)
        {
            var result = i == 0 ? first : new GenerationResult();
            var request = req.Generation;
            if (i > 0 && request.Sampling.Seed is ulong seed) request = request with { Sampling = request.Sampling with { Seed = seed + (ulong)i } };
            var text = new StringBuilder();
            var calls = new List<ToolCall>();
            var logprobs = new List<TokenLogprob>();
            await foreach (var d in ChatEngine.ReadToolCalls(engine.StreamAsync(prompt.Tokens, prompt.StartsInReasoning, request, result, cancel), prompt, cancel))
            {
                if (d.Call is { } call) calls.Add(call);
                else if (d.Logprob is { } lp) { if (d.Kind == TextKind.Answer) logprobs.Add(lp); }
                else if (d.Kind == TextKind.Answer) text.Append(d.Text);
            }
            completion += result.CompletionTokens;
            JsonNode? lps = request.TopLogprobs >= 0 ? Logprobs(engine.Tokenizer, logprobs, chat) : null;
            choices.Add(chat   // as JsonNode: JsonArray.Add<JsonObject> would take the reflection-based JsonValue path
                ? (JsonNode)new JsonObject { ["index"] = i, ["message"] = Message(text.ToString(), result.Reasoning, calls), ["logprobs"] = lps, ["finish_reason"] = Finish(result, calls.Count) }
                : new JsonObject { ["index"] = i, ["text"] = result.Reasoning + result.Content, ["logprobs"] = lps, ["finish_reason"] = Finish(result) });
        }
        var usage = new JsonObject
        {
            ["prompt_tokens"] = first.PromptTokens, ["completion_tokens"] = completion, ["total_tokens"] = first.PromptTokens + completion,
        };
        return (choices, usage);
    }

    /// <summary>OpenAI's logprobs object for <paramref name="tokens"/> (chat or completions shape).</summary>
    private static JsonObject Logprobs(ITokenizer tok, List<TokenLogprob> tokens, bool chat)
    {
        string Text(int id) => Encoding.UTF8.GetString(tok.TokenBytes(id));
        JsonArray Bytes(int id) => new([.. tok.TokenBytes(id).ToArray().Select(b => (JsonNode)(int)b)]);
        if (chat)
            return new JsonObject
            {
                ["content"] = new JsonArray([.. tokens.Select(t => (JsonNode)new JsonObject
                {
                    ["token"] = Text(t.Id), ["logprob"] = t.Logprob, ["bytes"] = Bytes(t.Id),
                    ["top_logprobs"] = new JsonArray([.. t.Top.Select(a => (JsonNode)new JsonObject
                    {
                        ["token"] = Text(a.Id), ["logprob"] = a.Logprob, ["bytes"] = Bytes(a.Id),
                    })]),
                })]),
            };
        var offsets = new JsonArray();
        int offset = 0;
        foreach (var t in tokens) { offsets.Add((JsonNode)offset); offset += Text(t.Id).Length; }
        return new JsonObject
        {
            ["tokens"] = new JsonArray([.. tokens.Select(t => (JsonNode)Text(t.Id))]),
            ["token_logprobs"] = new JsonArray([.. tokens.Select(t => (JsonNode)t.Logprob)]),
            ["top_logprobs"] = new JsonArray([.. tokens.Select(t =>
            {
                var o = new JsonObject();
                foreach (var a in t.Top) o[Text(a.Id)] = a.Logprob;
                return (JsonNode)o;
            })]),
            ["text_offset"] = offsets,
        };
    }
}
