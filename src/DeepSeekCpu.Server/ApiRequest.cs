using System.Text.Json;
using DeepSeekCpu.Generation;
using DeepSeekCpu.Tokenization;

namespace DeepSeekCpu.Server;

/// <summary>An error answered in OpenAI's shape: {"error": {"message", "type", "param", "code"}} with an HTTP status.</summary>
internal sealed class ApiError(int status, string message, string? param = null, string type = "invalid_request_error", string? code = null)
    : Exception(ModelFormatException.OneLine(message))   // messages quote the request ("the model 'x\n' ..."): one line, cut past 1 KB
{
    public int Status { get; } = status;
    public string? Param { get; } = param;
    public string Type { get; } = type;
    public string? Code { get; } = code;
}

/// <summary>
/// A parsed /v1/chat/completions or /v1/completions body. Fields and ranges follow the OpenAI API reference
/// (platform.openai.com/docs/api-reference/chat/create), with the sampling extensions llama.cpp's server and vLLM
/// accept (top_k, min_p, repetition_penalty). Every problem is reported as an <see cref="ApiError"/> naming the field.
/// </summary>
internal sealed partial class ApiRequest
{
    public List<ChatMessage>? Messages;     // chat
    public string? Prompt;                  // completion
    public bool Stream;
    public bool IncludeUsage;
    /// <summary>The chat template's thinking switch (V3.1): chat_template_kwargs.thinking or reasoning_effort; null: its default.</summary>
    public bool? Thinking;
    public GenerationRequest Generation = new();

    public static ApiRequest Parse(JsonDocument doc, bool chat, string servedModel, ServerLimits? limits = null)
    {
        // JsonDocument checks the structure; a string is decoded only when read, where invalid UTF-8 or an escaped
        // lone surrogate ("\ud800") throws InvalidOperationException. Both are the client's error, not the server's.
        try { return ParseChecked(doc, chat, servedModel, limits ?? ServerLimits.Default with { MaxPromptChars = int.MaxValue }); }
        catch (InvalidOperationException e) when (e is not ObjectDisposedException)
        {
            throw new ApiError(400, "the request body holds a string that is not valid Unicode (invalid UTF-8 or an escaped lone surrogate)");
        }
    }

    private static ApiRequest ParseChecked(JsonDocument doc, bool chat, string servedModel, ServerLimits limits)
    {
        var root = doc.RootElement;
        if (root.ValueKind != JsonValueKind.Object) throw new ApiError(400, "the request body must be a JSON object");
        var r = new ApiRequest();

        if (root.TryGetProperty("model", out var model))
        {
            if (model.ValueKind != JsonValueKind.String) throw new ApiError(400, "model must be a string", "model");
            string id = model.GetString()!;
            if (id.Length > 0 && id != servedModel)
                throw new ApiError(404, $"the model '{id}' does not exist here; this server serves '{servedModel}'", "model", code: "model_not_found");
        }

        if (chat)
        {
            if (!root.TryGetProperty("messages", out var msgs)) throw new ApiError(400, "messages is required", "messages");
            if (msgs.ValueKind != JsonValueKind.Array || msgs.GetArrayLength() == 0)
                throw new ApiError(400, "messages must be a non-empty array", "messages");
            if (msgs.GetArrayLength() > limits.MaxMessages)
                throw new ApiError(400, $"messages has {msgs.GetArrayLength()} entries; this server takes at most {limits.MaxMessages}", "messages");
            r.Messages = [];
            long chars = 0;
            int i = 0;
            foreach (var m in msgs.EnumerateArray())
            {
                string at = $"messages[{i}]";
                r.Messages.Add(ParseMessage(m, at));
                chars += r.Messages[^1].Content.Length;
                i++;
            }
            if (chars > limits.MaxPromptChars)
                throw new ApiError(400, $"the messages hold {chars} characters; this server takes at most {limits.MaxPromptChars}", "messages", code: "context_length_exceeded");
        }
        else
        {
            if (!root.TryGetProperty("prompt", out var p)) throw new ApiError(400, "prompt is required", "prompt");
            r.Prompt = p.ValueKind switch
            {
                JsonValueKind.String => p.GetString(),
                JsonValueKind.Array when p.GetArrayLength() == 1 && p[0].ValueKind == JsonValueKind.String => p[0].GetString(),
                _ => throw new ApiError(400, "prompt must be a string (or an array of one string)", "prompt"),
            };
            if (string.IsNullOrEmpty(r.Prompt)) throw new ApiError(400, "prompt must not be empty", "prompt");
            if (r.Prompt.Length > limits.MaxPromptChars)
                throw new ApiError(400, $"the prompt has {r.Prompt.Length} characters; this server takes at most {limits.MaxPromptChars}", "prompt", code: "context_length_exceeded");
        }

        var sampling = new SamplingOptions();
        // OpenAI's default for chat is whatever the context leaves (reasoning models need it: R1 thinks for thousands of
        // tokens); for completions it is 16. The engine caps it at the context.
        int maxTokens = Int(root, "max_completion_tokens") ?? Int(root, "max_tokens") ?? (chat ? int.MaxValue : 16);
        if (maxTokens < 1) throw new ApiError(400, $"max_tokens must be at least 1 (got {maxTokens})", "max_tokens");
        if (Number(root, "temperature") is double t)
        {
            if (t < 0 || t > 2) throw new ApiError(400, $"temperature must be between 0 and 2 (got {t})", "temperature");
            sampling = sampling with { Temperature = (float)t };
        }
        if (Number(root, "top_p") is double tp)
        {
            if (!(tp > 0 && tp <= 1)) throw new ApiError(400, $"top_p must be in (0, 1] (got {tp})", "top_p");
            sampling = sampling with { TopP = (float)tp };
        }
        if (Int(root, "top_k") is int tk)
        {
            if (tk < 0) throw new ApiError(400, $"top_k must be >= 0 (got {tk})", "top_k");
            sampling = sampling with { TopK = tk };
        }
        if (Number(root, "min_p") is double mp)
        {
            if (!(mp >= 0 && mp < 1)) throw new ApiError(400, $"min_p must be in [0, 1) (got {mp})", "min_p");
            sampling = sampling with { MinP = (float)mp };
        }
        if (Number(root, "repetition_penalty") is double rp)
        {
            if (!(rp > 0)) throw new ApiError(400, $"repetition_penalty must be > 0 (got {rp})", "repetition_penalty");
            sampling = sampling with { RepetitionPenalty = (float)rp };
        }
        if (root.TryGetProperty("seed", out var seed) && seed.ValueKind != JsonValueKind.Null)
        {
            if (seed.ValueKind != JsonValueKind.Number || !seed.TryGetInt64(out long sv)) throw new ApiError(400, "seed must be an integer", "seed");
            sampling = sampling with { Seed = unchecked((ulong)sv) };
        }
        if (chat) r.Tools = ParseTools(root);
        // Thinking switch of hybrid templates (V3.1): vLLM's and SGLang's chat_template_kwargs {"thinking": bool} (or
        // "enable_thinking"), else OpenAI's reasoning_effort ("none" = answer directly). Templates without one ignore it.
        if (root.TryGetProperty("chat_template_kwargs", out var kw) && kw.ValueKind != JsonValueKind.Null)
        {
            if (kw.ValueKind != JsonValueKind.Object) throw new ApiError(400, "chat_template_kwargs must be an object", "chat_template_kwargs");
            foreach (var key in new[] { "thinking", "enable_thinking" })
                if (kw.TryGetProperty(key, out var th) && th.ValueKind != JsonValueKind.Null)
                    r.Thinking = th.ValueKind switch
                    {
                        JsonValueKind.True => true, JsonValueKind.False => false,
                        _ => throw new ApiError(400, $"chat_template_kwargs.{key} must be true or false", "chat_template_kwargs." + key),
                    };
        }
        if (r.Thinking == null && root.TryGetProperty("reasoning_effort", out var effort) && effort.ValueKind != JsonValueKind.Null)
        {
            if (effort.ValueKind != JsonValueKind.String) throw new ApiError(400, "reasoning_effort must be a string", "reasoning_effort");
            try { r.Thinking = ThinkingOption.FromReasoningEffort(effort.GetString()); }
            catch (ArgumentException e) { throw new ApiError(400, e.Message, "reasoning_effort"); }
        }

        var stops = new List<string>();
        if (root.TryGetProperty("stop", out var stop) && stop.ValueKind != JsonValueKind.Null)
        {
            if (stop.ValueKind == JsonValueKind.String) stops.Add(stop.GetString()!);
            else if (stop.ValueKind == JsonValueKind.Array && stop.GetArrayLength() <= limits.MaxStopStrings && stop.EnumerateArray().All(s => s.ValueKind == JsonValueKind.String))
                stops.AddRange(stop.EnumerateArray().Select(s => s.GetString()!));
            else throw new ApiError(400, $"stop must be a string or an array of up to {limits.MaxStopStrings} strings", "stop");
            stops.RemoveAll(s => s.Length == 0);
            if (stops.Any(s => s.Length > limits.MaxStopChars))
                throw new ApiError(400, $"each stop string may have at most {limits.MaxStopChars} characters", "stop");
        }

        if (root.TryGetProperty("stream", out var stream) && stream.ValueKind != JsonValueKind.Null)
        {
            if (stream.ValueKind is not (JsonValueKind.True or JsonValueKind.False)) throw new ApiError(400, "stream must be true or false", "stream");
            r.Stream = stream.GetBoolean();
        }
        if (root.TryGetProperty("stream_options", out var so) && so.ValueKind == JsonValueKind.Object
            && so.TryGetProperty("include_usage", out var iu) && iu.ValueKind == JsonValueKind.True)
            r.IncludeUsage = true;

        r.Generation = new GenerationRequest { MaxTokens = maxTokens, Sampling = sampling, Stop = stops };
        r.ParseOpenAiFields(root, chat);
        return r;
    }

    /// <summary>A message's content: a string, or an array of {"type": "text", "text": ...} parts joined.</summary>
    private static string Content(JsonElement m, string at)
    {
        if (!m.TryGetProperty("content", out var c) || c.ValueKind == JsonValueKind.Null) return "";
        if (c.ValueKind == JsonValueKind.String) return c.GetString()!;
        if (c.ValueKind == JsonValueKind.Array)
        {
            var sb = new System.Text.StringBuilder();
            int k = 0;
            foreach (var part in c.EnumerateArray())
            {
                if (part.ValueKind != JsonValueKind.Object || !part.TryGetProperty("type", out var type)
                    || type.ValueKind != JsonValueKind.String || type.GetString() != "text"
                    || !part.TryGetProperty("text", out var text) || text.ValueKind != JsonValueKind.String)
                    throw new ApiError(400, $"{at}.content[{k}] must be a text part ({{\"type\": \"text\", \"text\": ...}}); other parts are not supported", $"{at}.content");
                sb.Append(text.GetString());
                k++;
            }
            return sb.ToString();
        }
        throw new ApiError(400, $"{at}.content must be a string or an array of text parts", $"{at}.content");
    }

    private static double? Number(JsonElement root, string name)
    {
        if (!root.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind != JsonValueKind.Number) throw new ApiError(400, $"{name} must be a number", name);
        return v.GetDouble();
    }

    private static int? Int(JsonElement root, string name)
    {
        if (!root.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind != JsonValueKind.Number || !v.TryGetInt32(out int i)) throw new ApiError(400, $"{name} must be an integer", name);
        return i;
    }
}
