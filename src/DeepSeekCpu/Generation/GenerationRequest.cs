namespace DeepSeekCpu.Generation;

/// <summary>What a request asks of the generation (the model and prompt aside).</summary>
public sealed record GenerationRequest
{
    /// <summary>Most tokens to generate (reasoning included); generation also ends when the context is full.</summary>
    public int MaxTokens { get; init; } = 2048;
    public SamplingOptions Sampling { get; init; } = new();
    /// <summary>Strings that end the answer (OpenAI "stop"); the answer is cut before the first one found.</summary>
    public IReadOnlyList<string> Stop { get; init; } = [];
}
