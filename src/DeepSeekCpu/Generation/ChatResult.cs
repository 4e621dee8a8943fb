namespace DeepSeekCpu.Generation;

/// <summary>A finished request: the answer, the reasoning apart, why it ended and the token counts.</summary>
public sealed record ChatResult(string Content, string Reasoning, string FinishReason, int PromptTokens, int CompletionTokens);
