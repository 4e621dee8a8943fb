using System.Text.Json;
using System.Text.Json.Serialization;
using System.Text.Json.Serialization.Metadata;
using Microsoft.Extensions.AI;

namespace DeepSeekCpu.Extensions.AI;

/// <summary>
/// The JSON of tool calls (arguments, results), serialized without reflection on the types below (System.Text.Json's
/// source generator): the shapes a call's arguments and a function's result usually have. Other types an application
/// puts in <see cref="FunctionCallContent.Arguments"/> or <see cref="FunctionResultContent.Result"/> are resolved by
/// <see cref="AIJsonUtilities.DefaultOptions"/>' resolver, which M.E.AI's own clients use for them: it covers M.E.AI's
/// types and falls back to reflection only where reflection is enabled (not in a native AOT app, where such a type
/// fails loudly). The options are otherwise System.Text.Json's defaults (no naming policy, the default encoder), so
/// the text is what <c>JsonSerializer.Serialize(value)</c> wrote before.
/// </summary>
[JsonSerializable(typeof(Dictionary<string, object?>))]
[JsonSerializable(typeof(IDictionary<string, object?>))]
[JsonSerializable(typeof(object))]
[JsonSerializable(typeof(JsonElement))]
[JsonSerializable(typeof(string))]
[JsonSerializable(typeof(bool))]
[JsonSerializable(typeof(int))]
[JsonSerializable(typeof(long))]
[JsonSerializable(typeof(float))]
[JsonSerializable(typeof(double))]
[JsonSerializable(typeof(decimal))]
[JsonSerializable(typeof(string[]))]
internal sealed partial class ToolJson : JsonSerializerContext
{
    /// <summary>Default options over this context, then M.E.AI's resolver for anything else.</summary>
    public static readonly JsonSerializerOptions SerializerOptions = new()
    {
        TypeInfoResolver = JsonTypeInfoResolver.Combine(Default, AIJsonUtilities.DefaultOptions.TypeInfoResolver),
    };

    /// <summary><paramref name="value"/> as JSON, by its runtime type (as <c>JsonSerializer.Serialize(object)</c>).</summary>
    public static string Serialize(object? value) => JsonSerializer.Serialize(value, SerializerOptions.GetTypeInfo(typeof(object)));

    /// <summary>A call's arguments as a JSON object.</summary>
    public static string SerializeArguments(IDictionary<string, object?> arguments) =>
        JsonSerializer.Serialize(arguments, (JsonTypeInfo<IDictionary<string, object?>>)SerializerOptions.GetTypeInfo(typeof(IDictionary<string, object?>)));

    /// <summary>A JSON object as a dictionary of <see cref="JsonElement"/> values.</summary>
    public static Dictionary<string, object?>? DeserializeArguments(string json) =>
        JsonSerializer.Deserialize(json, (JsonTypeInfo<Dictionary<string, object?>>)SerializerOptions.GetTypeInfo(typeof(Dictionary<string, object?>)));
}
