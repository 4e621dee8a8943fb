namespace DeepSeekCpu.Generation;

/// <summary>One piece of streamed output: answer or reasoning text.</summary>
public readonly record struct ChatDelta(string Text, TextKind Kind);
