using System.Text.Json;
using DeepSeekCpu.Tokenization;
using DeepSeekCpu.Tokenizers;

namespace DeepSeekCpu.Tests.Tokenization;

/// <summary>
/// Locates the reference files. tests/fixtures/** is copied to the test output as fixtures/ (see the csproj);
/// the stories260K tokenizer lives in the repository's models/ folder, found by walking up from the output folder.
/// The tokenizers are loaded once per test run (loading the 151k vocabulary is the expensive part).
/// </summary>
internal static class TokenizerFixtures
{
    public const string Qwen = "r1-distill-qwen";
    public const string V3 = "deepseek-v3";

    public static string TokenizerDir(string name) => Path.Combine(AppContext.BaseDirectory, "fixtures", "tokenizers", name);

    public static string Tok512Path()
    {
        for (DirectoryInfo? d = new(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            string candidate = Path.Combine(d.FullName, "models", "stories260K", "tok512.bin");
            if (File.Exists(candidate))
                return candidate;
        }
        throw new FileNotFoundException("models/stories260K/tok512.bin not found above " + AppContext.BaseDirectory);
    }

    private static readonly Lazy<HfBpeTokenizer> s_qwen = new(() => TokenizerLoader.FromDirectory(TokenizerDir(Qwen)));
    private static readonly Lazy<HfBpeTokenizer> s_v3 = new(() => TokenizerLoader.FromDirectory(TokenizerDir(V3)));
    private static readonly Lazy<HfBpeTokenizer> s_qwenGguf = new(() => TokenizerLoader.FromGgufMetadata(GgufMetadata.FromTokenizerJson(TokenizerDir(Qwen), "deepseek-r1-qwen"), "qwen.gguf"));
    private static readonly Lazy<HfBpeTokenizer> s_v3Gguf = new(() => TokenizerLoader.FromGgufMetadata(GgufMetadata.FromTokenizerJson(TokenizerDir(V3), "deepseek-v3"), "v3.gguf"));

    public static HfBpeTokenizer Json(string name) => name == Qwen ? s_qwen.Value : s_v3.Value;
    public static HfBpeTokenizer Gguf(string name) => name == Qwen ? s_qwenGguf.Value : s_v3Gguf.Value;

    public sealed record Reference(int Line, string Text, int[] Ids, string Decoded);

    public static IReadOnlyList<Reference> Encodings(string name)
    {
        var list = new List<Reference>();
        int line = 0;
        foreach (string json in File.ReadLines(Path.Combine(TokenizerDir(name), "reference-encodings.jsonl")))
        {
            line++;
            if (json.Length == 0)
                continue;
            using JsonDocument doc = JsonDocument.Parse(json);
            JsonElement r = doc.RootElement;
            list.Add(new Reference(line, r.GetProperty("text").GetString()!,
                r.GetProperty("ids").EnumerateArray().Select(x => x.GetInt32()).ToArray(),
                r.GetProperty("decoded").GetString()!));
        }
        return list;
    }

    public sealed record ChatReference(int Line, ChatMessage[] Messages, bool AddGenerationPrompt, string Text, int[] Ids);

    public static IReadOnlyList<ChatReference> Chats(string name)
    {
        var list = new List<ChatReference>();
        int line = 0;
        foreach (string json in File.ReadLines(Path.Combine(TokenizerDir(name), "reference-chat.jsonl")))
        {
            line++;
            if (json.Length == 0)
                continue;
            using JsonDocument doc = JsonDocument.Parse(json);
            JsonElement r = doc.RootElement;
            var messages = r.GetProperty("messages").EnumerateArray()
                .Select(m => new ChatMessage(m.GetProperty("role").GetString()!, m.GetProperty("content").GetString()!)).ToArray();
            list.Add(new ChatReference(line, messages, r.GetProperty("add_generation_prompt").GetBoolean(), r.GetProperty("text").GetString()!,
                r.GetProperty("ids").GetProperty("input_ids").EnumerateArray().Select(x => x.GetInt32()).ToArray()));
        }
        return list;
    }

    public static string Show(IEnumerable<int> ids) => "[" + string.Join(",", ids) + "]";
}

/// <summary>
/// Builds GGUF-style tokenizer metadata from a tokenizer.json the way llama.cpp's convert_hf_to_gguf.py stores it:
/// tokens by id (gaps as "[PADn]" of type UNUSED), token types (added special or special-looking → CONTROL,
/// other added → USER_DEFINED, else NORMAL), merges as "a b". Numbers are boxed in mixed widths on purpose, to
/// exercise the reader's tolerance (the GGUF reader may hand us uint/long/int).
/// </summary>
internal static class GgufMetadata
{
    public static Dictionary<string, object> FromTokenizerJson(string dir, string pre)
    {
        using JsonDocument doc = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, "tokenizer.json")));
        JsonElement root = doc.RootElement;
        var byId = new Dictionary<int, string>();
        foreach (JsonProperty p in root.GetProperty("model").GetProperty("vocab").EnumerateObject())
            byId[p.Value.GetInt32()] = p.Name;
        var types = new Dictionary<int, int>();
        foreach (JsonElement t in root.GetProperty("added_tokens").EnumerateArray())
        {
            int id = t.GetProperty("id").GetInt32();
            string content = t.GetProperty("content").GetString()!;
            byId[id] = content;
            bool looksSpecial = (content.StartsWith("<|") && content.EndsWith("|>")) || (content.StartsWith("<｜") && content.EndsWith("｜>"));
            types[id] = t.GetProperty("special").GetBoolean() || looksSpecial ? 3 : 4;
        }
        int count = byId.Keys.Max() + 1;
        var tokens = new string[count];
        var tokenTypes = new int[count];
        for (int i = 0; i < count; i++)
        {
            if (byId.TryGetValue(i, out string? s))
            {
                tokens[i] = s;
                tokenTypes[i] = types.GetValueOrDefault(i, 1);
            }
            else
            {
                tokens[i] = $"[PAD{i}]";
                tokenTypes[i] = 5;
            }
        }
        var merges = root.GetProperty("model").GetProperty("merges").EnumerateArray()
            .Select(m => m.ValueKind == JsonValueKind.String ? m.GetString()! : m[0].GetString() + " " + m[1].GetString())
            .ToArray();

        using JsonDocument cfg = JsonDocument.Parse(File.ReadAllBytes(Path.Combine(dir, "tokenizer_config.json")));
        string TokenText(string key)
        {
            JsonElement e = cfg.RootElement.GetProperty(key);
            return e.ValueKind == JsonValueKind.String ? e.GetString()! : e.GetProperty("content").GetString()!;
        }
        int IdOf(string text) => byId.First(kv => kv.Value == text).Key;

        return new Dictionary<string, object>
        {
            ["general.architecture"] = pre == "deepseek-v3" ? "deepseek2" : "qwen2",
            ["tokenizer.ggml.model"] = "gpt2",
            ["tokenizer.ggml.pre"] = pre,
            ["tokenizer.ggml.tokens"] = tokens,
            ["tokenizer.ggml.token_type"] = tokenTypes.Select(x => (long)x).ToArray(), // long[] on purpose
            ["tokenizer.ggml.merges"] = merges,
            ["tokenizer.ggml.bos_token_id"] = (uint)IdOf(TokenText("bos_token")),    // uint on purpose
            ["tokenizer.ggml.eos_token_id"] = (long)IdOf(TokenText("eos_token")),    // long on purpose
            ["tokenizer.ggml.add_bos_token"] = true,
            ["tokenizer.chat_template"] = cfg.RootElement.GetProperty("chat_template").GetString()!,
        };
    }
}
