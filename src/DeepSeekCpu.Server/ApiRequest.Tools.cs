using System.Text.Json;
using DeepSeekCpu.Tokenization;

namespace DeepSeekCpu.Server;

/// <summary>
/// Function calling in a chat request (OpenAI API reference, chat/create): <c>tools</c> (type "function" with name,
/// description, parameters), <c>tool_choice</c> ("none", "auto", "required" or {"type": "function", "function":
/// {"name"}}), <c>parallel_tool_calls</c>; messages of role "tool" and assistant messages with <c>tool_calls</c>.
/// </summary>
internal sealed partial class ApiRequest
{
    /// <summary>The tools offered and how (null: none).</summary>
    public ToolOptions? Tools;

    /// <summary>One entry of messages: role, content and, for an assistant, its tool calls.</summary>
    private static ChatMessage ParseMessage(JsonElement m, string at)
    {
        if (m.ValueKind != JsonValueKind.Object) throw new ApiError(400, $"{at} must be an object with role and content", at);
        if (!m.TryGetProperty("role", out var role) || role.ValueKind != JsonValueKind.String
            || role.GetString() is not ("system" or "developer" or "user" or "assistant" or "tool"))
            throw new ApiError(400, $"{at}.role must be one of system, developer, user, assistant, tool", at + ".role");
        string roleName = role.GetString() == "developer" ? "system" : role.GetString()!;
        var message = new ChatMessage(roleName, Content(m, at));
        // what V3.2/V4 write back: a tool result's call id (V4 orders results by it), an answer's reasoning
        if (roleName == "tool") message = message with { ToolCallId = Str(m, "tool_call_id", at) };
        if (roleName == "assistant") message = message with { Reasoning = Str(m, "reasoning_content", at) };
        if (roleName != "assistant" || !m.TryGetProperty("tool_calls", out var calls) || calls.ValueKind == JsonValueKind.Null) return message;
        if (calls.ValueKind != JsonValueKind.Array) throw new ApiError(400, $"{at}.tool_calls must be an array", at + ".tool_calls");
        var list = new List<ToolCall>();
        int i = 0;
        foreach (var c in calls.EnumerateArray())
        {
            string ci = $"{at}.tool_calls[{i++}]";
            if (c.ValueKind != JsonValueKind.Object || !c.TryGetProperty("function", out var f) || f.ValueKind != JsonValueKind.Object)
                throw new ApiError(400, $"{ci} must be an object with a function", ci);
            string name = Str(f, "name", ci + ".function") ?? throw new ApiError(400, $"{ci}.function.name is required", ci + ".function.name");
            string args = Str(f, "arguments", ci + ".function") ?? "{}";
            string id = Str(c, "id", ci) ?? ToolCall.NewId();
            list.Add(new ToolCall(id, name, args));
        }
        return message with { ToolCalls = list.Count > 0 ? list : null };
    }

    private static ToolOptions? ParseTools(JsonElement root)
    {
        var defs = new List<ToolDefinition>();
        if (root.TryGetProperty("tools", out var tools) && tools.ValueKind != JsonValueKind.Null)
        {
            if (tools.ValueKind != JsonValueKind.Array) throw new ApiError(400, "tools must be an array", "tools");
            int i = 0;
            foreach (var t in tools.EnumerateArray())
            {
                string at = $"tools[{i++}]";
                if (t.ValueKind != JsonValueKind.Object || Str(t, "type", at) != "function" || !t.TryGetProperty("function", out var f) || f.ValueKind != JsonValueKind.Object)
                    throw new ApiError(400, $"{at} must be {{\"type\": \"function\", \"function\": {{...}}}}", at);
                string name = Str(f, "name", at + ".function") ?? "";
                // OpenAI: a-z, A-Z, 0-9, underscores and dashes, at most 64
                if (name.Length is 0 or > 64 || !name.All(ch => char.IsAsciiLetterOrDigit(ch) || ch is '_' or '-'))
                    throw new ApiError(400, $"{at}.function.name must be 1 to 64 letters, digits, underscores or dashes", at + ".function.name");
                if (defs.Any(d => d.Name == name)) throw new ApiError(400, $"{at}.function.name '{name}' appears twice", at + ".function.name");
                string parameters = """{"type":"object","properties":{}}""";
                if (f.TryGetProperty("parameters", out var p) && p.ValueKind != JsonValueKind.Null)
                {
                    if (p.ValueKind != JsonValueKind.Object) throw new ApiError(400, $"{at}.function.parameters must be a JSON schema object", at + ".function.parameters");
                    parameters = p.GetRawText();
                }
                defs.Add(new ToolDefinition(name, Str(f, "description", at + ".function"), parameters));
            }
        }

        var mode = ToolChoiceMode.Auto;
        string? function = null;
        if (root.TryGetProperty("tool_choice", out var choice) && choice.ValueKind != JsonValueKind.Null)
        {
            if (choice.ValueKind == JsonValueKind.String)
                mode = choice.GetString() switch
                {
                    "auto" => ToolChoiceMode.Auto, "none" => ToolChoiceMode.None, "required" => ToolChoiceMode.Required,
                    var other => throw new ApiError(400, $"tool_choice '{other}' is unknown (expected none, auto, required or a function)", "tool_choice"),
                };
            else if (choice.ValueKind == JsonValueKind.Object && choice.TryGetProperty("function", out var cf) && cf.ValueKind == JsonValueKind.Object
                     && Str(cf, "name", "tool_choice.function") is { } n)
            {
                mode = ToolChoiceMode.Function; function = n;
                if (!defs.Any(d => d.Name == n)) throw new ApiError(400, $"tool_choice names '{n}', which is not among the tools", "tool_choice");
            }
            else throw new ApiError(400, "tool_choice must be \"none\", \"auto\", \"required\" or {\"type\": \"function\", \"function\": {\"name\": ...}}", "tool_choice");
            if (mode is ToolChoiceMode.Required && defs.Count == 0) throw new ApiError(400, "tool_choice 'required' needs tools", "tool_choice");
        }
        bool parallel = true;
        if (root.TryGetProperty("parallel_tool_calls", out var par) && par.ValueKind != JsonValueKind.Null)
        {
            if (par.ValueKind is not (JsonValueKind.True or JsonValueKind.False)) throw new ApiError(400, "parallel_tool_calls must be true or false", "parallel_tool_calls");
            parallel = par.GetBoolean();
        }
        return defs.Count == 0 ? null : new ToolOptions(defs, mode, function, parallel);
    }

    /// <summary>A string member, or null when absent or null; any other kind is a 400 naming it.</summary>
    private static string? Str(JsonElement obj, string name, string at)
    {
        if (!obj.TryGetProperty(name, out var v) || v.ValueKind == JsonValueKind.Null) return null;
        if (v.ValueKind != JsonValueKind.String) throw new ApiError(400, $"{at}.{name} must be a string", $"{at}.{name}");
        return v.GetString();
    }
}
