using System.Text.Json.Nodes;
using DeepSeekCpu.Generation;
using DeepSeekCpu.Tokenization;

namespace DeepSeekCpu.Server;

/// <summary>Tool calls in the responses: <c>message.tool_calls</c>, streamed <c>delta.tool_calls</c> (a call's start with
/// its index, id and name, then its arguments in pieces as they are generated) and the finish reason "tool_calls".</summary>
internal static partial class OpenAiServer
{
    private static JsonObject ToolCallJson(ToolCall c) => new()
    {
        ["id"] = c.Id, ["type"] = "function", ["function"] = new JsonObject { ["name"] = c.Name, ["arguments"] = c.Arguments },
    };

    private static JsonArray ToolCallsJson(List<ToolCall> calls) => new([.. calls.Select(c => (JsonNode)ToolCallJson(c))]);

    /// <summary>
    /// A streamed piece of a call, as OpenAI streams calls: the first delta of call <c>index</c> carries its id, type,
    /// name and empty arguments, the next ones only the index and a piece of the arguments (clients join the pieces).
    /// A call abandoned after its start (its markup broke) sends nothing more; its text follows as content.
    /// </summary>
    private static JsonObject? ToolCallDelta(ToolCallFragment f)
    {
        if (f.Kind == ToolCallFragmentKind.Abandoned) return null;
        var call = f.Kind == ToolCallFragmentKind.Start
            ? new JsonObject
            {
                ["index"] = f.Index, ["id"] = f.Id, ["type"] = "function", ["function"] = new JsonObject { ["name"] = f.Name, ["arguments"] = "" },
            }
            : new JsonObject { ["index"] = f.Index, ["function"] = new JsonObject { ["arguments"] = f.Arguments } };
        return new JsonObject { ["tool_calls"] = new JsonArray(call) };
    }

    /// <summary>"tool_calls" when the answer made calls, otherwise the generation's own reason.</summary>
    private static string Finish(GenerationResult r, int calls) => calls > 0 ? "tool_calls" : Finish(r);
}
