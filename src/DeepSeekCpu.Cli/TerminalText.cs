using System.Globalization;
using System.Text;

namespace DeepSeekCpu.Cli;

/// <summary>
/// Text from a file (tensor names, metadata, JSON values in error messages) made safe to print: a GGUF string may hold
/// escape sequences ("ESC]0;title BEL", "ESC[2J") that a terminal would obey. Control characters (C0, DEL, C1) and the
/// bidirectional overrides (which reorder what is shown) are written as \xNN / \uNNNN, and the text is cut to a bounded
/// length so an error cannot echo a kilobyte of a file.
/// </summary>
internal static class TerminalText
{
    public const int DefaultMax = 400;

    public static string Safe(string text, int max = DefaultMax)
    {
        var sb = new StringBuilder(Math.Min(text.Length, max) + 16);
        int shown = 0;
        foreach (char c in text)
        {
            if (shown >= max)
            {
                sb.Append(CultureInfo.InvariantCulture, $"... ({text.Length - shown} more characters)");
                break;
            }
            if (c < 0x20 || c is >= '\x7f' and <= '\x9f') sb.Append(CultureInfo.InvariantCulture, $"\\x{(int)c:x2}");
            else if (c is >= '\u202a' and <= '\u202e' or >= '\u2066' and <= '\u2069' or '\u200e' or '\u200f' or '\u061c')
                sb.Append(CultureInfo.InvariantCulture, $"\\u{(int)c:x4}");
            else sb.Append(c);
            shown++;
        }
        return sb.ToString();
    }
}
