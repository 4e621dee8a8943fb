namespace DeepSeekCpu.Tokenization;

/// <summary>
/// Optional for tokenizers whose token text depends on the token before it. SentencePiece-style decoders (llama2.c)
/// drop the leading space of the first piece after BOS; <see cref="StreamingDecoder"/> uses this when present.
/// </summary>
internal interface IContextualTokenizer
{
    /// <summary>The bytes <paramref name="id"/> stands for right after <paramref name="previousId"/> (-1: none).</summary>
    ReadOnlySpan<byte> TokenBytes(int id, int previousId);
}
