namespace DeepSeekCpu.Generation;

/// <summary>Which part of an R1 answer a piece of text belongs to.</summary>
public enum TextKind
{
    /// <summary>The answer (after "&lt;/think&gt;", or all of it for a model that does not reason).</summary>
    Answer,
    /// <summary>The reasoning between "&lt;think&gt;" and "&lt;/think&gt;".</summary>
    Reasoning,
}
