using DeepSeekCpu.Tokenization;

namespace DeepSeekCpu.Generation;

/// <summary>One piece of streamed output: answer or reasoning text, or (after <see cref="ChatEngine.ReadToolCalls"/>)
/// a tool call, with empty text.</summary>
public readonly record struct ChatDelta(string Text, TextKind Kind)
{
    public ToolCall? Call { get; init; }
}
