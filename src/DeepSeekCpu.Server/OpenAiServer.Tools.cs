using System.Text.Json.Nodes;
using DeepSeekCpu.Generation;
using DeepSeekCpu.Tokenization;

namespace DeepSeekCpu.Server;

/// <summary>Tool calls in the responses: <c>message.tool_calls</c>, streamed <c>delta.tool_calls</c> (one delta per call,
/// with its index, id, name and whole arguments) and the finish reason "tool_calls".</summary>
public static partial class OpenAiServer
{
    private static JsonObject ToolCallJson(ToolCall c) => new()
    {
        ["id"] = c.Id, ["type"] = "function", ["function"] = new JsonObject { ["name"] = c.Name, ["arguments"] = c.Arguments },
    };

    private static JsonArray ToolCallsJson(List<ToolCall> calls) => new([.. calls.Select(c => (JsonNode)ToolCallJson(c))]);

    /// <summary>A streamed delta carrying call number <paramref name="index"/> of the answer.</summary>
    private static JsonObject ToolCallDelta(ToolCall call, int index)
    {
        var c = ToolCallJson(call);
        c.Insert(0, "index", index);
        return new JsonObject { ["tool_calls"] = new JsonArray(c) };
    }

    /// <summary>"tool_calls" when the answer made calls, otherwise the generation's own reason.</summary>
    private static string Finish(GenerationResult r, int calls) => calls > 0 ? "tool_calls" : Finish(r);
}
