namespace DeepSeekCpu.Tokenizers;

/// <summary>
/// GPT-2's reversible map between bytes and printable characters (<c>bytes_to_unicode</c> in openai/gpt-2
/// <c>encoder.py</c>, used by Hugging Face's ByteLevel pre-tokenizer/decoder and by llama.cpp for "gpt2" vocabularies).
/// Bytes that are printable Latin-1 ('!'..'~', '¡'..'¬', '®'..'ÿ') map to themselves; the other 68 bytes map, in
/// increasing order, to U+0100, U+0101, … so that vocabulary strings never hold spaces or control characters
/// (space becomes 'Ġ' U+0120, newline 'Ċ' U+010A).
/// </summary>
internal static class ByteLevelAlphabet
{
    /// <summary>Character standing for each byte.</summary>
    public static readonly char[] ByteToChar = BuildByteToChar();

    /// <summary>Byte for each character up to U+0143, or -1 when the character is not in the alphabet.</summary>
    private static readonly short[] s_charToByte = BuildCharToByte();

    public static bool TryGetByte(char c, out byte value)
    {
        if (c < s_charToByte.Length && s_charToByte[c] >= 0)
        {
            value = (byte)s_charToByte[c];
            return true;
        }
        value = 0;
        return false;
    }

    /// <summary>Writes the alphabet characters of UTF-8 <paramref name="utf8"/> into <paramref name="destination"/>.</summary>
    public static void Map(ReadOnlySpan<byte> utf8, Span<char> destination)
    {
        for (int i = 0; i < utf8.Length; i++)
            destination[i] = ByteToChar[utf8[i]];
    }

    private static bool IsPrintable(int b) => (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);

    private static char[] BuildByteToChar()
    {
        var map = new char[256];
        int next = 0;
        for (int b = 0; b < 256; b++)
            map[b] = IsPrintable(b) ? (char)b : (char)(256 + next++);
        return map;
    }

    private static short[] BuildCharToByte()
    {
        var map = new short[256 + 68];
        Array.Fill(map, (short)-1);
        for (int b = 0; b < 256; b++)
            map[ByteToChar[b]] = (short)b;
        return map;
    }
}
