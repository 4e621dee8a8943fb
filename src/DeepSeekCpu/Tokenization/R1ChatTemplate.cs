using System.Text;

namespace DeepSeekCpu.Tokenization;

/// <summary>How a DeepSeek template lays out turns (each recognised from the template text, <see cref="R1ChatTemplate.FromJinja"/>).</summary>
internal enum DeepSeekChatStyle
{
    /// <summary>V3 and R1 (2024-12 / 2025-01): "&lt;｜User｜&gt;{user}" then "&lt;｜Assistant｜&gt;{answer}&lt;｜end▁of▁sentence｜&gt;".</summary>
    Classic,
    /// <summary>
    /// V3-0324 and R1-0528: every user turn is followed by "&lt;｜Assistant｜&gt;" (ns.is_last_user), answers are written
    /// without it, and the generation prompt adds the marker only after a turn that is not the user's.
    /// </summary>
    AssistantAfterUser,
    /// <summary>
    /// V3.1 (hybrid thinking): "&lt;｜Assistant｜&gt;&lt;think&gt;" when thinking, "&lt;｜Assistant｜&gt;&lt;/think&gt;"
    /// when not (the default); earlier answers are written as "&lt;/think&gt;" + the text after their first "&lt;/think&gt;".
    /// </summary>
    ThinkingSwitch,
}

/// <summary>
/// The DeepSeek chat format, rendered exactly as Hugging Face's <c>apply_chat_template</c> renders the Jinja
/// <c>chat_template</c> shipped in DeepSeek-R1 / R1-Distill / V3 <c>tokenizer_config.json</c>:
/// <code>
/// {bos}{system prompt}&lt;｜User｜&gt;{user}&lt;｜Assistant｜&gt;{assistant}&lt;｜end▁of▁sentence｜&gt;&lt;｜User｜&gt;…&lt;｜Assistant｜&gt;[&lt;think&gt;\n]
/// </code>
/// The two published variants differ in three places, each a flag here:
/// <list type="bullet">
/// <item>R1: the generation prompt opens the reasoning block (<c>&lt;think&gt;\n</c>); V3 does not.</item>
/// <item>R1: earlier assistant turns lose their reasoning (<c>content.split('&lt;/think&gt;')[-1]</c>); V3 keeps content.</item>
/// <item>R1: the last system message is the system prompt; V3 joins all system messages with a blank line.</item>
/// </list>
/// Tool turns (role "tool") follow the templates' tool-output markup; assistant tool calls
/// (<see cref="ChatMessage.ToolCalls"/>) each template's call markup (R1ChatTemplate.Tools.cs). Later templates (<see cref="DeepSeekChatStyle"/>:
/// V3-0324, R1-0528, V3.1) are rendered by their own methods, each following its template's statements in order; the
/// tests compare every style with Hugging Face's Jinja over tests/fixtures/chat-templates.
/// </summary>
internal sealed partial class R1ChatTemplate : IChatTemplate
{
    // Markers as written in the templates (U+FF5C fullwidth vertical bar, U+2581 lower one eighth block).
    public const string User = "<｜User｜>";
    public const string Assistant = "<｜Assistant｜>";
    public const string EndOfSentence = "<｜end▁of▁sentence｜>";
    public const string ThinkOpen = "<think>\n";
    public const string ThinkClose = "</think>";
    private const string ToolOutputsBegin = "<｜tool▁outputs▁begin｜>";
    private const string ToolOutputsEnd = "<｜tool▁outputs▁end｜>";
    private const string ToolOutputBegin = "<｜tool▁output▁begin｜>";
    private const string ToolOutputEnd = "<｜tool▁output▁end｜>";

    public R1ChatTemplate(string bosToken, bool opensReasoning = true, bool stripsReasoning = true, bool joinsSystemMessages = false,
        DeepSeekChatStyle style = DeepSeekChatStyle.Classic)
    {
        Style = style;
        BosToken = bosToken ?? throw new ArgumentNullException(nameof(bosToken));
        OpensReasoning = opensReasoning;
        StripsReasoning = stripsReasoning;
        JoinsSystemMessages = joinsSystemMessages;
    }

    /// <summary>DeepSeek-R1 and its distills (tokenizer_config.json of R1-Distill-Qwen, 2025).</summary>
    public static R1ChatTemplate R1(string bosToken) => new(bosToken, opensReasoning: true, stripsReasoning: true, joinsSystemMessages: false);

    /// <summary>DeepSeek-V3 (no reasoning block, system messages joined).</summary>
    public static R1ChatTemplate V3(string bosToken) => new(bosToken, opensReasoning: false, stripsReasoning: false, joinsSystemMessages: true);

    /// <summary>DeepSeek-V3-0324 (system messages joined, "&lt;｜Assistant｜&gt;" after each user turn, reasoning kept).</summary>
    public static R1ChatTemplate V3_0324(string bosToken) => new(bosToken, false, false, true, DeepSeekChatStyle.AssistantAfterUser);

    /// <summary>DeepSeek-R1-0528 and R1-0528-Qwen3-8B (as V3-0324, earlier answers lose their reasoning; no forced "&lt;think&gt;").</summary>
    public static R1ChatTemplate R1_0528(string bosToken) => new(bosToken, false, true, true, DeepSeekChatStyle.AssistantAfterUser);

    /// <summary>DeepSeek-V3.1 / V3.1-Terminus (thinking switch, default off).</summary>
    public static R1ChatTemplate V3_1(string bosToken) => new(bosToken, false, true, true, DeepSeekChatStyle.ThinkingSwitch);

    /// <summary>The template's turn layout.</summary>
    public DeepSeekChatStyle Style { get; }

    public bool HasThinkingSwitch => Style == DeepSeekChatStyle.ThinkingSwitch;

    /// <summary>Text rendered first (the tokenizer's BOS token string, read from its config).</summary>
    public string BosToken { get; }

    /// <summary>The generation prompt ends with "&lt;think&gt;\n", so the model's reply starts inside its reasoning.</summary>
    public bool OpensReasoning { get; }

    /// <summary>Earlier assistant turns keep only what follows their last "&lt;/think&gt;".</summary>
    public bool StripsReasoning { get; }

    /// <summary>All system messages are joined with "\n\n" (V3); otherwise the last one is used (R1).</summary>
    public bool JoinsSystemMessages { get; }

    /// <summary>
    /// Recognises a DeepSeek template by its markers and reads the variant flags from it; null when the text is not
    /// a DeepSeek chat template (the caller then has no template, rather than a wrong one).
    /// </summary>
    public static R1ChatTemplate? FromJinja(string? chatTemplate, string bosToken)
    {
        if (string.IsNullOrEmpty(chatTemplate) || !chatTemplate.Contains(User, StringComparison.Ordinal) || !chatTemplate.Contains(Assistant, StringComparison.Ordinal))
            return null;
        // V3.1 reads a "thinking" variable and tracks ns.is_last_user; V3-0324 and R1-0528 write the assistant marker
        // right after each user message ('<｜User｜>' + content + '<｜Assistant｜>').
        if (chatTemplate.Contains("is_last_user", StringComparison.Ordinal) && chatTemplate.Contains("not thinking", StringComparison.Ordinal))
            return V3_1(bosToken);
        var style = chatTemplate.Contains("+ '" + Assistant + "'}}", StringComparison.Ordinal) ? DeepSeekChatStyle.AssistantAfterUser : DeepSeekChatStyle.Classic;
        bool opens = chatTemplate.Contains(Assistant + "<think>", StringComparison.Ordinal);
        bool strips = chatTemplate.Contains("split('</think>')", StringComparison.Ordinal) || chatTemplate.Contains("split(\"</think>\")", StringComparison.Ordinal);
        // V3 accumulates system messages in ns.system_prompt with a '\n\n' separator, tracked by ns.is_first_sp.
        bool joins = chatTemplate.Contains("is_first_sp", StringComparison.Ordinal);
        return new R1ChatTemplate(bosToken, opens, strips, joins, style);
    }

    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true) => Render(messages, addGenerationPrompt, null);

    /// <param name="thinking">V3.1's switch (null: the template's default, off); ignored by the other styles.</param>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, bool? thinking)
    {
        ArgumentNullException.ThrowIfNull(messages);
        return Style switch
        {
            DeepSeekChatStyle.AssistantAfterUser => RenderAssistantAfterUser(messages, addGenerationPrompt),
            DeepSeekChatStyle.ThinkingSwitch => RenderThinkingSwitch(messages, addGenerationPrompt, thinking ?? false),
            _ => RenderClassic(messages, addGenerationPrompt),
        };
    }

    private string RenderClassic(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt)
    {
        var sb = new StringBuilder();
        sb.Append(BosToken);
        sb.Append(SystemPrompt(messages));

        bool isTool = false, isOutputFirst = true, callsStarted = false;
        foreach (ChatMessage m in messages)
        {
            switch (m.Role)
            {
                case "user":
                    isTool = false;
                    sb.Append(User).Append(m.Content);
                    break;
                case "assistant":
                    if (AppendClassicCalls(sb, m, ref callsStarted, ref isTool)) break;
                    if (isTool)
                    {
                        // An answer right after tool outputs closes them instead of opening an assistant turn.
                        sb.Append(ToolOutputsEnd).Append(m.Content).Append(EndOfSentence);
                        isTool = false;
                    }
                    else
                    {
                        string content = StripsReasoning ? AfterReasoning(m.Content) : m.Content;
                        sb.Append(Assistant).Append(content).Append(EndOfSentence);
                    }
                    break;
                case "tool":
                    isTool = true;
                    if (isOutputFirst)
                    {
                        sb.Append(ToolOutputsBegin).Append(ToolOutputBegin).Append(m.Content).Append(ToolOutputEnd);
                        isOutputFirst = false; // never reset in the published templates
                    }
                    else
                    {
                        sb.Append('\n').Append(ToolOutputBegin).Append(m.Content).Append(ToolOutputEnd);
                    }
                    break;
                default:
                    break; // "system" was handled above; the templates ignore other roles
            }
        }
        if (isTool)
            sb.Append(ToolOutputsEnd);
        else if (addGenerationPrompt)
            sb.Append(Assistant).Append(OpensReasoning ? ThinkOpen : "");
        return sb.ToString();
    }

    /// <summary>V3-0324 / R1-0528 (tokenizer_config.json chat_template, statements in the template's order).</summary>
    private string RenderAssistantAfterUser(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt)
    {
        var sb = new StringBuilder().Append(BosToken).Append(SystemPrompt(messages));
        bool isTool = false, isOutputFirst = true, isLastUser = false;
        foreach (ChatMessage m in messages)
        {
            switch (m.Role)
            {
                case "user":
                    isTool = false; isLastUser = true;
                    sb.Append(User).Append(m.Content).Append(Assistant);
                    break;
                case "assistant":
                    isLastUser = false;
                    string content = StripsReasoning ? AfterReasoning(m.Content) : m.Content;  // R1-0528: split('</think>')[-1]
                    if (isTool) { sb.Append(ToolOutputsEnd); isTool = false; }
                    if (m.ToolCalls is { Count: > 0 } calls) { AppendFencedCalls(sb, content, calls); isOutputFirst = true; break; }
                    sb.Append(content).Append(EndOfSentence);
                    break;
                case "tool":
                    isLastUser = false; isTool = true;
                    sb.Append(isOutputFirst ? ToolOutputsBegin : "\n").Append(ToolOutputBegin).Append(m.Content).Append(ToolOutputEnd);
                    isOutputFirst = false;   // reset by an assistant turn with tool calls
                    break;
            }
        }
        if (isTool) sb.Append(ToolOutputsEnd);
        if (addGenerationPrompt && !isLastUser && !isTool) sb.Append(Assistant);
        return sb.ToString();
    }

    /// <summary>V3.1 (tokenizer_config.json chat_template with the <c>thinking</c> variable; statements in its order).</summary>
    private string RenderThinkingSwitch(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, bool thinking)
    {
        var sb = new StringBuilder().Append(BosToken).Append(SystemPrompt(messages));
        bool isTool = false, isLastUser = false;
        foreach (ChatMessage m in messages)
        {
            switch (m.Role)
            {
                case "user":
                    isTool = false; isLastUser = true;
                    sb.Append(User).Append(m.Content);
                    break;
                case "assistant":
                    // an earlier answer is always written as non-thinking ("prefix" continuation is not offered)
                    if (isLastUser) sb.Append(Assistant).Append(ThinkClose);
                    isLastUser = false;
                    if (m.ToolCalls is { Count: > 0 } calls) { AppendNamedCalls(sb, m.Content, calls); isTool = false; break; }
                    if (isTool) { sb.Append(m.Content); isTool = false; }
                    else
                    {
                        // content.split('</think>', 1)[1]: the text after the FIRST "</think>"
                        int at = m.Content.IndexOf(ThinkClose, StringComparison.Ordinal);
                        sb.Append(at < 0 ? m.Content : m.Content[(at + ThinkClose.Length)..]);
                    }
                    sb.Append(EndOfSentence);
                    break;
                case "tool":
                    isLastUser = false; isTool = true;
                    sb.Append(ToolOutputBegin).Append(m.Content).Append(ToolOutputEnd);
                    break;
            }
        }
        if (addGenerationPrompt && isLastUser && !isTool) sb.Append(Assistant).Append(thinking ? "<think>" : ThinkClose);
        return sb.ToString();
    }

    private string SystemPrompt(IReadOnlyList<ChatMessage> messages)
    {
        string prompt = "";
        bool first = true;
        foreach (ChatMessage m in messages)
        {
            if (m.Role != "system")
                continue;
            prompt = JoinsSystemMessages && !first ? prompt + "\n\n" + m.Content : m.Content;
            first = false;
        }
        return prompt;
    }

    /// <summary>Jinja's <c>content.split('&lt;/think&gt;')[-1]</c>: the text after the last "&lt;/think&gt;", or all of it.</summary>
    internal static string AfterReasoning(string content)
    {
        int at = content.LastIndexOf(ThinkClose, StringComparison.Ordinal);
        return at < 0 ? content : content[(at + ThinkClose.Length)..];
    }
}

/// <summary>The thinking switch as front ends receive it (server, IChatClient, CLI).</summary>
internal static class ThinkingOption
{
    /// <summary>
    /// An OpenAI <c>reasoning_effort</c> as the thinking switch: "none" answers directly; "minimal", "low", "medium",
    /// "high" (and "xhigh", "max") think: a V3.1-class model has no effort levels, only the two modes. Null stays null
    /// (the template's default); any other value throws an <see cref="ArgumentException"/> naming the accepted ones.
    /// </summary>
    public static bool? FromReasoningEffort(string? effort) => effort switch
    {
        null => null,
        "none" => false,
        "minimal" or "low" or "medium" or "high" or "xhigh" or "max" => true,
        _ => throw new ArgumentException($"reasoning_effort '{effort}' is unknown (expected none, minimal, low, medium, high)"),
    };
}
