using System.Globalization;
using System.Text;

namespace DeepSeekCpu;

/// <summary>
/// A model, tokenizer or config file that cannot be used as it is. The message is one line that names the file,
/// the tensor or key, and what was expected; front ends print it without a stack trace.
/// </summary>
public sealed class ModelFormatException(string message) : Exception(OneLine(message))
{
    internal static ModelFormatException In(string file, string what) => new($"{file}: {what}");

    /// <summary>Longest message kept whole; a longer one (a file's 90 KB "key" quoted in it) keeps its start and end.</summary>
    public const int MaxMessageLength = 1024;

    /// <summary>
    /// Messages quote names and strings from the file, which may hold line breaks or terminal escape sequences:
    /// control characters (C0, DEL, C1) and the Unicode line and paragraph separators are written as \xNN / \uNNNN,
    /// so the message stays one line whatever the file says, and an over-long one is cut in the middle.
    /// </summary>
    public static string OneLine(string text)
    {
        if (text.Length > MaxMessageLength)
            text = $"{text[..700]} … ({text.Length - 1000} characters left out) … {text[^300..]}";
        if (!text.Any(c => char.IsControl(c) || c is '\u2028' or '\u2029')) return text;
        var sb = new StringBuilder(text.Length + 16);
        foreach (char c in text)
        {
            if (char.IsControl(c)) sb.Append(CultureInfo.InvariantCulture, $"\\x{(int)c:x2}");
            else if (c is '\u2028' or '\u2029') sb.Append(CultureInfo.InvariantCulture, $"\\u{(int)c:x4}");
            else sb.Append(c);
        }
        return sb.ToString();
    }
}
