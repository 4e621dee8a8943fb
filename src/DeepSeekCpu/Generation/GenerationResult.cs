using System.Text;

namespace DeepSeekCpu.Generation;

/// <summary>
/// The outcome of one request: the text (answer and reasoning apart), why it ended, token counts and timings. The
/// engine fills it in as the request runs (<see cref="ChatEngine.StreamAsync"/> appends each delta the caller reads);
/// it is final when the stream returns. One instance per request.
/// </summary>
public sealed class GenerationResult
{
    private readonly StringBuilder _content = new(), _reasoning = new();

    /// <summary>The answer text streamed so far (stop strings cut).</summary>
    public string Content => _content.ToString();
    /// <summary>The reasoning text (R1's part before "&lt;/think&gt;").</summary>
    public string Reasoning => _reasoning.ToString();
    /// <summary>Why the generation ended.</summary>
    public FinishReason FinishReason { get; internal set; } = FinishReason.Length;

    /// <summary>The prompt's length in tokens, a reused cached prefix included (OpenAI's usage.prompt_tokens).</summary>
    public int PromptTokens { get; internal set; }
    /// <summary>Of <see cref="PromptTokens"/>, the prefix a slot's cache already held, so not processed again.</summary>
    public int CachedPromptTokens { get; internal set; }
    /// <summary>The prompt tokens the model processed: <see cref="PromptTokens"/> less the cached prefix.</summary>
    public int ProcessedPromptTokens => PromptTokens - CachedPromptTokens;
    /// <summary>Tokens generated (reasoning and a final stop token included; OpenAI's usage.completion_tokens).</summary>
    public int CompletionTokens { get; internal set; }

    /// <summary>From the request's start in its slot to the end of its prompt.</summary>
    public TimeSpan PromptTime { get; internal set; }
    /// <summary>From the end of the prompt to the last token.</summary>
    public TimeSpan GenerationTime { get; internal set; }
    /// <summary>From the request's start in its slot to its first token.</summary>
    public TimeSpan TimeToFirstToken { get; internal set; }
    /// <summary>Prompt processing speed: <see cref="ProcessedPromptTokens"/> over <see cref="PromptTime"/>.</summary>
    public double PromptTokensPerSecond => ProcessedPromptTokens / Math.Max(1e-9, PromptTime.TotalSeconds);
    /// <summary>Decode speed: tokens after the first over the time after the first.</summary>
    public double GenerationTokensPerSecond => CompletionTokens <= 1 ? 0 : (CompletionTokens - 1) / Math.Max(1e-9, GenerationTime.TotalSeconds);

    internal void Append(ChatDelta d) => (d.Kind == TextKind.Answer ? _content : _reasoning).Append(d.Text);
}
