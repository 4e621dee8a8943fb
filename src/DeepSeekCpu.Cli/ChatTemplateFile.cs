using System.Text;
using System.Text.Json;
using DeepSeekCpu.Tokenization;
using DeepSeekCpu.Tokenizers;

namespace DeepSeekCpu.Cli;

/// <summary>
/// --chat-template FILE: the template that renders conversations instead of the model's own. Two forms:
/// <list type="bullet">
/// <item>a DeepSeek Jinja template (the text of tokenizer_config.json's "chat_template"), recognised by its markers
/// as the model's own would be (<see cref="R1ChatTemplate.FromJinja"/>);</item>
/// <item>this program's JSON format, one pattern per role with "{content}" where the message goes:
/// <code>
/// {"bos": "&lt;s&gt;", "system": "[SYS]{content}\n", "user": "[USER]{content}\n", "assistant": "[BOT]{content}&lt;/s&gt;\n",
///  "generation": "[BOT]", "stop": ["&lt;/s&gt;"], "strip_reasoning": true}
/// </code>
/// "bos" (optional) is written first, each message as its role's pattern, then "generation" when an answer is asked
/// for; "stop" lists tokens that end an answer besides the tokenizer's own; "strip_reasoning" (default true) keeps
/// only what follows "&lt;/think&gt;" of earlier answers, as R1's template does; "tool" (optional) is the pattern of
/// tool results.</item>
/// </list>
/// </summary>
internal sealed class ChatTemplateFile : IChatTemplate
{
    private static readonly string[] Keys = ["bos", "system", "user", "assistant", "tool", "generation", "stop", "strip_reasoning"];
    private readonly Dictionary<string, string> _roles;
    private readonly string _bos, _generation;
    private readonly bool _stripReasoning;

    private ChatTemplateFile(Dictionary<string, string> roles, string bos, string generation, bool stripReasoning, string[] stop)
    {
        _roles = roles; _bos = bos; _generation = generation; _stripReasoning = stripReasoning; Stop = stop;
    }

    /// <summary>Tokens that end an answer besides the tokenizer's.</summary>
    public string[] Stop { get; }

    public bool OpensReasoning => _generation.EndsWith("<think>\n", StringComparison.Ordinal) || _generation.EndsWith("<think>", StringComparison.Ordinal);

    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true)
    {
        var sb = new StringBuilder(_bos);
        foreach (var m in messages)
        {
            if (!_roles.TryGetValue(m.Role, out var pattern)) throw new ArgumentException($"the chat template has no pattern for role '{m.Role}'");
            string content = m.Role == "assistant" && _stripReasoning && m.Content.LastIndexOf("</think>", StringComparison.Ordinal) is int i and >= 0
                ? m.Content[(i + "</think>".Length)..] : m.Content;
            sb.Append(pattern.Replace("{content}", content, StringComparison.Ordinal));
        }
        if (addGenerationPrompt) sb.Append(_generation);
        return sb.ToString();
    }

    /// <summary>Reads FILE as JSON (this format) or as a DeepSeek Jinja template; one-line errors name the file and field.</summary>
    public static IChatTemplate Load(string path, ITokenizer tokenizer)
    {
        if (!File.Exists(path)) throw new FileNotFoundException($"{path}: chat template file not found");
        if (new FileInfo(path).Length > 1 << 20) throw new InvalidFileException($"{path}: a chat template of more than 1 MiB is not one");
        string text = File.ReadAllText(path);
        if (!text.TrimStart().StartsWith('{') || text.Contains("{%", StringComparison.Ordinal))
            return R1ChatTemplate.FromJinja(text, (tokenizer as HfBpeTokenizer)?.BosToken ?? "")
                ?? throw new InvalidFileException($"{path}: not a DeepSeek Jinja chat template (no <｜User｜>/<｜Assistant｜> markers); other models' templates need this program's JSON form (README: At the terminal)");
        JsonDocument doc;
        try { doc = JsonDocument.Parse(text); }
        catch (JsonException e) { throw new InvalidFileException($"{path}: not valid JSON ({e.Message.Split('\n')[0]})"); }
        using var _ = doc;
        if (doc.RootElement.ValueKind != JsonValueKind.Object) throw new InvalidFileException($"{path}: expected a JSON object");
        var roles = new Dictionary<string, string>();
        string bos = "", generation = "";
        bool strip = true;
        var stop = new List<string>();
        foreach (var p in doc.RootElement.EnumerateObject())
        {
            if (!Keys.Contains(p.Name)) throw new InvalidFileException($"{path}: unknown key \"{p.Name}\" (expected {string.Join(", ", Keys)})");
            switch (p.Name)
            {
                case "strip_reasoning":
                    strip = p.Value.ValueKind switch { JsonValueKind.True => true, JsonValueKind.False => false, _ => throw Bad(path, p.Name, "true or false") };
                    break;
                case "stop":
                    if (p.Value.ValueKind != JsonValueKind.Array || p.Value.EnumerateArray().Any(x => x.ValueKind != JsonValueKind.String)) throw Bad(path, p.Name, "an array of strings");
                    stop.AddRange(p.Value.EnumerateArray().Select(x => x.GetString()!));
                    break;
                default:
                    if (p.Value.ValueKind != JsonValueKind.String) throw Bad(path, p.Name, "a string");
                    string v = p.Value.GetString()!;
                    if (p.Name == "bos") bos = v;
                    else if (p.Name == "generation") generation = v;
                    else if (!v.Contains("{content}", StringComparison.Ordinal)) throw Bad(path, p.Name, "a pattern containing {content}");
                    else roles[p.Name] = v;
                    break;
            }
        }
        foreach (var required in new[] { "user", "assistant" })
            if (!roles.ContainsKey(required)) throw new InvalidFileException($"{path}: \"{required}\" is missing");
        if (generation.Length == 0) throw new InvalidFileException($"{path}: \"generation\" is missing (what opens the assistant's answer)");
        foreach (var s in stop)
            if (tokenizer.TokenToId(s) == null) throw new InvalidFileException($"{path}: \"stop\" holds '{s}', which is not a token of the model's vocabulary");
        return new ChatTemplateFile(roles, bos, generation, strip, [.. stop]);
    }

    private static InvalidFileException Bad(string path, string key, string expected) => new($"{path}: \"{key}\" should be {expected}");

    /// <summary>What a template is, for `info` and the warnings: "DeepSeek R1", "none", ...</summary>
    public static string Describe(ITokenizer tokenizer) => tokenizer.ChatTemplate switch
    {
        ChatTemplateFile => "from --chat-template (JSON form)",
        R1ChatTemplate t => "DeepSeek " + t.Style switch
        {
            DeepSeekChatStyle.ThinkingSwitch => "V3.1 (thinking switch, default off)",
            DeepSeekChatStyle.AssistantAfterUser => t.StripsReasoning ? "R1-0528" : "V3-0324",
            _ => t.OpensReasoning ? "R1 (opens <think>)" : "V3",
        },
        DeepSeekEncoding e => e.EncodingVersion == DeepSeekEncoding.Version.V32 ? "DeepSeek V3.2 encoding (encoding_dsv32.py)" : "DeepSeek V4 encoding (encoding_dsv4.py)",
        null when Unrecognised(tokenizer) => "not recognised: prompts are sent as plain text (give --chat-template FILE)",
        null => "none: prompts are continued as plain text",
        var t => t.GetType().Name,
    };

    /// <summary>The model ships a chat template this program does not render (only DeepSeek's are recognised).</summary>
    public static bool Unrecognised(ITokenizer tokenizer) =>
        tokenizer.ChatTemplate == null && (tokenizer as HfBpeTokenizer)?.ChatTemplateText is { Length: > 0 };
}

/// <summary>A tokenizer whose chat template is replaced (--chat-template) and whose stop tokens include the template's.</summary>
internal sealed class TemplatedTokenizer(ITokenizer inner, IChatTemplate template, IEnumerable<int> extraStops) : ITokenizer, IContextualTokenizer
{
    private readonly IReadOnlySet<int> _stops = inner.StopIds.Concat(extraStops).ToHashSet();

    public int VocabSize => inner.VocabSize;
    public int? BosId => inner.BosId;
    public int? EosId => inner.EosId;
    public IReadOnlySet<int> StopIds => _stops;
    public IChatTemplate? ChatTemplate => template;
    public int[] Encode(string text, bool addSpecial = false) => inner.Encode(text, addSpecial);
    public int[] Encode(string text, bool addSpecial, CancellationToken cancel) => inner.Encode(text, addSpecial, cancel);
    public string Decode(ReadOnlySpan<int> ids) => inner.Decode(ids);
    public ReadOnlySpan<byte> TokenBytes(int id) => inner.TokenBytes(id);
    public ReadOnlySpan<byte> TokenBytes(int id, int previousId) => inner is IContextualTokenizer c ? c.TokenBytes(id, previousId) : inner.TokenBytes(id);
    public int? TokenToId(string token) => inner.TokenToId(token);
}
