namespace DeepSeekCpu.Generation;

/// <summary>Which part of an R1 answer a piece of text belongs to.</summary>
public enum TextKind { Answer, Reasoning }
