using System.Text;

namespace DeepSeekCpu.Tokenization;

/// <summary>
/// The prompt encodings of DeepSeek-V3.2 and DeepSeek-V4, which ship no Jinja template but a Python encoder
/// (<c>encoding/encoding_dsv32.py</c>, <c>encoding/encoding_dsv4.py</c> in the models' repositories): written here from
/// those files' <c>encode_messages</c> for system, user, assistant and tool messages, with the thinking switch
/// (<c>thinking_mode</c> "thinking" or "chat", default chat) and <c>drop_thinking</c>; tools offered in a system message
/// (<see cref="ChatMessage.Tools"/>), an answer's reasoning (<see cref="ChatMessage.Reasoning"/>) and its calls in DSML
/// (<see cref="Dsml"/>). The encoders always end a user turn with the assistant marker, so <c>addGenerationPrompt</c>
/// changes nothing. Checked against renderings made by running DeepSeek's files
/// (tests/fixtures/chat-templates/reference-dsv32.jsonl, reference-dsv4.jsonl, reference-tools-dsv32.jsonl,
/// reference-tools-dsv4.jsonl).
/// </summary>
internal sealed class DeepSeekEncoding : IChatTemplate
{
    public enum Version { V32, V4 }

    private const string Bos = "<｜begin▁of▁sentence｜>", Eos = R1ChatTemplate.EndOfSentence;
    private const string User = R1ChatTemplate.User, Assistant = R1ChatTemplate.Assistant;
    private const string Think = "<think>", Unthink = R1ChatTemplate.ThinkClose;

    /// <summary>encoding_dsv4.py REASONING_EFFORT_MAX: put first in thinking mode with reasoning_effort "max".</summary>
    public const string ReasoningEffortMaxPrompt =
        "Reasoning Effort: Absolute maximum with no shortcuts permitted.\n" +
        "You MUST be very thorough in your thinking and comprehensively decompose the problem to resolve the root cause, rigorously stress-testing your logic against all potential paths, edge cases, and adversarial scenarios.\n" +
        "Explicitly write out your entire deliberation process, documenting every intermediate step, considered alternative, and rejected hypothesis to ensure absolutely no assumption is left unchecked.\n\n";

    public DeepSeekEncoding(Version version, bool dropThinking = true, string? reasoningEffort = null)
    {
        if (reasoningEffort is not (null or "high" or "max"))
            throw new ArgumentException($"reasoning effort '{reasoningEffort}' is unknown (expected high or max)");
        EncodingVersion = version; DropThinking = dropThinking; ReasoningEffort = reasoningEffort;
    }

    public Version EncodingVersion { get; }
    /// <summary>encode_messages(drop_thinking=...): earlier turns lose their reasoning (the default).</summary>
    public bool DropThinking { get; }
    /// <summary>V4's reasoning_effort: null, "high" (adds nothing in this encoder) or "max" (a prefix in thinking mode).</summary>
    public string? ReasoningEffort { get; }

    public bool OpensReasoning => false;
    public bool HasThinkingSwitch => true;

    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true) => Render(messages, addGenerationPrompt, null);

    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt, bool? thinking)
    {
        ArgumentNullException.ThrowIfNull(messages);
        return EncodingVersion == Version.V32 ? RenderV32(messages, thinking ?? false) : RenderV4(messages, thinking ?? false);
    }

    /// <summary>V3.2 writes calls in a "function_calls" DSML block, V4 in a "tool_calls" one (<see cref="Dsml"/>).</summary>
    public ToolCallFormat? ToolCallFormat => EncodingVersion == Version.V32 ? Tokenization.ToolCallFormat.DsmlFunctionCalls : Tokenization.ToolCallFormat.DsmlToolCalls;

    /// <summary>A system turn as both encoders write it: its text, then the tool list when the request has tools.</summary>
    private static void AppendSystem(StringBuilder sb, ChatMessage m, ToolCallFormat format)
    {
        sb.Append(m.Content);
        if (m.Tools is { Count: > 0 } tools) sb.Append("\n\n").Append(Dsml.ToolsPrompt(tools, format));
    }

    /// <summary>
    /// encoding_dsv32.py render_message, message by message. drop_thinking changes nothing here: it drops the reasoning
    /// of answers before the last user turn, and only answers after it are written with theirs.
    /// </summary>
    private static string RenderV32(IReadOnlyList<ChatMessage> messages, bool thinking)
    {
        const ToolCallFormat format = Tokenization.ToolCallFormat.DsmlFunctionCalls;
        int lastUser = LastIndex(messages, "user");
        var sb = new StringBuilder(Bos);
        for (int i = 0; i < messages.Count; i++)
        {
            var m = messages[i];
            switch (m.Role)
            {
                case "system":
                    AppendSystem(sb, m, format);
                    break;
                case "user":
                    // user_msg_template "<｜User｜>{content}<｜Assistant｜>", then the mode: only the last user turn may think
                    sb.Append(User).Append(m.Content).Append(Assistant).Append(i == lastUser && thinking ? Think : Unthink);
                    break;
                case "assistant":
                    // after the last user turn, thinking mode writes the turn's reasoning, which it must have (or calls)
                    if (thinking && i > lastUser)
                    {
                        if (string.IsNullOrEmpty(m.Reasoning) && m.ToolCalls is not { Count: > 0 })
                            throw new ArgumentException($"message {i}: in thinking mode an assistant message after the last user message needs its reasoning or tool calls");
                        sb.Append(m.Reasoning).Append(Unthink);
                    }
                    sb.Append(m.Content);
                    if (m.ToolCalls is { Count: > 0 } calls) Dsml.AppendCalls(sb, calls, format);
                    sb.Append(Eos);
                    break;
                case "tool":
                    // the results of the assistant turn before them, in order: "<function_results>" opens with the first,
                    // closes with the one that answers its last call, and the mode's marker follows
                    int prev = i - 1;
                    while (prev >= 0 && messages[prev].Role == "tool") prev--;
                    int order = i - prev, callCount = prev >= 0 && messages[prev].Role == "assistant" ? messages[prev].ToolCalls?.Count ?? 0 : 0;
                    if (order > callCount)
                        throw new ArgumentException($"message {i}: a tool result needs an assistant message before it with a tool call for it ({callCount} calls, result {order})");
                    if (order == 1) sb.Append("\n\n<function_results>");
                    sb.Append("\n<result>").Append(m.Content).Append("</result>");
                    if (order == callCount) sb.Append("\n</function_results>\n\n").Append(i >= lastUser && thinking ? Think : Unthink);
                    break;
                default:
                    throw new ArgumentException($"message {i}: role '{m.Role}' is not supported (system, user, assistant, tool)");
            }
        }
        return sb.ToString();
    }

    /// <summary>
    /// encoding_dsv4.py encode_messages: merge_tool_messages (tool results and consecutive user messages become one user
    /// turn of "\n\n"-joined blocks), sort_tool_results_by_call_order, then render_message with its transition: a user
    /// turn followed by an assistant turn (or ending the conversation) gets "&lt;｜Assistant｜&gt;" and the mode's marker.
    /// A conversation with tools keeps every turn's reasoning (the encoder turns drop_thinking off when any message has tools).
    /// </summary>
    private string RenderV4(IReadOnlyList<ChatMessage> messages, bool thinking)
    {
        const ToolCallFormat format = Tokenization.ToolCallFormat.DsmlToolCalls;
        var merged = new List<(ChatMessage Message, List<Block> Blocks)>();   // user turns: their blocks
        foreach (var m in messages)
        {
            if (m.Role is not ("system" or "user" or "assistant" or "tool"))
                throw new ArgumentException($"role '{m.Role}' is not supported (system, user, assistant, tool)");
            if (m.Role is "user" or "tool")
            {
                var block = m.Role == "tool" ? new Block("<tool_result>" + m.Content + "</tool_result>", m.ToolCallId ?? "") : new Block(m.Content, null);
                if (merged.Count > 0 && merged[^1].Message.Role == "user") merged[^1].Blocks.Add(block);
                else merged.Add((new ChatMessage("user", ""), [block]));
            }
            else merged.Add((m, []));
        }
        var callOrder = new Dictionary<string, int>(StringComparer.Ordinal);   // the ids of the latest calls, by position
        foreach (var (m, blocks) in merged)
        {
            if (m.ToolCalls is { Count: > 0 } calls)
            {
                callOrder.Clear();
                for (int c = 0; c < calls.Count; c++) if (calls[c].Id.Length > 0) callOrder[calls[c].Id] = c;
            }
            else if (m.Role == "user" && callOrder.Count > 0) SortResults(blocks, callOrder);
        }

        bool dropThinking = DropThinking && !messages.Any(m => m.Tools is { Count: > 0 });
        int lastUser = -1;
        for (int i = merged.Count - 1; i >= 0 && lastUser < 0; i--) if (merged[i].Message.Role == "user") lastUser = i;

        var sb = new StringBuilder(Bos);
        for (int i = 0; i < merged.Count; i++)
        {
            var (m, blocks) = merged[i];
            if (i == 0 && thinking && ReasoningEffort == "max") sb.Append(ReasoningEffortMaxPrompt);
            switch (m.Role)
            {
                case "system":
                    AppendSystem(sb, m, format);
                    break;
                case "user":
                    sb.Append(User).AppendJoin("\n\n", blocks.Select(b => b.Text));
                    break;
                default:
                    // thinking mode writes the reasoning and "</think>" where it is kept
                    if (thinking && (!dropThinking || i > lastUser)) sb.Append(m.Reasoning).Append(Unthink);
                    sb.Append(m.Content);
                    if (m.ToolCalls is { Count: > 0 } calls) Dsml.AppendCalls(sb, calls, format);
                    sb.Append(Eos);
                    break;
            }
            if (i + 1 < merged.Count && merged[i + 1].Message.Role != "assistant") continue;
            if (m.Role == "user")
                sb.Append(Assistant).Append(thinking && (!dropThinking || i >= lastUser) ? Think : Unthink);
        }
        return sb.ToString();
    }

    /// <summary>One block of a merged V4 user turn: text, or a tool result with its call's id (ToolCallId null: text).</summary>
    private sealed record Block(string Text, string? ToolCallId);

    /// <summary>sort_tool_results_by_call_order: a turn's tool results (when more than one) take the order of the
    /// latest calls (an unknown id counts as the first; the sort is stable), text blocks keep their places.</summary>
    private static void SortResults(List<Block> blocks, Dictionary<string, int> order)
    {
        var results = blocks.Where(b => b.ToolCallId != null).ToList();
        if (results.Count < 2) return;
        var sorted = results.OrderBy(b => order.GetValueOrDefault(b.ToolCallId!, 0)).ToList();
        for (int i = 0, r = 0; i < blocks.Count; i++) if (blocks[i].ToolCallId != null) blocks[i] = sorted[r++];
    }

    /// <summary>
    /// The encoding a model folder's config.json names by its architecture (DeepseekV32ForCausalLM: V3.2,
    /// DeepseekV4ForCausalLM: V4), for tokenizers without a chat template; null otherwise, or when config.json is absent
    /// or unreadable (the model loader reports a bad config.json itself).
    /// </summary>
    public static DeepSeekEncoding? ForModelFolder(string folder)
    {
        string path = Path.Combine(folder, "config.json");
        if (!File.Exists(path)) return null;
        try
        {
            using var doc = System.Text.Json.JsonDocument.Parse(File.ReadAllBytes(path));
            if (!doc.RootElement.TryGetProperty("architectures", out var archs) || archs.ValueKind != System.Text.Json.JsonValueKind.Array) return null;
            foreach (var a in archs.EnumerateArray())
                if (ForArchitecture(a.ValueKind == System.Text.Json.JsonValueKind.String ? a.GetString() : null) is { } encoding) return encoding;
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or IOException or UnauthorizedAccessException) { }
        return null;
    }

    /// <summary>
    /// The encoding an architecture name stands for: config.json's DeepseekV32ForCausalLM or llama.cpp's GGUF
    /// <c>general.architecture</c> "deepseek32" (V3.2), DeepseekV4ForCausalLM (V4); null for any other.
    /// </summary>
    public static DeepSeekEncoding? ForArchitecture(string? architecture) => architecture switch
    {
        "DeepseekV32ForCausalLM" or "deepseek32" => new DeepSeekEncoding(Version.V32),
        "DeepseekV4ForCausalLM" => new DeepSeekEncoding(Version.V4),
        _ => null,
    };

    private static int LastIndex(IReadOnlyList<ChatMessage> messages, string role)
    {
        for (int i = messages.Count - 1; i >= 0; i--) if (messages[i].Role == role) return i;
        return -1;
    }
}
