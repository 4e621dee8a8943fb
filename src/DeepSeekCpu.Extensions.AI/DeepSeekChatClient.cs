using System.Runtime.CompilerServices;
using DeepSeekCpu.Generation;
using Microsoft.Extensions.AI;
using EngineMessage = DeepSeekCpu.Tokenization.ChatMessage;

namespace DeepSeekCpu.Extensions.AI;

/// <summary>
/// <see cref="IChatClient"/> over a local model (Microsoft.Extensions.AI): messages are rendered with the model's chat
/// template, an R1 model's reasoning arrives as <see cref="TextReasoningContent"/> apart from the answer's
/// <see cref="TextContent"/>, and <see cref="ChatOptions"/> map onto sampling (Temperature, TopP, TopK, Seed,
/// MaxOutputTokens, StopSequences, FrequencyPenalty, PresencePenalty, ResponseFormat; "min_p", "repetition_penalty" and
/// "reasoning_budget" through AdditionalProperties; tools in DeepSeekChatClient.Tools.cs). Concurrent calls
/// take the engine's slots (a conversation's next turn reuses its cached prefix).
/// <code>
/// using IChatClient client = new DeepSeekChatClient(LocalModel.Load("DeepSeek-R1-Distill-Qwen-1.5B-Q4_0.gguf"));
/// var reply = await client.GetResponseAsync("How many r's are in strawberry?");
/// </code>
/// </summary>
public sealed partial class DeepSeekChatClient : IChatClient
{
    private readonly ChatEngine _engine;
    private readonly IDisposable? _owned;
    private readonly ChatClientMetadata _metadata;

    /// <summary>A client over an engine the caller owns.</summary>
    public DeepSeekChatClient(ChatEngine engine, string modelId)
    {
        _engine = engine;
        _metadata = new ChatClientMetadata("deepseek-cpu", null, modelId);
    }

    /// <summary>A client that owns <paramref name="model"/> (disposed with the client), with <paramref name="slots"/> concurrent conversations.</summary>
    public DeepSeekChatClient(LocalModel model, int slots = 1, int contextLength = 0)
        : this(new ChatEngine(model.Model, model.Tokenizer, slots, contextLength),
               Path.GetFileNameWithoutExtension(Path.TrimEndingDirectorySeparator(model.Path)))
    {
        _owned = model;
    }

    /// <summary>Generates the whole answer to <paramref name="messages"/> (reasoning as <see cref="TextReasoningContent"/>, tool calls as <see cref="FunctionCallContent"/>).</summary>
    public async Task<ChatResponse> GetResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null, CancellationToken cancellationToken = default)
    {
        var (prompt, request) = Prepare(messages, options);
        var r = new GenerationResult();
        var answer = new System.Text.StringBuilder();
        var calls = new List<AIContent>();
        await foreach (var d in ChatEngine.ReadToolCalls(_engine.StreamAsync(prompt.Tokens, prompt.StartsInReasoning, request, r, cancellationToken), prompt, cancellationToken).ConfigureAwait(false))
        {
            if (d.Call is { } call) calls.Add(CallContent(call));
            else if (d.Kind == TextKind.Answer) answer.Append(d.Text);
        }
        var contents = new List<AIContent>();
        if (r.Reasoning.Length > 0) contents.Add(new TextReasoningContent(r.Reasoning));
        if (answer.Length > 0 || calls.Count == 0) contents.Add(new TextContent(answer.ToString()));
        contents.AddRange(calls);
        return new ChatResponse(new ChatMessage(ChatRole.Assistant, contents))
        {
            ResponseId = Guid.NewGuid().ToString("N"),
            ModelId = _metadata.DefaultModelId,
            CreatedAt = DateTimeOffset.UtcNow,
            FinishReason = calls.Count > 0 ? ChatFinishReason.ToolCalls : Finish(r),
            Usage = Usage(r.PromptTokens, r.CompletionTokens),
        };
    }

    /// <summary>Streams the answer to <paramref name="messages"/> as it is generated, reasoning first for an R1 model.</summary>
    public async IAsyncEnumerable<ChatResponseUpdate> GetStreamingResponseAsync(IEnumerable<ChatMessage> messages, ChatOptions? options = null,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var (prompt, request) = Prepare(messages, options);
        string id = Guid.NewGuid().ToString("N");
        var created = DateTimeOffset.UtcNow;
        var result = new GenerationResult();
        bool called = false;
        await foreach (var d in ChatEngine.ReadToolCalls(_engine.StreamAsync(prompt.Tokens, prompt.StartsInReasoning, request, result, cancellationToken), prompt, cancellationToken).ConfigureAwait(false))
        {
            if (d.Fragment != null) continue;   // M.E.AI takes whole calls (FunctionCallContent)
            called |= d.Call != null;
            AIContent content = d.Call is { } call ? CallContent(call) : d.Kind == TextKind.Answer ? new TextContent(d.Text) : new TextReasoningContent(d.Text);
            yield return new ChatResponseUpdate(ChatRole.Assistant, [content])
            {
                ResponseId = id, MessageId = id, ModelId = _metadata.DefaultModelId, CreatedAt = created,
            };
        }
        yield return new ChatResponseUpdate(ChatRole.Assistant, [new UsageContent(Usage(result.PromptTokens, result.CompletionTokens))])
        {
            ResponseId = id, MessageId = id, ModelId = _metadata.DefaultModelId, CreatedAt = created,
            FinishReason = called ? ChatFinishReason.ToolCalls : Finish(result),
        };
    }

    /// <summary>The client's <see cref="ChatClientMetadata"/>, the <see cref="ChatEngine"/> it runs on, or itself; null otherwise.</summary>
    public object? GetService(Type serviceType, object? serviceKey = null) =>
        serviceKey != null ? null
        : serviceType == typeof(ChatClientMetadata) ? _metadata
        : serviceType.IsInstanceOfType(this) ? this
        : serviceType.IsInstanceOfType(_engine) ? _engine
        : null;

    /// <summary>Disposes the model when the client owns it (the <see cref="LocalModel"/> constructor).</summary>
    public void Dispose()
    {
        if (_owned == null) return;   // the caller owns the engine
        _engine.Dispose();
        _owned.Dispose();
    }

    /// <summary>M.E.AI's finish reasons: Stop for a stop token or string, Length for the token budget or the context end
    /// (and for a cancelled request, which has no reason of its own there).</summary>
    private static ChatFinishReason Finish(GenerationResult r) => r.FinishReason switch
    {
        FinishReason.Stop => ChatFinishReason.Stop,
        FinishReason.Length or FinishReason.Cancelled => ChatFinishReason.Length,
        _ => throw new ArgumentOutOfRangeException(nameof(r), r.FinishReason, null),
    };

    private static UsageDetails Usage(int prompt, int completion) =>
        new() { InputTokenCount = prompt, OutputTokenCount = completion, TotalTokenCount = prompt + completion };

    /// <summary>
    /// The thinking switch of hybrid templates (V3.1) from ChatOptions.AdditionalProperties: "thinking" (bool, as the
    /// servers' chat_template_kwargs) or "reasoning_effort" ("none" answers directly; low/medium/high think).
    /// </summary>
    private static bool? Thinking(ChatOptions? options)
    {
        if (options?.AdditionalProperties is not { } extra) return null;
        if (extra.TryGetValue("thinking", out var th) && th != null)
            return th is bool b ? b : th is string s && bool.TryParse(s, out bool sb) ? sb
                : throw new ArgumentException($"AdditionalProperties[\"thinking\"] must be true or false (got {th})");
        return extra.TryGetValue("reasoning_effort", out var re) && re != null ? DeepSeekCpu.Tokenization.ThinkingOption.FromReasoningEffort(re.ToString()) : null;
    }

    private (ChatPrompt Prompt, GenerationRequest Request) Prepare(IEnumerable<ChatMessage> messages, ChatOptions? options)
    {
        var list = new List<EngineMessage>();
        if (options?.Instructions is { Length: > 0 } instructions) list.Add(new EngineMessage("system", instructions));
        foreach (var m in messages) list.AddRange(ToEngine(m));

        var sampling = new SamplingOptions();
        if (options?.Temperature is float t) sampling = sampling with { Temperature = t };
        if (options?.TopP is float p) sampling = sampling with { TopP = p };
        if (options?.TopK is int k) sampling = sampling with { TopK = k };
        if (options?.Seed is long s) sampling = sampling with { Seed = unchecked((ulong)s) };
        if (options?.FrequencyPenalty is float fp) sampling = sampling with { FrequencyPenalty = fp };
        if (options?.PresencePenalty is float pp) sampling = sampling with { PresencePenalty = pp };
        if (options?.AdditionalProperties is { } extra)
        {
            if (extra.TryGetValue("min_p", out var mp) && mp != null) sampling = sampling with { MinP = Convert.ToSingle(mp, System.Globalization.CultureInfo.InvariantCulture) };
            if (extra.TryGetValue("repetition_penalty", out var rp) && rp != null) sampling = sampling with { RepetitionPenalty = Convert.ToSingle(rp, System.Globalization.CultureInfo.InvariantCulture) };
        }
        var request = new GenerationRequest
        {
            MaxTokens = options?.MaxOutputTokens ?? int.MaxValue,   // what the context leaves (capped by the engine)
            Sampling = sampling,
            Stop = options?.StopSequences?.ToArray() ?? [],
            Grammar = ResponseGrammar(options),
            ReasoningBudget = ReasoningBudget(options),
        };
        var prompt = _engine.PrepareChat(list, Thinking(options), Tools(options));
        _engine.Check(prompt.Tokens, request);
        return (prompt, request);
    }
}
