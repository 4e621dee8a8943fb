using DeepSeekCpu.Tokenization;

namespace DeepSeekCpu.Generation;

/// <summary>One piece of streamed output: answer or reasoning text, or (after <see cref="ChatEngine.ReadToolCalls"/>)
/// a tool call or a piece of one, with empty text.</summary>
/// <param name="Text">The text of this piece (possibly several tokens' worth: characters are never split).</param>
/// <param name="Kind">Whether it is answer or reasoning.</param>
public readonly record struct ChatDelta(string Text, TextKind Kind)
{
    internal ToolCall? Call { get; init; }
    /// <summary>A piece of a call as it is generated (start, arguments, abandoned), before the whole <see cref="Call"/>.</summary>
    internal ToolCallFragment? Fragment { get; init; }
    /// <summary>A token's log-probabilities (requests with <see cref="GenerationRequest.TopLogprobs"/> ≥ 0), in a delta
    /// of its own just before the text of that token's step.</summary>
    internal TokenLogprob? Logprob { get; init; }
}
