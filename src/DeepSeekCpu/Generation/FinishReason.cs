namespace DeepSeekCpu.Generation;

/// <summary>Why a generation ended. Front ends map it onto their own vocabulary (OpenAI's "stop"/"length", M.E.AI's
/// <c>ChatFinishReason</c>, the CLI's statistics line).</summary>
public enum FinishReason
{
    /// <summary>The token budget (max tokens) or the end of the context.</summary>
    Length,
    /// <summary>A stop token (end of sequence, end of turn) or one of the request's stop strings.</summary>
    Stop,
    /// <summary>The caller cancelled or stopped reading.</summary>
    Cancelled,
}
