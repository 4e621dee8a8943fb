using System.Text;
using System.Text.Json;

namespace DeepSeekCpu.Tokenization;

/// <summary>A function call the model made (OpenAI <c>tool_calls[i]</c>): its id, the function's name and its arguments as JSON text.</summary>
public sealed record ToolCall(string Id, string Name, string Arguments)
{
    /// <summary>An id in OpenAI's shape ("call_" and 24 hex digits).</summary>
    public static string NewId() => "call_" + Guid.NewGuid().ToString("N")[..24];
}

/// <summary>A function the model may call (OpenAI <c>tools[i].function</c>): name, description, JSON schema of its parameters.</summary>
public sealed record ToolDefinition(string Name, string? Description, string ParametersJson);

/// <summary>How a template writes a call inside "&lt;｜tool▁calls▁begin｜&gt;…&lt;｜tool▁calls▁end｜&gt;".</summary>
public enum ToolCallFormat
{
    /// <summary>R1, V3, V3-0324, R1-0528: "&lt;｜tool▁call▁begin｜&gt;function&lt;｜tool▁sep｜&gt;NAME\n```json\n{args}\n```&lt;｜tool▁call▁end｜&gt;".</summary>
    FencedJson,
    /// <summary>V3.1: "&lt;｜tool▁call▁begin｜&gt;NAME&lt;｜tool▁sep｜&gt;{args}&lt;｜tool▁call▁end｜&gt;".</summary>
    NameSeparator,
}

/// <summary>OpenAI <c>tool_choice</c>: auto, none, required, or one named function.</summary>
public enum ToolChoiceMode { Auto, None, Required, Function }

/// <summary>The tools of a request and how they may be used (OpenAI <c>tools</c>, <c>tool_choice</c>, <c>parallel_tool_calls</c>).</summary>
public sealed record ToolOptions(IReadOnlyList<ToolDefinition> Tools, ToolChoiceMode Choice = ToolChoiceMode.Auto, string? Function = null,
    bool ParallelCalls = true)
{
    /// <summary>True when the model is offered the tools (not "none", and there are some).</summary>
    public bool Active => Choice != ToolChoiceMode.None && Tools.Count > 0;
}

/// <summary>
/// The tool list as the model reads it. None of DeepSeek's Jinja templates renders <c>tools</c> (Hugging Face passes
/// them and the templates ignore them), so the list goes into the system prompt, as DeepSeek documents for V3.1 (model
/// card, "ToolCall": "## Tools", one "### NAME" section per tool with its description and JSON parameters, then the
/// exact call format). The R1/V3 templates get the same layout with their own call format. Appended to the last
/// system message ("\n\n" between), or a system message of its own first when there is none, so every template's
/// system-prompt rule (R1 keeps the last one, the others join them) keeps the user's text.
/// </summary>
public static class ToolPrompt
{
    public static string For(IReadOnlyList<ToolDefinition> tools, ToolCallFormat format)
    {
        var sb = new StringBuilder("## Tools\nYou have access to the following tools:\n");
        foreach (var t in tools)
        {
            sb.Append("\n### ").Append(t.Name).Append('\n');
            sb.Append("Description: ").Append(t.Description ?? "").Append("\n\n");
            sb.Append("Parameters: ").Append(t.ParametersJson).Append('\n');
        }
        string name = format == ToolCallFormat.FencedJson ? "function" + R1ChatTemplate.ToolSep + "tool_call_name\n```json\ntool_call_arguments\n```" : "tool_call_name" + R1ChatTemplate.ToolSep + "tool_call_arguments";
        sb.Append("\nIMPORTANT: ALWAYS adhere to this exact format for tool use:\n")
          .Append(R1ChatTemplate.ToolCallsBegin).Append(R1ChatTemplate.ToolCallBegin).Append(name).Append(R1ChatTemplate.ToolCallEnd)
          .Append("{{additional_tool_calls}}").Append(R1ChatTemplate.ToolCallsEnd).Append("\n\nWhere:\n\n")
          .Append("- `tool_call_name` must be an exact match to one of the available tools\n")
          .Append("- `tool_call_arguments` must be valid JSON that strictly follows the tool's Parameters Schema\n")
          .Append(format == ToolCallFormat.FencedJson ? "- For multiple tool calls, separate them with a newline" : "- For multiple tool calls, chain them directly without separators or spaces");
        return sb.ToString();
    }

    /// <summary>The conversation with the tool list in its system prompt.</summary>
    public static List<ChatMessage> Apply(IReadOnlyList<ChatMessage> messages, IReadOnlyList<ToolDefinition> tools, ToolCallFormat format)
    {
        var list = new List<ChatMessage>(messages);
        string prompt = For(tools, format);
        int last = list.FindLastIndex(m => m.Role == "system");
        if (last >= 0) list[last] = list[last] with { Content = list[last].Content + "\n\n" + prompt };
        else list.Insert(0, new ChatMessage("system", prompt));
        return list;
    }

    /// <summary>
    /// The start of the answer that forces a call (tool_choice "required" or a named function): the block and call
    /// markers, and for a named function its name up to where the arguments begin.
    /// </summary>
    public static string Prefill(ToolCallFormat format, string? function)
    {
        string s = R1ChatTemplate.ToolCallsBegin + R1ChatTemplate.ToolCallBegin;
        if (format == ToolCallFormat.FencedJson) s += "function" + R1ChatTemplate.ToolSep;
        if (function == null) return s;
        return s + function + (format == ToolCallFormat.FencedJson ? "\n```json\n" : R1ChatTemplate.ToolSep);
    }
}

/// <summary>What <see cref="ToolCallParser"/> makes of the answer: text, or a call.</summary>
public readonly record struct ToolCallEvent(string? Text, ToolCall? Call);

/// <summary>
/// Reads tool calls out of a streamed answer. Text outside "&lt;｜tool▁calls▁begin｜&gt;…&lt;｜tool▁calls▁end｜&gt;" passes
/// through as it arrives (only a tail that could be the start of the marker is held back); inside, each call is
/// reported once its "&lt;｜tool▁call▁end｜&gt;" arrives. A call that does not parse (no name, arguments that are not a
/// JSON object, a name that is not one of the tools) and an unfinished block at the end come out as text, never as an
/// error.
/// </summary>
public sealed partial class ToolCallParser(ToolCallFormat format, IReadOnlyCollection<string>? names = null)
{
    private readonly StringBuilder _buf = new();
    private bool _inside;
    private bool _markerConsumed;   // false while the block's opening marker is still at the start of _buf

    /// <summary>Calls reported so far.</summary>
    public int Calls { get; private set; }

    public void Push(string text, List<ToolCallEvent> output)
    {
        _buf.Append(text);
        while (true)
        {
            string s = _buf.ToString();
            if (!_inside)
            {
                int at = s.IndexOf(R1ChatTemplate.ToolCallsBegin, StringComparison.Ordinal);
                if (at < 0)
                {
                    int keep = HeldBack(s, R1ChatTemplate.ToolCallsBegin);
                    Emit(output, s[..^keep]);
                    _buf.Remove(0, s.Length - keep);
                    return;
                }
                Emit(output, s[..at]);
                _buf.Remove(0, at);   // the block keeps its marker until a call parses (an unfinished one is text)
                _inside = true; _markerConsumed = false;
                continue;
            }
            string body = _markerConsumed ? s : s[R1ChatTemplate.ToolCallsBegin.Length..];
            int lead = body.Length - body.TrimStart().Length;
            if (body.AsSpan(lead).StartsWith(R1ChatTemplate.ToolCallsEnd, StringComparison.Ordinal))
            {
                _buf.Remove(0, s.Length - body.Length + lead + R1ChatTemplate.ToolCallsEnd.Length);
                _inside = false;
                continue;
            }
            int end = body.IndexOf(R1ChatTemplate.ToolCallEnd, StringComparison.Ordinal);
            if (end < 0) return;   // the call is still arriving
            // the block's marker goes with its first call: consumed by a call, text with a malformed one
            int consumed = s.Length - body.Length + end + R1ChatTemplate.ToolCallEnd.Length;
            if (Parse(body[..end]) is { } call)
            {
                output.Add(new ToolCallEvent(null, call));
                Calls++;
            }
            else Emit(output, s[..consumed]);
            _buf.Remove(0, consumed);
            _markerConsumed = true;
        }
    }

    /// <summary>The end of the answer: whatever is held back (a marker's start, an unfinished call) as text.</summary>
    public void Flush(List<ToolCallEvent> output)
    {
        Emit(output, _buf.ToString());
        _buf.Clear();
        _inside = false;
    }

    private ToolCall? Parse(string segment)
    {
        string s = segment.TrimStart();
        if (!s.StartsWith(R1ChatTemplate.ToolCallBegin, StringComparison.Ordinal)) return null;
        s = s[R1ChatTemplate.ToolCallBegin.Length..];
        int sep = s.IndexOf(R1ChatTemplate.ToolSep, StringComparison.Ordinal);
        if (sep < 0) return null;
        string name, args;
        if (format == ToolCallFormat.NameSeparator) { name = s[..sep].Trim(); args = s[(sep + R1ChatTemplate.ToolSep.Length)..].Trim(); }
        else
        {
            // "function<sep>NAME\n```json\nARGS\n```"
            string rest = s[(sep + R1ChatTemplate.ToolSep.Length)..];
            int nl = rest.IndexOf('\n');
            if (nl < 0) return null;
            name = rest[..nl].Trim();
            args = rest[(nl + 1)..].Trim();
            if (args.StartsWith("```json", StringComparison.Ordinal)) args = args[7..];
            else if (args.StartsWith("```", StringComparison.Ordinal)) args = args[3..];
            if (args.EndsWith("```", StringComparison.Ordinal)) args = args[..^3];
            args = args.Trim();
        }
        if (name.Length == 0 || (names != null && !names.Contains(name)) || !IsJsonObject(args)) return null;
        return new ToolCall(ToolCall.NewId(), name, args);
    }

    private static bool IsJsonObject(string text)
    {
        try
        {
            using var doc = JsonDocument.Parse(text);
            return doc.RootElement.ValueKind == JsonValueKind.Object;
        }
        catch (JsonException) { return false; }
    }

    private static void Emit(List<ToolCallEvent> output, string text)
    {
        if (text.Length > 0) output.Add(new ToolCallEvent(text, null));
    }

    /// <summary>Length of the longest tail of <paramref name="s"/> that is a proper start of <paramref name="marker"/>.</summary>
    private static int HeldBack(string s, string marker)
    {
        for (int n = Math.Min(s.Length, marker.Length - 1); n > 0; n--)
            if (s.AsSpan(s.Length - n).SequenceEqual(marker.AsSpan(0, n))) return n;
        return 0;
    }
}
