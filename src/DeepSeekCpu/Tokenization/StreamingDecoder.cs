using System.Text;

namespace DeepSeekCpu.Tokenization;

/// <summary>
/// Turns generated token ids into text as they arrive. Byte-level BPE tokens are UTF-8 fragments: an emoji or a CJK
/// character is often split over two or three tokens, so decoding each token alone would print U+FFFD. This decoder
/// holds back the bytes of a character that is still incomplete and emits only whole characters. Bytes that can never
/// become valid UTF-8 are emitted at once as U+FFFD (the same replacement a full <see cref="ITokenizer.Decode"/> makes),
/// so the concatenation of everything returned, plus <see cref="Flush"/>, equals the decode of the whole sequence.
/// Not thread-safe: one instance per generation stream.
/// </summary>
internal sealed class StreamingDecoder
{
    private readonly ITokenizer _tokenizer;
    private readonly IContextualTokenizer? _contextual;
    private byte[] _buffer = new byte[64];
    private int _pending;      // held-back bytes of an incomplete character, at _buffer[0.._pending)
    private int _previousId;

    /// <param name="tokenizer">Supplies each token's bytes.</param>
    /// <param name="previousId">The token before the first one appended (e.g. the last prompt token), or -1.</param>
    public StreamingDecoder(ITokenizer tokenizer, int previousId = -1)
    {
        _tokenizer = tokenizer ?? throw new ArgumentNullException(nameof(tokenizer));
        _contextual = tokenizer as IContextualTokenizer;
        _previousId = previousId;
    }

    /// <summary>True when bytes of an unfinished character are held back.</summary>
    public bool HasPendingBytes => _pending > 0;

    /// <summary>Adds one token; returns the text that is now complete (often empty, never a broken character).</summary>
    public string Append(int id)
    {
        ReadOnlySpan<byte> piece = _contextual is not null ? _contextual.TokenBytes(id, _previousId) : _tokenizer.TokenBytes(id);
        _previousId = id;
        if (piece.IsEmpty)
            return string.Empty;

        int total = _pending + piece.Length;
        if (total > _buffer.Length)
            Array.Resize(ref _buffer, Math.Max(total, _buffer.Length * 2));
        piece.CopyTo(_buffer.AsSpan(_pending));

        int keep = IncompleteTailLength(_buffer.AsSpan(0, total));
        int emit = total - keep;
        string text = emit == 0 ? string.Empty : Encoding.UTF8.GetString(_buffer, 0, emit);
        _buffer.AsSpan(emit, keep).CopyTo(_buffer);
        _pending = keep;
        return text;
    }

    /// <summary>Ends the stream: returns held-back bytes, each broken sequence as U+FFFD, and clears them.</summary>
    public string Flush()
    {
        string text = _pending == 0 ? string.Empty : Encoding.UTF8.GetString(_buffer, 0, _pending);
        _pending = 0;
        return text;
    }

    /// <summary>Forgets held-back bytes and starts a new stream.</summary>
    public void Reset(int previousId = -1)
    {
        _pending = 0;
        _previousId = previousId;
    }

    /// <summary>
    /// Length of the trailing bytes that form a proper prefix of a valid UTF-8 sequence (so more bytes may complete
    /// it), or 0. Validity follows the Unicode Standard's table of well-formed UTF-8 byte sequences (Table 3-7): the
    /// second byte after E0, ED, F0, F4 has a narrower range, which rules out overlongs, surrogates and > U+10FFFF.
    /// </summary>
    internal static int IncompleteTailLength(ReadOnlySpan<byte> bytes)
    {
        int limit = Math.Min(3, bytes.Length);
        for (int k = 1; k <= limit; k++)
        {
            byte lead = bytes[^k];
            if ((lead & 0xC0) == 0x80)
                continue; // continuation byte: the lead is further back

            int needed = lead switch
            {
                >= 0xC2 and <= 0xDF => 2,
                >= 0xE0 and <= 0xEF => 3,
                >= 0xF0 and <= 0xF4 => 4,
                _ => 1, // ASCII, or a byte that can never start a sequence
            };
            if (needed <= k)
                return 0; // complete (or too long, hence invalid and emitted now)
            if (k >= 2)
            {
                byte second = bytes[^(k - 1)];
                (byte low, byte high) = lead switch
                {
                    0xE0 => ((byte)0xA0, (byte)0xBF),
                    0xED => ((byte)0x80, (byte)0x9F),
                    0xF0 => ((byte)0x90, (byte)0xBF),
                    0xF4 => ((byte)0x80, (byte)0x8F),
                    _ => ((byte)0x80, (byte)0xBF),
                };
                if (second < low || second > high)
                    return 0; // can never complete: emit now, the decoder writes U+FFFD
            }
            return k;
        }
        return 0;
    }
}
