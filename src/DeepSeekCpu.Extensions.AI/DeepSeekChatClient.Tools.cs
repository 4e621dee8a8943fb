using System.Text.Json;
using Microsoft.Extensions.AI;
using EngineMessage = DeepSeekCpu.Tokenization.ChatMessage;
using EngineCall = DeepSeekCpu.Tokenization.ToolCall;
using ToolOptions = DeepSeekCpu.Tokenization.ToolOptions;
using ToolDefinition = DeepSeekCpu.Tokenization.ToolDefinition;
using ToolChoiceMode = DeepSeekCpu.Tokenization.ToolChoiceMode;

namespace DeepSeekCpu.Extensions.AI;

/// <summary>
/// Function calling: <see cref="ChatOptions.Tools"/> (function declarations), <see cref="ChatOptions.ToolMode"/> and
/// <see cref="ChatOptions.AllowMultipleToolCalls"/> become the engine's <see cref="ToolOptions"/>; the model's calls come
/// back as <see cref="FunctionCallContent"/>, and <see cref="FunctionResultContent"/> in a tool message is rendered as
/// the template's tool output, so <c>UseFunctionInvocation()</c> can run the loop.
/// </summary>
public sealed partial class DeepSeekChatClient
{
    /// <summary>A message as the engine's messages: a tool message becomes one "tool" turn per result (with its call
    /// id); an assistant's function calls its tool calls and its reasoning its <see cref="EngineMessage.Reasoning"/>
    /// (only the V3.2/V4 encodings write it back; the Jinja templates strip reasoning).</summary>
    private static IEnumerable<EngineMessage> ToEngine(ChatMessage m)
    {
        string text = string.Concat(m.Contents.OfType<TextContent>().Select(c => c.Text));
        if (m.Role == ChatRole.Tool)
        {
            foreach (var r in m.Contents.OfType<FunctionResultContent>())
                yield return new EngineMessage("tool", ResultText(r.Result)) { ToolCallId = r.CallId };
            if (text.Length > 0) yield return new EngineMessage("tool", text);
            yield break;
        }
        string role = m.Role == ChatRole.System ? "system" : m.Role == ChatRole.User ? "user" : m.Role == ChatRole.Assistant ? "assistant"
            : throw new NotSupportedException($"chat role '{m.Role}' is not supported (system, user, assistant and tool are)");
        var calls = m.Contents.OfType<FunctionCallContent>()
            .Select(c => new EngineCall(c.CallId, c.Name, ToolJson.SerializeArguments(c.Arguments ?? new Dictionary<string, object?>()))).ToList();
        var reasoning = m.Contents.OfType<TextReasoningContent>().Select(c => c.Text).ToList();
        yield return new EngineMessage(role, text)
        {
            ToolCalls = role == "assistant" && calls.Count > 0 ? calls : null,
            Reasoning = role == "assistant" && reasoning.Count > 0 ? string.Concat(reasoning) : null,
        };
    }

    /// <summary>A function's result as the tool turn's text: a string as it is, anything else as JSON.</summary>
    private static string ResultText(object? result) => result switch
    {
        null => "",
        string s => s,
        JsonElement e when e.ValueKind == JsonValueKind.String => e.GetString()!,
        _ => ToolJson.Serialize(result),
    };

    private static ToolOptions? Tools(ChatOptions? options)
    {
        if (options?.Tools is not { Count: > 0 } tools) return null;
        var defs = new List<ToolDefinition>();
        foreach (var t in tools)
        {
            if (t is not AIFunctionDeclaration f) throw new NotSupportedException($"tool '{t.Name}' ({t.GetType().Name}) is not a function; only functions are supported");
            defs.Add(new ToolDefinition(f.Name, f.Description, f.JsonSchema.GetRawText()));
        }
        var (mode, name) = options.ToolMode switch
        {
            null or AutoChatToolMode => (ToolChoiceMode.Auto, null),
            NoneChatToolMode => (ToolChoiceMode.None, null),
            RequiredChatToolMode { RequiredFunctionName: null } => (ToolChoiceMode.Required, null),
            RequiredChatToolMode r => (ToolChoiceMode.Function, r.RequiredFunctionName),
            var other => throw new NotSupportedException($"tool mode {other} is not supported"),
        };
        return new ToolOptions(defs, mode, name, options.AllowMultipleToolCalls ?? true);
    }

    /// <summary>An engine call as M.E.AI's content, its JSON arguments as a dictionary of JSON values.</summary>
    private static FunctionCallContent CallContent(EngineCall call) =>
        new(call.Id, call.Name, ToolJson.DeserializeArguments(call.Arguments));
}

/// <summary>Structured output and thinking control from <see cref="ChatOptions"/>.</summary>
public sealed partial class DeepSeekChatClient
{
    /// <summary>ChatResponseFormat: Text constrains nothing, Json without a schema any object, Json with one its schema.</summary>
    private static DeepSeekCpu.Generation.Grammar? ResponseGrammar(ChatOptions? options) => options?.ResponseFormat switch
    {
        null or ChatResponseFormatText => null,
        ChatResponseFormatJson { Schema: null } => DeepSeekCpu.Generation.JsonSchemaGrammar.AnyObject(),
        ChatResponseFormatJson { Schema: { } schema } => DeepSeekCpu.Generation.JsonSchemaGrammar.FromSchema(schema.GetRawText()),
        var other => throw new NotSupportedException($"response format {other.GetType().Name} is not supported"),
    };

    /// <summary>AdditionalProperties["reasoning_budget"]: most reasoning tokens before "&lt;/think&gt;" is forced.</summary>
    private static int? ReasoningBudget(ChatOptions? options)
    {
        if (options?.AdditionalProperties is not { } extra || !extra.TryGetValue("reasoning_budget", out var b) || b == null) return null;
        int n = Convert.ToInt32(b, System.Globalization.CultureInfo.InvariantCulture);
        return n >= 0 ? n : throw new ArgumentException($"AdditionalProperties[\"reasoning_budget\"] must be >= 0 (got {n})");
    }
}
