using System.Text;

namespace DeepSeekCpu.Tokenization;

/// <summary>
/// The prompt encodings of DeepSeek-V3.2 and DeepSeek-V4, which ship no Jinja template but a Python encoder
/// (<c>encoding/encoding_dsv32.py</c>, <c>encoding/encoding_dsv4.py</c> in the models' repositories): written here from
/// those files' <c>encode_messages</c> for the messages <see cref="ChatMessage"/> carries (system, user, assistant; V4 also
/// tool results), with the thinking switch (<c>thinking_mode</c> "thinking" or "chat", default chat) and
/// <c>drop_thinking</c>. Earlier answers carry no reasoning here (front ends send answers only), so drop_thinking
/// changes only V4's markers. The encoders always end a user turn with the assistant marker, so
/// <c>addGenerationPrompt</c> changes nothing. Checked against renderings made by running DeepSeek's files
/// (tests/fixtures/chat-templates/reference-dsv32.jsonl, reference-dsv4.jsonl).
/// </summary>
public sealed class DeepSeekEncoding : IChatTemplate
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

    /// <summary>encoding_dsv32.py render_message, message by message.</summary>
    private static string RenderV32(IReadOnlyList<ChatMessage> messages, bool thinking)
    {
        int lastUser = LastIndex(messages, "user");
        var sb = new StringBuilder(Bos);
        for (int i = 0; i < messages.Count; i++)
        {
            var m = messages[i];
            switch (m.Role)
            {
                case "system":
                    sb.Append(m.Content);
                    break;
                case "user":
                    // user_msg_template "<｜User｜>{content}<｜Assistant｜>", then the mode: only the last user turn may think
                    sb.Append(User).Append(m.Content).Append(Assistant).Append(i == lastUser && thinking ? Think : Unthink);
                    break;
                case "assistant":
                    // after the last user turn, thinking mode requires the reasoning (or tool calls) ChatMessage does not carry
                    if (thinking && i > lastUser)
                        throw new ArgumentException($"message {i}: in thinking mode an assistant message after the last user message needs its reasoning, which is not available");
                    sb.Append(m.Content).Append(Eos);
                    break;
                case "tool":
                    throw new ArgumentException($"message {i}: V3.2 tool results need the assistant's tool calls, which are not available");
                default:
                    throw new ArgumentException($"message {i}: role '{m.Role}' is not supported (system, user, assistant)");
            }
        }
        return sb.ToString();
    }

    /// <summary>
    /// encoding_dsv4.py encode_messages: merge_tool_messages (tool results and consecutive user messages become one user
    /// turn of "\n\n"-joined blocks), then render_message with its transition: a user turn followed by an assistant turn
    /// (or ending the conversation) gets "&lt;｜Assistant｜&gt;" and the mode's marker.
    /// </summary>
    private string RenderV4(IReadOnlyList<ChatMessage> messages, bool thinking)
    {
        var merged = new List<(string Role, List<string> Parts)>();   // role, content (user: blocks)
        foreach (var m in messages)
        {
            string block = m.Role switch
            {
                "tool" => "<tool_result>" + m.Content + "</tool_result>",
                "system" or "user" or "assistant" => m.Content,
                _ => throw new ArgumentException($"role '{m.Role}' is not supported (system, user, assistant, tool)"),
            };
            bool userBlock = m.Role is "user" or "tool";
            if (userBlock && merged.Count > 0 && merged[^1].Role == "user") merged[^1].Parts.Add(block);
            else merged.Add((userBlock ? "user" : m.Role, [block]));
        }
        int lastUser = -1;
        for (int i = merged.Count - 1; i >= 0 && lastUser < 0; i--) if (merged[i].Role == "user") lastUser = i;

        var sb = new StringBuilder(Bos);
        for (int i = 0; i < merged.Count; i++)
        {
            var (role, parts) = merged[i];
            if (i == 0 && thinking && ReasoningEffort == "max") sb.Append(ReasoningEffortMaxPrompt);
            switch (role)
            {
                case "system":
                    sb.Append(parts[0]);
                    break;
                case "user":
                    sb.Append(User).AppendJoin("\n\n", parts);
                    break;
                default:
                    // thinking mode writes the (empty) reasoning and "</think>" where it is kept
                    if (thinking && (!DropThinking || i > lastUser)) sb.Append(Unthink);
                    sb.Append(parts[0]).Append(Eos);
                    break;
            }
            if (i + 1 < merged.Count && merged[i + 1].Role != "assistant") continue;
            if (role == "user")
                sb.Append(Assistant).Append(thinking && (!DropThinking || i >= lastUser) ? Think : Unthink);
        }
        return sb.ToString();
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
                switch (a.ValueKind == System.Text.Json.JsonValueKind.String ? a.GetString() : null)
                {
                    case "DeepseekV32ForCausalLM": return new DeepSeekEncoding(Version.V32);
                    case "DeepseekV4ForCausalLM": return new DeepSeekEncoding(Version.V4);
                }
        }
        catch (Exception e) when (e is System.Text.Json.JsonException or IOException or UnauthorizedAccessException) { }
        return null;
    }

    private static int LastIndex(IReadOnlyList<ChatMessage> messages, string role)
    {
        for (int i = messages.Count - 1; i >= 0; i--) if (messages[i].Role == role) return i;
        return -1;
    }
}
