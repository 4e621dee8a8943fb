namespace DeepSeekCpu.Tokenizers;

/// <summary>
/// The subset of Hugging Face normalizers that byte-level BPE tokenizers use: canonical Unicode normalization (NFC,
/// NFD) and lowercasing, possibly in a <c>Sequence</c>. R1-Distill-Qwen uses NFC; DeepSeek-V3 an empty Sequence.
/// Normalization is our own (<see cref="Nfc"/>): under InvariantGlobalization .NET's string.Normalize is a no-op.
/// </summary>
internal sealed class HfNormalizer
{
    public enum Kind { Nfc, Nfd, Lowercase }

    private readonly Kind[] _steps;

    public HfNormalizer(IEnumerable<Kind> steps) => _steps = steps.ToArray();

    public bool IsIdentity => _steps.Length == 0;

    public override string ToString() => _steps.Length == 0 ? "none" : string.Join(" → ", _steps);

    public string Normalize(string text)
    {
        foreach (Kind step in _steps)
        {
            text = step switch
            {
                Kind.Nfc => Nfc.Normalize(text),
                Kind.Nfd => Nfc.Decompose(text),
                Kind.Lowercase => text.ToLowerInvariant(),
                _ => text,
            };
        }
        return text;
    }
}
