namespace DeepSeekCpu.Generation;

/// <summary>Timing of one generation, for the CLI's statistics and the server's usage numbers.</summary>
public sealed class GenerationStats
{
    public int PromptTokens { get; internal set; }
    public int GeneratedTokens { get; internal set; }
    public TimeSpan PromptTime { get; internal set; }
    public TimeSpan GenerationTime { get; internal set; }
    public TimeSpan TimeToFirstToken { get; internal set; }
    public string FinishReason { get; internal set; } = "length";
    public double PromptTokensPerSecond => PromptTokens / Math.Max(1e-9, PromptTime.TotalSeconds);
    /// <summary>Decode speed: tokens after the first over the time after the first.</summary>
    public double GenerationTokensPerSecond => GeneratedTokens <= 1 ? 0 : (GeneratedTokens - 1) / Math.Max(1e-9, GenerationTime.TotalSeconds);
}
