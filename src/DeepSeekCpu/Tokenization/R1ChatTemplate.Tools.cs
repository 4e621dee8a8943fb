using System.Text;

namespace DeepSeekCpu.Tokenization;

/// <summary>
/// Assistant tool calls as each DeepSeek template writes them (the <c>message['tool_calls']</c> branches of the Jinja
/// templates, statements in their order, quirks kept: Hugging Face renders them so, and the tests compare token for
/// token with @huggingface/jinja over tests/fixtures/chat-templates/reference-tools-*.jsonl).
/// </summary>
internal sealed partial class R1ChatTemplate
{
    public const string ToolCallsBegin = "<｜tool▁calls▁begin｜>";
    public const string ToolCallsEnd = "<｜tool▁calls▁end｜>";
    public const string ToolCallBegin = "<｜tool▁call▁begin｜>";
    public const string ToolCallEnd = "<｜tool▁call▁end｜>";
    public const string ToolSep = "<｜tool▁sep｜>";

    /// <summary>V3.1 writes "NAME&lt;｜tool▁sep｜&gt;{json}"; the earlier templates "function&lt;｜tool▁sep｜&gt;NAME" and fenced JSON.</summary>
    public ToolCallFormat? ToolCallFormat => Style == DeepSeekChatStyle.ThinkingSwitch ? Tokenization.ToolCallFormat.NameSeparator : Tokenization.ToolCallFormat.FencedJson;

    /// <summary>"type&lt;｜tool▁sep｜&gt;name\n```json\nargs\n```&lt;｜tool▁call▁end｜&gt;": one call in the R1/V3 format.</summary>
    private static StringBuilder AppendFenced(StringBuilder sb, ToolCall call) =>
        sb.Append("function").Append(ToolSep).Append(call.Name).Append("\n```json\n").Append(call.Arguments).Append("\n```").Append(ToolCallEnd);

    /// <summary>
    /// R1 (2025-01) and V3 (2024-12) templates. R1 writes the calls of any assistant turn that has them, then its content
    /// (when not null) as an ordinary answer; V3 writes calls only when the content is null, and closes the block only
    /// after a second call. In both, <c>ns.is_first</c> is never reset: only the conversation's first call opens
    /// "&lt;｜Assistant｜&gt;&lt;｜tool▁calls▁begin｜&gt;", later ones start with "\n". V3 is told apart by its joined system messages.
    /// Returns true when the turn is complete (null content: nothing more to write).
    /// </summary>
    private bool AppendClassicCalls(StringBuilder sb, ChatMessage m, ref bool callsStarted, ref bool isTool)
    {
        bool v3 = JoinsSystemMessages, contentIsNone = IsNone(m);
        if (m.ToolCalls is not { Count: > 0 } calls || (v3 && !contentIsNone)) return contentIsNone;
        isTool = false;
        foreach (var call in calls)
        {
            if (!callsStarted) AppendFenced(sb.Append(Assistant).Append(ToolCallsBegin).Append(ToolCallBegin), call);
            else
            {
                AppendFenced(sb.Append('\n').Append(ToolCallBegin), call);
                if (v3) sb.Append(ToolCallsEnd).Append(EndOfSentence);
            }
            callsStarted = true;
        }
        if (!v3) sb.Append(ToolCallsEnd).Append(EndOfSentence);
        return contentIsNone;
    }

    /// <summary>V3-0324 / R1-0528: the content (empty for null), then the calls, "\n" between them.</summary>
    private static void AppendFencedCalls(StringBuilder sb, string content, IReadOnlyList<ToolCall> calls)
    {
        sb.Append(content).Append(ToolCallsBegin);
        for (int i = 0; i < calls.Count; i++) AppendFenced(sb.Append(i == 0 ? "" : "\n").Append(ToolCallBegin), calls[i]);
        sb.Append(ToolCallsEnd).Append(EndOfSentence);
    }

    /// <summary>V3.1: the content (empty for null), then "&lt;｜tool▁call▁begin｜&gt;NAME&lt;｜tool▁sep｜&gt;ARGS&lt;｜tool▁call▁end｜&gt;" per call, no separator.</summary>
    private static void AppendNamedCalls(StringBuilder sb, string content, IReadOnlyList<ToolCall> calls)
    {
        sb.Append(content).Append(ToolCallsBegin);
        foreach (var call in calls) sb.Append(ToolCallBegin).Append(call.Name).Append(ToolSep).Append(call.Arguments).Append(ToolCallEnd);
        sb.Append(ToolCallsEnd).Append(EndOfSentence);
    }

    /// <summary>An assistant turn with calls and no text: the client's <c>"content": null</c>.</summary>
    private static bool IsNone(ChatMessage m) => m.ToolCalls is { Count: > 0 } && m.Content.Length == 0;
}
