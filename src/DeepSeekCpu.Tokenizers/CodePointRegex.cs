using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;

namespace DeepSeekCpu.Tokenizers;

/// <summary>
/// A .NET regex run with code-point semantics, as Hugging Face tokenizers (Rust, Oniguruma) and its JS port run
/// pre-tokenizer patterns. .NET's <see cref="Regex"/> matches UTF-16 code units: a character outside the BMP (emoji,
/// mathematical alphanumerics such as '𝔘' U+1D518) is two surrogates of category Cs, so <c>\p{L}</c> or <c>\p{S}</c>
/// never match it and <c>[^\s\p{L}\p{N}]</c> matches each half separately, which splits pre-tokens differently.
/// <para>
/// Fix without rewriting patterns: when the text holds surrogate pairs, match over a "shadow" string with one char
/// per code point, where each astral code point is replaced by a BMP stand-in of the same Unicode general category,
/// then map match positions back. Tokenizer patterns test characters only through categories (<c>\p{..}</c>,
/// <c>\s</c>, <c>\w</c>) and through literal ranges (ASCII, CJK, kana); the stand-ins are chosen outside those
/// ranges, never whitespace, and never case-fold to ASCII, so every construct sees the same class membership.
/// </para>
/// </summary>
internal sealed class CodePointRegex
{
    private static readonly char[] s_standIns = BuildStandIns();
    private readonly Regex _regex;

    public CodePointRegex(string pattern)
    {
        Pattern = pattern;
        // Interpreted, not RegexOptions.Compiled: compiling costs ~80 ms at first use (emit + JIT) and saves under a
        // millisecond per 30k characters of text, which BPE dwarfs (measured on the Qwen2 pattern).
        // The pattern comes from tokenizer.json: one like "(a+)+$" backtracks exponentially, so every match gets a
        // time limit; HfBpeTokenizer turns the timeout into an error naming the file.
        _regex = new Regex(pattern, RegexOptions.CultureInvariant, MatchTimeout);
    }

    /// <summary>The longest one match may take; real pre-tokenizer patterns match a word in microseconds.</summary>
    public static readonly TimeSpan MatchTimeout = TimeSpan.FromSeconds(2);

    public string Pattern { get; }

    /// <summary>Appends the non-empty matches in <paramref name="text"/> as (start, length) in text coordinates.</summary>
    public void Matches(ReadOnlySpan<char> text, List<(int Start, int Length)> matches)
    {
        if (text.IndexOfAnyInRange('\uD800', '\uDFFF') < 0)
        {
            foreach (ValueMatch m in _regex.EnumerateMatches(text))
            {
                if (m.Length > 0)
                    matches.Add((m.Index, m.Length));
            }
            return;
        }

        // shadow[j] stands for the code point starting at text[position[j]]; position[count] = text.Length.
        char[] shadow = ArrayPool<char>.Shared.Rent(text.Length);
        int[] position = ArrayPool<int>.Shared.Rent(text.Length + 1);
        try
        {
            int count = 0;
            for (int i = 0; i < text.Length; count++)
            {
                position[count] = i;
                char c = text[i];
                if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
                {
                    int codePoint = char.ConvertToUtf32(c, text[i + 1]);
                    shadow[count] = s_standIns[(int)CharUnicodeInfo.GetUnicodeCategory(codePoint)];
                    i += 2;
                }
                else
                {
                    shadow[count] = c; // BMP char, or a lone surrogate (kept: the byte-level step writes U+FFFD's bytes)
                    i += 1;
                }
            }
            position[count] = text.Length;

            foreach (ValueMatch m in _regex.EnumerateMatches(shadow.AsSpan(0, count)))
            {
                if (m.Length > 0)
                {
                    int start = position[m.Index];
                    matches.Add((start, position[m.Index + m.Length] - start));
                }
            }
        }
        finally
        {
            ArrayPool<char>.Shared.Return(shadow);
            ArrayPool<int>.Shared.Return(position);
        }
    }

    /// <summary>For each general category, the first BMP char from U+0100 up with that category that is not
    /// whitespace, not kana/CJK (ranges named in DeepSeek-V3's pattern) and does not case-fold to ASCII.</summary>
    private static char[] BuildStandIns()
    {
        int categories = Enum.GetValues<UnicodeCategory>().Length;
        var standIns = new char[categories];
        for (int c = 0x100; c < 0x10000 && Array.IndexOf(standIns, '\0') >= 0; c++)
        {
            char ch = (char)c;
            if (char.IsSurrogate(ch) || char.IsWhiteSpace(ch) || (c >= 0x3040 && c <= 0x30FF) || (c >= 0x4E00 && c <= 0x9FFF))
                continue;
            if (char.ToLowerInvariant(ch) < 0x80 || char.ToUpperInvariant(ch) < 0x80)
                continue; // e.g. KELVIN SIGN folds to 'k': it could match a case-insensitive ASCII literal
            int category = (int)CharUnicodeInfo.GetUnicodeCategory(ch);
            if (standIns[category] == '\0')
                standIns[category] = ch;
        }
        // Categories with no BMP member outside the excluded ranges (none with current Unicode data) fall back to
        // U+FFFD, an "other symbol"; Cs cannot occur for a whole code point.
        for (int i = 0; i < standIns.Length; i++)
        {
            if (standIns[i] == '\0')
                standIns[i] = '\uFFFD';
        }
        return standIns;
    }

    /// <summary>Test hook: the stand-in used for a category.</summary>
    internal static char StandIn(UnicodeCategory category) => s_standIns[(int)category];
}
