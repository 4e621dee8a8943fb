using System.Text;
using System.Text.Json;

namespace DeepSeekCpu.Tokenization;

/// <summary>A function call the model made (OpenAI <c>tool_calls[i]</c>): its id, the function's name and its arguments as JSON text.</summary>
internal sealed record ToolCall(string Id, string Name, string Arguments)
{
    /// <summary>An id in OpenAI's shape ("call_" and 24 hex digits).</summary>
    public static string NewId() => "call_" + Guid.NewGuid().ToString("N")[..24];
}

/// <summary>A function the model may call (OpenAI <c>tools[i].function</c>): name, description, JSON schema of its parameters.</summary>
internal sealed record ToolDefinition(string Name, string? Description, string ParametersJson);

/// <summary>How a template writes a call inside "&lt;｜tool▁calls▁begin｜&gt;…&lt;｜tool▁calls▁end｜&gt;".</summary>
internal enum ToolCallFormat
{
    /// <summary>R1, V3, V3-0324, R1-0528: "&lt;｜tool▁call▁begin｜&gt;function&lt;｜tool▁sep｜&gt;NAME\n```json\n{args}\n```&lt;｜tool▁call▁end｜&gt;".</summary>
    FencedJson,
    /// <summary>V3.1: "&lt;｜tool▁call▁begin｜&gt;NAME&lt;｜tool▁sep｜&gt;{args}&lt;｜tool▁call▁end｜&gt;".</summary>
    NameSeparator,
    /// <summary>V3.2 (encoding_dsv32.py): DSML invokes in a "&lt;｜DSML｜function_calls&gt;" block (<see cref="Dsml"/>).</summary>
    DsmlFunctionCalls,
    /// <summary>V4 (encoding_dsv4.py): DSML invokes in a "&lt;｜DSML｜tool_calls&gt;" block.</summary>
    DsmlToolCalls,
}

/// <summary>OpenAI <c>tool_choice</c>: auto, none, required, or one named function.</summary>
internal enum ToolChoiceMode { Auto, None, Required, Function }

/// <summary>The tools of a request and how they may be used (OpenAI <c>tools</c>, <c>tool_choice</c>, <c>parallel_tool_calls</c>).</summary>
internal sealed record ToolOptions(IReadOnlyList<ToolDefinition> Tools, ToolChoiceMode Choice = ToolChoiceMode.Auto, string? Function = null,
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
internal static class ToolPrompt
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

    /// <summary>The conversation with the tool list in its system prompt. The DSML encodings (V3.2, V4) render the list
    /// themselves from the system message's <see cref="ChatMessage.Tools"/>, as DeepSeek's encoders read a system
    /// message's <c>tools</c>; an empty system message carries them when there is none.</summary>
    public static List<ChatMessage> Apply(IReadOnlyList<ChatMessage> messages, IReadOnlyList<ToolDefinition> tools, ToolCallFormat format)
    {
        var list = new List<ChatMessage>(messages);
        bool dsml = IsDsml(format);
        string prompt = dsml ? "" : For(tools, format);
        int last = list.FindLastIndex(m => m.Role == "system");
        if (last >= 0) list[last] = dsml ? list[last] with { Tools = tools } : list[last] with { Content = list[last].Content + "\n\n" + prompt };
        else list.Insert(0, new ChatMessage("system", prompt) { Tools = dsml ? tools : null });
        return list;
    }

    /// <summary>V3.2's and V4's markup (<see cref="Dsml"/>) rather than the tool-call tokens of R1/V3/V3.1.</summary>
    public static bool IsDsml(ToolCallFormat format) => format is ToolCallFormat.DsmlFunctionCalls or ToolCallFormat.DsmlToolCalls;

    /// <summary>
    /// The start of the answer that forces a call (tool_choice "required" or a named function): the block and call
    /// markers, and for a named function its name up to where the arguments begin.
    /// </summary>
    public static string Prefill(ToolCallFormat format, string? function)
    {
        if (IsDsml(format))
            return "\n\n" + Dsml.BlockOpen(format) + "\n" + Dsml.InvokeOpen + (function == null ? "" : function + "\">\n");
        string s = R1ChatTemplate.ToolCallsBegin + R1ChatTemplate.ToolCallBegin;
        if (format == ToolCallFormat.FencedJson) s += "function" + R1ChatTemplate.ToolSep;
        if (function == null) return s;
        return s + function + (format == ToolCallFormat.FencedJson ? "\n```json\n" : R1ChatTemplate.ToolSep);
    }
}

/// <summary>What a streamed call is made of (<see cref="ToolCallFragment"/>): its start, a piece of its arguments, or the
/// news that it turned out malformed after it started.</summary>
internal enum ToolCallFragmentKind { Start, Arguments, Abandoned }

/// <summary>
/// A call as it is generated, for front ends that stream calls as OpenAI does: a <see cref="ToolCallFragmentKind.Start"/>
/// (index, id, name), then <see cref="ToolCallFragmentKind.Arguments"/> pieces whose concatenation is the call's
/// arguments. A call that breaks after it started gets <see cref="ToolCallFragmentKind.Abandoned"/> and its text comes as
/// text after it; a call that ends well is also reported whole (<see cref="ToolCallEvent.Call"/>, same id).
/// </summary>
internal readonly record struct ToolCallFragment(int Index, string Id, string Name, string Arguments, ToolCallFragmentKind Kind);

/// <summary>What <see cref="ToolCallParser"/> makes of the answer: text, a whole call, or a piece of a call being read.</summary>
internal readonly record struct ToolCallEvent(string? Text, ToolCall? Call, ToolCallFragment? Fragment = null);

/// <summary>
/// Reads tool calls out of a streamed answer. Text outside the call block ("&lt;｜tool▁calls▁begin｜&gt;…&lt;｜tool▁calls▁end｜&gt;",
/// or a DSML block, ToolCallParser.Dsml.cs) passes through as it arrives (only a tail that could be the start of the
/// marker is held back); inside, each call is reported whole once it ends, and also as it arrives
/// (<see cref="ToolCallFragment"/>): it starts when its name is read and names one of the tools and its arguments open
/// a JSON object; its arguments then come in pieces, each checked to continue a JSON object. A call that does not parse
/// (no name, arguments that are not a JSON object, a name that is not one of the tools) and an unfinished block at the
/// end come out as text, never as an error.
/// </summary>
internal sealed partial class ToolCallParser(ToolCallFormat format, IReadOnlyCollection<string>? names = null)
{
    private readonly StringBuilder _buf = new();
    private bool _inside;
    private bool _markerConsumed;   // false while the block's opening marker is still at the start of _buf

    // the call being read: started (fragments sent), abandoned (broken after it started), what its arguments' pieces made
    private string? _callId, _callName;
    private bool _started, _abandoned;
    private string _sent = "";

    /// <summary>Calls reported so far.</summary>
    public int Calls { get; private set; }

    /// <summary>Calls started so far (the index of the next one); a call abandoned after its start keeps its index.</summary>
    public int Started { get; private set; }

    public void Push(string text, List<ToolCallEvent> output)
    {
        if (ToolPrompt.IsDsml(format)) { PushDsml(text, output); return; }
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
            if (end < 0)
            {
                Progress(body, output);   // the call is still arriving
                return;
            }
            // the block's marker goes with its first call: consumed by a call, text with a malformed one
            int consumed = s.Length - body.Length + end + R1ChatTemplate.ToolCallEnd.Length;
            var call = Header(body[..end]) is { } h ? Parse(h.Name, body[h.ArgsAt..end]) : null;
            FinishCall(call, s[..consumed], output);
            _buf.Remove(0, consumed);
            _markerConsumed = true;
        }
    }

    /// <summary>The end of the answer: whatever is held back (a marker's start, an unfinished call) as text.</summary>
    public void Flush(List<ToolCallEvent> output)
    {
        if (_started && !_abandoned) Abandon(output);
        string rest = _buf.ToString();
        // the line ends after a DSML block's last call, when the block's closing tag never came
        if (!(_inside && _markerConsumed && string.IsNullOrWhiteSpace(rest))) Emit(output, rest);
        _buf.Clear();
        _inside = false;
        ResetCall();
    }

    /// <summary>
    /// Where a call's name ends and its arguments begin, once its header is whole: "&lt;｜tool▁call▁begin｜&gt;NAME&lt;｜tool▁sep｜&gt;"
    /// (V3.1) or "&lt;｜tool▁call▁begin｜&gt;function&lt;｜tool▁sep｜&gt;NAME\n" and an optional "```json" / "```" fence (R1, V3).
    /// </summary>
    private (string Name, int ArgsAt)? Header(string body)
    {
        int at = body.Length - body.TrimStart().Length;
        if (!body.AsSpan(at).StartsWith(R1ChatTemplate.ToolCallBegin, StringComparison.Ordinal)) return null;
        at += R1ChatTemplate.ToolCallBegin.Length;
        int sep = body.IndexOf(R1ChatTemplate.ToolSep, at, StringComparison.Ordinal);
        if (sep < 0) return null;
        if (format == ToolCallFormat.NameSeparator) return (body[at..sep].Trim(), sep + R1ChatTemplate.ToolSep.Length);
        at = sep + R1ChatTemplate.ToolSep.Length;
        int nl = body.IndexOf('\n', at);
        if (nl < 0) return null;
        string name = body[at..nl].Trim();
        at = nl + 1;
        while (at < body.Length && char.IsWhiteSpace(body[at])) at++;
        var fence = body.AsSpan(at);
        if (fence.StartsWith("```json", StringComparison.Ordinal)) at += 7;
        else if (fence.StartsWith("```", StringComparison.Ordinal) && !"```json".StartsWith(fence.ToString(), StringComparison.Ordinal)) at += 3;
        else if ("```json".StartsWith(fence.ToString(), StringComparison.Ordinal) && fence.Length > 0) return null;   // a fence still arriving
        return (name, at);
    }

    /// <summary>A whole call: a known name and arguments (fence removed) that are a JSON object.</summary>
    private ToolCall? Parse(string name, string region)
    {
        string args = region.Trim();
        if (format == ToolCallFormat.FencedJson && args.EndsWith("```", StringComparison.Ordinal)) args = args[..^3].Trim();
        if (name.Length == 0 || (names != null && !names.Contains(name)) || !IsJsonObject(args)) return null;
        return new ToolCall(_callId ?? ToolCall.NewId(), name, args);
    }

    /// <summary>A call still arriving: start it once its header is whole, then send what its arguments have become.</summary>
    private void Progress(string body, List<ToolCallEvent> output)
    {
        if (_abandoned || Header(body) is not { } h) return;
        string args = body[h.ArgsAt..].TrimStart();
        if (!_started)
        {
            if (args.Length == 0 || args[0] != '{' || h.Name.Length == 0 || (names != null && !names.Contains(h.Name))) return;
            StartCall(h.Name, output);
        }
        // hold back what may still turn out to be the end: a start of the end marker, white space, a closing fence
        args = args[..^HeldBack(args, R1ChatTemplate.ToolCallEnd)].TrimEnd();
        if (format == ToolCallFormat.FencedJson) args = args.TrimEnd('`').TrimEnd();
        Advance(args, output);
    }

    private void StartCall(string name, List<ToolCallEvent> output)
    {
        _callId = ToolCall.NewId(); _callName = name; _started = true; _sent = "";
        output.Add(new ToolCallEvent(null, null, new ToolCallFragment(Started++, _callId, name, "", ToolCallFragmentKind.Start)));
    }

    /// <summary>Sends what <paramref name="args"/> adds to the pieces sent, when it still reads as the start of a JSON
    /// object (otherwise the call is abandoned).</summary>
    private void Advance(string args, List<ToolCallEvent> output)
    {
        if (!_started || _abandoned || args.Length <= _sent.Length) return;
        if (!args.StartsWith(_sent, StringComparison.Ordinal) || !IsJsonObjectStart(args)) { Abandon(output); return; }
        output.Add(new ToolCallEvent(null, null, new ToolCallFragment(Started - 1, _callId!, _callName!, args[_sent.Length..], ToolCallFragmentKind.Arguments)));
        _sent = args;
    }

    private void Abandon(List<ToolCallEvent> output)
    {
        output.Add(new ToolCallEvent(null, null, new ToolCallFragment(Started - 1, _callId!, _callName!, "", ToolCallFragmentKind.Abandoned)));
        _abandoned = true;
    }

    /// <summary>A call's end: reported whole (its last piece first) when it parsed, otherwise its text comes as text.</summary>
    private void FinishCall(ToolCall? call, string raw, List<ToolCallEvent> output)
    {
        if (call != null && !_abandoned && call.Arguments.StartsWith(_sent, StringComparison.Ordinal))
        {
            if (!_started) StartCall(call.Name, output);
            call = call with { Id = _callId! };
            if (call.Arguments.Length > _sent.Length)
                output.Add(new ToolCallEvent(null, null, new ToolCallFragment(Started - 1, call.Id, call.Name, call.Arguments[_sent.Length..], ToolCallFragmentKind.Arguments)));
            output.Add(new ToolCallEvent(null, call));
            Calls++;
        }
        else
        {
            if (_started && !_abandoned) Abandon(output);
            Emit(output, raw);
        }
        ResetCall();
    }

    private void ResetCall()
    {
        _callId = _callName = null; _started = _abandoned = false; _sent = "";
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

    /// <summary>True when <paramref name="text"/> is a JSON object or the start of one (a reader over a non-final block
    /// stops without error where more text is needed, and throws at the first character no JSON could continue with).</summary>
    private static bool IsJsonObjectStart(string text)
    {
        if (text.Length == 0 || text[0] != '{') return false;
        var reader = new Utf8JsonReader(Encoding.UTF8.GetBytes(text), isFinalBlock: false, default);
        try
        {
            while (reader.Read()) { }
            return true;
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
