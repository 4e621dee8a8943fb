using System.Text;
using System.Text.Json;

namespace DeepSeekCpu.Tokenization;

/// <summary>
/// DSML calls (V3.2, V4; <see cref="Dsml"/>), read as DeepSeek's decoders read them (parse_tool_calls and
/// decode_dsml_to_arguments in encoding_dsv32.py / encoding_dsv4.py): the answer's text ends where the block begins
/// (the blank line before it is not text), each invoke is a call, and its arguments are the JSON object
/// <c>{"KEY": VALUE, ...}</c> in the parameters' order, a string="true" value written as a JSON string, a
/// string="false" value as it is (it must be JSON). Where DeepSeek's decoder asks for exactly "\n" between tags, any
/// white space is accepted here. A call that breaks the markup (an unknown tool, a duplicate parameter, a string
/// attribute other than true/false, a value that is not JSON) ends the block: it and what follows are text.
/// </summary>
internal sealed partial class ToolCallParser
{
    private int _prefix;   // length of the block's opening (white space before it and its tag) at the start of _buf

    private void PushDsml(string text, List<ToolCallEvent> output)
    {
        _buf.Append(text);
        string open = Dsml.BlockOpen(format), close = Dsml.BlockClose(format);
        while (true)
        {
            string s = _buf.ToString();
            if (!_inside)
            {
                int at = s.IndexOf(open, StringComparison.Ordinal);
                // the white space before the block belongs to it: held back until what follows it is known
                int keep = at < 0 ? HeldBack(s, open) : s.Length - at;
                int end = s.Length - keep, ws = 0;
                while (end - ws > 0 && char.IsWhiteSpace(s[end - ws - 1])) ws++;
                Emit(output, s[..(end - ws)]);
                _buf.Remove(0, end - ws);
                if (at < 0) return;
                _inside = true; _markerConsumed = false; _prefix = ws + open.Length;
                continue;
            }
            int from = _markerConsumed ? 0 : _prefix, lead = from;
            while (lead < s.Length && char.IsWhiteSpace(s[lead])) lead++;
            string rest = s[lead..];
            if (rest.StartsWith(close, StringComparison.Ordinal))
            {
                _buf.Remove(0, lead + close.Length);   // the block's end; what follows is text again
                _inside = false;
                continue;
            }
            if (close.StartsWith(rest, StringComparison.Ordinal)) return;   // the block's end (or the next invoke) still arriving
            var r = ReadInvoke(rest);
            if (r.Status == InvokeStatus.Malformed)
            {
                if (_started && !_abandoned) Abandon(output);
                Emit(output, s);   // the broken call and the rest of the block are text
                _buf.Clear();
                _inside = false;
                ResetCall();
                return;
            }
            if (r.Name != null && !_started) StartCall(r.Name, output);
            Advance(r.Arguments, output);
            if (r.Status == InvokeStatus.Incomplete) return;
            FinishCall(new ToolCall(_callId!, r.Name!, r.Arguments), s[..(lead + r.Length)], output);
            _buf.Remove(0, lead + r.Length);
            _markerConsumed = true;
        }
    }

    private enum InvokeStatus { Incomplete, Complete, Malformed }

    /// <summary>
    /// One invoke read from the start of <paramref name="t"/>: Complete with its length, Incomplete while it may still
    /// become one (with the name once its tag is whole, and the arguments as far as they are certain), or Malformed.
    /// </summary>
    private (InvokeStatus Status, string? Name, string Arguments, int Length) ReadInvoke(string t)
    {
        var args = new StringBuilder("{");
        var keys = new HashSet<string>(StringComparer.Ordinal);
        (InvokeStatus, string?, string, int) Wait(string? name) => (InvokeStatus.Incomplete, name, name == null ? "" : args.ToString(), 0);
        (InvokeStatus, string?, string, int) Bad() => (InvokeStatus.Malformed, null, "", 0);

        int pos = 0;
        switch (Literal(t, ref pos, Dsml.InvokeOpen)) { case false: return Bad(); case null: return Wait(null); }
        int quote = t.IndexOf('"', pos);
        if (quote < 0) return t.Length - pos > 256 ? Bad() : Wait(null);
        string name = t[pos..quote];
        pos = quote + 1;
        switch (Literal(t, ref pos, ">")) { case false: return Bad(); case null: return Wait(null); }
        if (name.Length == 0 || (names != null && !names.Contains(name))) return Bad();
        while (true)
        {
            while (pos < t.Length && char.IsWhiteSpace(t[pos])) pos++;
            if (pos == t.Length) return Wait(name);
            var end = Literal(t, ref pos, Dsml.InvokeClose);
            if (end == true)
            {
                args.Append('}');
                return (InvokeStatus.Complete, name, args.ToString(), pos);
            }
            if (end == null) return Wait(name);
            switch (Literal(t, ref pos, Dsml.ParameterOpen)) { case false: return Bad(); case null: return Wait(name); }
            quote = t.IndexOf('"', pos);
            if (quote < 0) return t.Length - pos > 256 ? Bad() : Wait(name);
            string key = t[pos..quote];
            pos = quote + 1;
            switch (Literal(t, ref pos, " string=\"")) { case false: return Bad(); case null: return Wait(name); }
            bool isString;
            if (Literal(t, ref pos, "true\">") is { } yes && yes) isString = true;
            else if (Literal(t, ref pos, "false\">") is { } no && no) isString = false;
            else if (("true\">".StartsWith(t[pos..], StringComparison.Ordinal) || "false\">".StartsWith(t[pos..], StringComparison.Ordinal))) return Wait(name);
            else return Bad();
            if (!keys.Add(key)) return Bad();   // DeepSeek's decoder: "Duplicate parameter name"
            if (keys.Count > 1) args.Append(", ");
            PythonJson.WriteString(args, key);
            args.Append(": ");
            int valueEnd = t.IndexOf(Dsml.ParameterClose, pos, StringComparison.Ordinal);
            if (valueEnd < 0)
            {
                // a string streams as it comes (escaped), a JSON value only once whole
                if (isString) PythonJson.AppendEscaped(args.Append('"'), t.AsSpan(pos, t.Length - pos - HeldBack(t[pos..], Dsml.ParameterClose)));
                return Wait(name);
            }
            string value = t[pos..valueEnd];
            if (isString) PythonJson.WriteString(args, value);
            else if (IsJsonValue(value)) args.Append(value);
            else return Bad();
            pos = valueEnd + Dsml.ParameterClose.Length;
        }
    }

    /// <summary>Matches <paramref name="literal"/> at <paramref name="pos"/>: true (and moves past it), null when the
    /// text ends inside it, false when it differs.</summary>
    private static bool? Literal(string t, ref int pos, string literal)
    {
        int n = Math.Min(literal.Length, t.Length - pos);
        if (!t.AsSpan(pos, n).SequenceEqual(literal.AsSpan(0, n))) return false;
        if (n < literal.Length) return null;
        pos += n;
        return true;
    }

    private static bool IsJsonValue(string text)
    {
        try
        {
            using var doc = JsonDocument.Parse(text);
            return true;
        }
        catch (JsonException) { return false; }
    }
}
