namespace DeepSeekCpu.Generation;

/// <summary>One generated token and the text it completes (may be empty while a UTF-8 character is split).</summary>
internal readonly record struct GeneratedToken(int Id, string Text, TextKind Kind);
