using System.Globalization;
using System.Numerics;
using System.Text;
using System.Text.Json;

namespace DeepSeekCpu.Tokenization;

/// <summary>
/// JSON written the way Python's <c>json.dumps(value, ensure_ascii=False)</c> writes a value that <c>json.loads</c>
/// read: ", " between items, ": " after keys, non-ASCII characters as they are, integers as their digits, other numbers
/// as Python's <c>repr(float)</c> (1e3 becomes 1000.0, 2.5e-5 becomes 2.5e-05). DeepSeek's V3.2 and V4 encoders
/// (encoding_dsv32.py / encoding_dsv4.py, <c>to_json</c>) put tool schemas and non-string call arguments into the prompt
/// this way, so a rendering matches theirs character for character.
/// </summary>
internal static class PythonJson
{
    public static string Serialize(JsonElement value)
    {
        var sb = new StringBuilder();
        Write(sb, value);
        return sb.ToString();
    }

    public static void Write(StringBuilder sb, JsonElement value)
    {
        switch (value.ValueKind)
        {
            case JsonValueKind.Object:
                sb.Append('{');
                bool first = true;
                foreach (var p in value.EnumerateObject())
                {
                    if (!first) sb.Append(", ");
                    first = false;
                    WriteString(sb, p.Name);
                    sb.Append(": ");
                    Write(sb, p.Value);
                }
                sb.Append('}');
                break;
            case JsonValueKind.Array:
                sb.Append('[');
                int i = 0;
                foreach (var item in value.EnumerateArray())
                {
                    if (i++ > 0) sb.Append(", ");
                    Write(sb, item);
                }
                sb.Append(']');
                break;
            case JsonValueKind.String: WriteString(sb, value.GetString()!); break;
            case JsonValueKind.Number: WriteNumber(sb, value.GetRawText()); break;
            case JsonValueKind.True: sb.Append("true"); break;
            case JsonValueKind.False: sb.Append("false"); break;
            default: sb.Append("null"); break;
        }
    }

    /// <summary>A string literal: quote, backslash and the control characters escaped (\n \r \t \b \f, others \u00XX).</summary>
    public static void WriteString(StringBuilder sb, string s)
    {
        sb.Append('"');
        AppendEscaped(sb, s);
        sb.Append('"');
    }

    /// <summary>The inside of a string literal (the escaping is per character, so pieces of a string escape alike).</summary>
    public static void AppendEscaped(StringBuilder sb, ReadOnlySpan<char> s)
    {
        foreach (char c in s)
        {
            switch (c)
            {
                case '"': sb.Append("\\\""); break;
                case '\\': sb.Append("\\\\"); break;
                case '\n': sb.Append("\\n"); break;
                case '\r': sb.Append("\\r"); break;
                case '\t': sb.Append("\\t"); break;
                case '\b': sb.Append("\\b"); break;
                case '\f': sb.Append("\\f"); break;
                default:
                    if (c < 0x20) sb.Append("\\u").Append(((int)c).ToString("x4", CultureInfo.InvariantCulture));
                    else sb.Append(c);
                    break;
            }
        }
    }

    /// <summary>A JSON number as Python prints what json.loads made of it: an int (no '.', 'e') or a float.</summary>
    private static void WriteNumber(StringBuilder sb, string raw)
    {
        if (raw.AsSpan().IndexOfAny('.', 'e', 'E') < 0)
        {
            sb.Append(BigInteger.Parse(raw, CultureInfo.InvariantCulture).ToString(CultureInfo.InvariantCulture));
            return;
        }
        double d = double.Parse(raw, NumberStyles.Float, CultureInfo.InvariantCulture);
        sb.Append(FloatRepr(d));
    }

    /// <summary>
    /// Python's <c>repr(float)</c>: the shortest digits that round-trip, in fixed notation (with ".0" when integral)
    /// while the decimal exponent is in [-4, 16), otherwise as d.ddde±XX with at least two exponent digits.
    /// </summary>
    public static string FloatRepr(double d)
    {
        if (double.IsPositiveInfinity(d)) return "Infinity";
        if (double.IsNegativeInfinity(d)) return "-Infinity";
        if (double.IsNaN(d)) return "NaN";
        string sign = d < 0 || (d == 0 && double.IsNegative(d)) ? "-" : "";
        if (d == 0) return sign + "0.0";
        // .NET's round-trip format is also shortest: "1E+16", "2.5E-05", "1000", "0.0001"
        string r = Math.Abs(d).ToString("R", CultureInfo.InvariantCulture);
        int e = r.IndexOf('E');
        string mantissa = e < 0 ? r : r[..e];
        int exponent = e < 0 ? 0 : int.Parse(r[(e + 1)..], NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture);
        int dot = mantissa.IndexOf('.');
        string digits = dot < 0 ? mantissa : mantissa.Remove(dot, 1);
        int point = (dot < 0 ? mantissa.Length : dot) + exponent;   // the decimal point sits after this many digits
        int lead = digits.Length - digits.TrimStart('0').Length;
        digits = digits[lead..].TrimEnd('0');
        point -= lead;
        int sci = point - 1;
        if (sci is >= -4 and < 16)
        {
            if (point <= 0) return sign + "0." + new string('0', -point) + digits;
            if (point >= digits.Length) return sign + digits + new string('0', point - digits.Length) + ".0";
            return sign + digits[..point] + "." + digits[point..];
        }
        string m = digits.Length > 1 ? digits[0] + "." + digits[1..] : digits;
        return sign + m + "e" + (sci < 0 ? "-" : "+") + Math.Abs(sci).ToString("00", CultureInfo.InvariantCulture);
    }
}
