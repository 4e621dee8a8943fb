using System.Text;

namespace DeepSeekCpu.Tokenizers;

/// <summary>
/// Unicode canonical normalization (NFC and NFD) in managed code, following UAX #15 "Unicode Normalization Forms":
/// full canonical decomposition, canonical ordering of combining marks, then canonical composition.
/// <para>
/// Why not <see cref="string.Normalize()"/>: the solution runs with InvariantGlobalization, where .NET's normalization
/// returns non-ASCII text unchanged (checked on .NET 10), while Qwen2 / R1-Distill tokenizers normalize to NFC
/// before BPE ("e" + U+0301 must become "é"). The tables (<see cref="NfcData"/>) are generated from the Unicode
/// Character Database by generate_nfc_data.py; Hangul syllables are computed (Unicode Standard §3.12).
/// </para>
/// </summary>
internal static class Nfc
{
    // Hangul syllable arithmetic (Unicode Standard, section 3.12).
    private const int SBase = 0xAC00, LBase = 0x1100, VBase = 0x1161, TBase = 0x11A7;
    private const int LCount = 19, VCount = 21, TCount = 28, NCount = VCount * TCount, SCount = LCount * NCount;

    private static readonly Dictionary<int, (int First, int Second)> s_decompositions = new();
    private static readonly Dictionary<long, int> s_compositions = new();
    private static readonly Dictionary<int, byte> s_combiningClass = new();
    private static readonly HashSet<int> s_nfcUnsafe = new();   // may change under NFC (quick-check "No"/"Maybe", or ccc ≠ 0)

    static Nfc()
    {
        int[] d = NfcData.Decompositions;
        var excluded = new HashSet<int>(NfcData.CompositionExcluded);
        for (int i = 0; i < d.Length; i += 3)
        {
            s_decompositions[d[i]] = (d[i + 1], d[i + 2]);
            if (d[i + 2] >= 0 && !excluded.Contains(d[i]))
            {
                s_compositions[Key(d[i + 1], d[i + 2])] = d[i];
                s_nfcUnsafe.Add(d[i + 2]); // may combine with the character before it
            }
        }
        s_nfcUnsafe.UnionWith(excluded);
        int[] c = NfcData.CombiningClasses;
        for (int i = 0; i < c.Length; i += 3)
        {
            for (int cp = c[i]; cp <= c[i + 1]; cp++)
            {
                s_combiningClass[cp] = (byte)c[i + 2];
                s_nfcUnsafe.Add(cp);
            }
        }
        for (int cp = VBase; cp < VBase + VCount; cp++)
            s_nfcUnsafe.Add(cp);
        for (int cp = TBase + 1; cp < TBase + TCount; cp++)
            s_nfcUnsafe.Add(cp);
    }

    /// <summary>Unicode version of the tables.</summary>
    public static string UnicodeVersion => NfcData.UnicodeVersion;

    /// <summary>NFC: canonical decomposition, then canonical composition.</summary>
    public static string Normalize(string text) => IsNfcQuick(text) ? text : Run(text, compose: true);

    /// <summary>NFD: canonical decomposition with combining marks in canonical order.</summary>
    public static string Decompose(string text)
    {
        foreach (char ch in text)
        {
            if (ch >= 0xC0)
                return Run(text, compose: false);
        }
        return text; // below U+00C0 nothing decomposes or combines
    }

    // UAX #15 quick check: text made only of characters that never change and never combine is already NFC.
    private static bool IsNfcQuick(string text)
    {
        for (int i = 0; i < text.Length; i++)
        {
            char ch = text[i];
            if (ch < 0x300)
                continue;
            int cp = ch;
            if (char.IsHighSurrogate(ch) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
                cp = char.ConvertToUtf32(ch, text[++i]);
            if (s_nfcUnsafe.Contains(cp))
                return false;
        }
        return true;
    }

    private static string Run(string text, bool compose)
    {
        var cps = new List<int>(text.Length + 8);
        for (int i = 0; i < text.Length; i++)
        {
            int cp = text[i];
            if (char.IsHighSurrogate(text[i]) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
                cp = char.ConvertToUtf32(text[i], text[++i]);
            DecomposeInto(cp, cps);
        }
        Reorder(cps);
        if (compose)
            Compose(cps);

        var sb = new StringBuilder(text.Length);
        foreach (int cp in cps)
        {
            if (cp >= 0xD800 && cp <= 0xDFFF)
                sb.Append((char)cp); // a lone surrogate from the input, kept as it was
            else
                sb.Append(new Rune(cp).ToString());
        }
        return sb.ToString();
    }

    private static void DecomposeInto(int cp, List<int> output)
    {
        int s = cp - SBase;
        if (s >= 0 && s < SCount)
        {
            output.Add(LBase + s / NCount);
            output.Add(VBase + s % NCount / TCount);
            if (s % TCount != 0)
                output.Add(TBase + s % TCount);
            return;
        }
        if (s_decompositions.TryGetValue(cp, out var d))
        {
            DecomposeInto(d.First, output);
            if (d.Second >= 0)
                DecomposeInto(d.Second, output);
            return;
        }
        output.Add(cp);
    }

    /// <summary>Canonical ordering: within each run of non-starters, a stable sort by combining class.</summary>
    private static void Reorder(List<int> cps)
    {
        for (int i = 1; i < cps.Count; i++)
        {
            int cc = CombiningClass(cps[i]);
            if (cc == 0)
                continue;
            int j = i;
            int cp = cps[i];
            while (j > 0 && CombiningClass(cps[j - 1]) > cc)
            {
                cps[j] = cps[j - 1];
                j--;
            }
            cps[j] = cp;
        }
    }

    /// <summary>
    /// Canonical composition: each character combines with the last starter unless blocked, i.e. unless some
    /// character between them has class 0 or a class not lower than its own.
    /// </summary>
    private static void Compose(List<int> cps)
    {
        int starter = -1;   // index in the output of the last starter
        int lastClass = 0;  // combining class of the last character written
        int write = 0;
        for (int read = 0; read < cps.Count; read++)
        {
            int cp = cps[read];
            int cc = CombiningClass(cp);
            bool adjacent = starter >= 0 && write - 1 == starter;
            if (starter >= 0 && (adjacent || (lastClass != 0 && lastClass < cc)) && TryCompose(cps[starter], cp, out int composite))
            {
                cps[starter] = composite;
                continue;
            }
            if (cc == 0)
                starter = write;
            lastClass = cc;
            cps[write++] = cp;
        }
        cps.RemoveRange(write, cps.Count - write);
    }

    private static bool TryCompose(int first, int second, out int composite)
    {
        int l = first - LBase, v = second - VBase;
        if (l >= 0 && l < LCount && v >= 0 && v < VCount)
        {
            composite = SBase + (l * VCount + v) * TCount;
            return true;
        }
        int s = first - SBase, t = second - TBase;
        if (s >= 0 && s < SCount && s % TCount == 0 && t > 0 && t < TCount)
        {
            composite = first + t;
            return true;
        }
        return s_compositions.TryGetValue(Key(first, second), out composite);
    }

    private static int CombiningClass(int cp) => cp < 0x300 ? 0 : s_combiningClass.GetValueOrDefault(cp);

    private static long Key(int first, int second) => ((long)first << 21) | (uint)second;
}
