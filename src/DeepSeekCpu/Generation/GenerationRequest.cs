namespace DeepSeekCpu.Generation;

/// <summary>What a request asks of the generation (the model and prompt aside).</summary>
public sealed record GenerationRequest
{
    /// <summary>Most tokens to generate (reasoning included); generation also ends when the context is full.</summary>
    public int MaxTokens { get; init; } = 2048;
    /// <summary>How each token is chosen; the default is DeepSeek's recommendation for R1.</summary>
    public SamplingOptions Sampling { get; init; } = new();
    /// <summary>Strings that end the answer (OpenAI "stop"); the answer is cut before the first one found.</summary>
    public IReadOnlyList<string> Stop { get; init; } = [];
    /// <summary>Structured output: the answer (not the reasoning) follows this grammar (<see cref="Sequence.Grammar"/>).</summary>
    internal Grammar? Grammar { get; init; }
    /// <summary>Most reasoning tokens before the reasoning is closed (<see cref="Sequence.ReasoningBudget"/>); null: no limit.</summary>
    public int? ReasoningBudget { get; init; }
    /// <summary>-1: no log-probabilities; otherwise each token's, with this many alternatives (<see cref="ChatDelta.Logprob"/>).</summary>
    internal int TopLogprobs { get; init; } = -1;
}
