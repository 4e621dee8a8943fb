using System.Text;

namespace DeepSeekCpu.Tokenization;

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
/// Tool turns (role "tool") follow the templates' tool-output markup; assistant tool calls need structured data that
/// <see cref="ChatMessage"/> does not carry and are not rendered.
/// </summary>
public sealed class R1ChatTemplate : IChatTemplate
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

    public R1ChatTemplate(string bosToken, bool opensReasoning = true, bool stripsReasoning = true, bool joinsSystemMessages = false)
    {
        BosToken = bosToken ?? throw new ArgumentNullException(nameof(bosToken));
        OpensReasoning = opensReasoning;
        StripsReasoning = stripsReasoning;
        JoinsSystemMessages = joinsSystemMessages;
    }

    /// <summary>DeepSeek-R1 and its distills (tokenizer_config.json of R1-Distill-Qwen, 2025).</summary>
    public static R1ChatTemplate R1(string bosToken) => new(bosToken, opensReasoning: true, stripsReasoning: true, joinsSystemMessages: false);

    /// <summary>DeepSeek-V3 (no reasoning block, system messages joined).</summary>
    public static R1ChatTemplate V3(string bosToken) => new(bosToken, opensReasoning: false, stripsReasoning: false, joinsSystemMessages: true);

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
        bool opens = chatTemplate.Contains(Assistant + "<think>", StringComparison.Ordinal);
        bool strips = chatTemplate.Contains("split('</think>')", StringComparison.Ordinal) || chatTemplate.Contains("split(\"</think>\")", StringComparison.Ordinal);
        // V3 accumulates system messages in ns.system_prompt with a '\n\n' separator, tracked by ns.is_first_sp.
        bool joins = chatTemplate.Contains("is_first_sp", StringComparison.Ordinal);
        return new R1ChatTemplate(bosToken, opens, strips, joins);
    }

    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var sb = new StringBuilder();
        sb.Append(BosToken);
        sb.Append(SystemPrompt(messages));

        bool isTool = false, isOutputFirst = true;
        foreach (ChatMessage m in messages)
        {
            switch (m.Role)
            {
                case "user":
                    isTool = false;
                    sb.Append(User).Append(m.Content);
                    break;
                case "assistant":
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
