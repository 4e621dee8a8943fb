using System.Text;
using System.Text.Json;

namespace DeepSeekCpu.Tokenization;

/// <summary>
/// DSML, the tool-call markup of DeepSeek-V3.2 and DeepSeek-V4, as their encoders write it (encoding_dsv32.py and
/// encoding_dsv4.py: TOOLS_SYSTEM_TEMPLATE / TOOLS_TEMPLATE, tool_calls_template, tool_call_template,
/// encode_arguments_to_dsml). A turn's calls follow its text after a blank line:
/// <code>
/// \n\n&lt;｜DSML｜function_calls&gt;                       (V4: &lt;｜DSML｜tool_calls&gt;)
/// &lt;｜DSML｜invoke name="NAME"&gt;
/// &lt;｜DSML｜parameter name="KEY" string="true"&gt;text as is&lt;/｜DSML｜parameter&gt;
/// &lt;｜DSML｜parameter name="KEY2" string="false"&gt;JSON value&lt;/｜DSML｜parameter&gt;
/// &lt;/｜DSML｜invoke&gt;
/// &lt;/｜DSML｜function_calls&gt;
/// </code>
/// one invoke per call ("\n" between), one parameter per top-level argument ("\n" between). The tool list is part of
/// the system prompt: the prompt text below (the model was trained on it, so it is carried over word for word) with one
/// JSON line per function (name, description, parameters) in Python's json.dumps style (<see cref="PythonJson"/>).
/// </summary>
internal static class Dsml
{
    public const string Token = "｜DSML｜";
    public const string InvokeOpen = "<" + Token + "invoke name=\"";
    public const string InvokeClose = "</" + Token + "invoke>";
    public const string ParameterOpen = "<" + Token + "parameter name=\"";
    public const string ParameterClose = "</" + Token + "parameter>";

    /// <summary>The block's name: "function_calls" in V3.2, "tool_calls" in V4.</summary>
    public static string BlockName(ToolCallFormat format) => format switch
    {
        ToolCallFormat.DsmlFunctionCalls => "function_calls",
        ToolCallFormat.DsmlToolCalls => "tool_calls",
        _ => throw new ArgumentOutOfRangeException(nameof(format), format, "not a DSML format"),
    };

    public static string BlockOpen(ToolCallFormat format) => "<" + Token + BlockName(format) + ">";
    public static string BlockClose(ToolCallFormat format) => "</" + Token + BlockName(format) + ">";

    /// <summary>encoding_dsv32.py TOOLS_SYSTEM_TEMPLATE with its tokens filled in; {0} is the schema lines, {1} the example block.</summary>
    private const string ToolsV32 = """
        ## Tools

        You have access to a set of tools you can use to answer the user's question.
        You can invoke functions by writing a "<｜DSML｜function_calls>" block like the following as part of your reply to the user:
        {1}

        String and scalar parameters should be specified as is without any escaping or quotes, while lists and objects should use JSON format. The "string" attribute should be set to "true" for string type parameters and "false" for other types (numbers, booleans, arrays, objects).

        If the thinking_mode is enabled, then after function results you should strongly consider outputting a thinking block. Here is an example:

        <｜DSML｜function_calls>
        ...
        </｜DSML｜function_calls>

        <function_results>
        ...
        </function_results>

        <think>...thinking about results</think>

        Here are the functions available in JSONSchema format:
        <functions>
        {0}
        </functions>

        """;

    /// <summary>encoding_dsv4.py TOOLS_TEMPLATE with its tokens filled in; {0} is the schema lines, {1} the example block.</summary>
    private const string ToolsV4 = """
        ## Tools

        You have access to a set of tools to help answer the user's question. You can invoke tools by writing a "<｜DSML｜tool_calls>" block like the following:

        {1}

        String parameters should be specified as is and set `string="true"`. For all other types (numbers, booleans, arrays, objects), pass the value in JSON format and set `string="false"`.

        If thinking_mode is enabled (triggered by <think>), you MUST output your complete reasoning inside <think>...</think> BEFORE any tool calls or final response.

        Otherwise, output directly after </think> with tool calls or final response.

        ### Available Tool Schemas

        {0}

        You MUST strictly follow the above defined tool name and parameter schemas to invoke tool calls.

        """;

    /// <summary>render_tools: the "## Tools" section (the raw literals above use "\n" line ends on every platform).</summary>
    public static string ToolsPrompt(IReadOnlyList<ToolDefinition> tools, ToolCallFormat format)
    {
        var lines = new StringBuilder();
        foreach (var t in tools)
        {
            // the OpenAI function object as the client's dict: name, description (when given), parameters
            if (lines.Length > 0) lines.Append('\n');
            lines.Append("{\"name\": ");
            PythonJson.WriteString(lines, t.Name);
            if (t.Description != null) { lines.Append(", \"description\": "); PythonJson.WriteString(lines, t.Description); }
            using var schema = JsonDocument.Parse(t.ParametersJson);
            lines.Append(", \"parameters\": ");
            PythonJson.Write(lines, schema.RootElement);
            lines.Append('}');
        }
        bool v32 = format == ToolCallFormat.DsmlFunctionCalls;
        return (v32 ? ToolsV32 : ToolsV4).ReplaceLineEndings("\n")
            .Replace("{1}", Example(format, v32 ? "$FUNCTION_NAME" : "$TOOL_NAME"), StringComparison.Ordinal)
            .Replace("{0}", lines.ToString(), StringComparison.Ordinal);
    }

    /// <summary>The example both prompts show: a block of two invokes, the first with one parameter, named by placeholders
    /// ($FUNCTION_NAME and $FUNCTION_NAME2 in V3.2, $TOOL_NAME and $TOOL_NAME2 in V4).</summary>
    private static string Example(ToolCallFormat format, string name) =>
        BlockOpen(format) + "\n" + InvokeOpen + name + "\">\n"
        + ParameterOpen + "$PARAMETER_NAME\" string=\"true|false\">$PARAMETER_VALUE" + ParameterClose + "\n...\n" + InvokeClose + "\n"
        + InvokeOpen + name + "2\">\n...\n" + InvokeClose + "\n" + BlockClose(format);

    /// <summary>
    /// An assistant turn's calls (tool_calls_template): "\n\n" and the block. Arguments are read as a JSON object, each
    /// member one parameter (a string as it is, anything else as JSON); arguments that are not a JSON object are refused
    /// by V3.2 (<see cref="ArgumentException"/>) and become one string parameter "arguments" in V4, as its encoder does.
    /// </summary>
    public static void AppendCalls(StringBuilder sb, IReadOnlyList<ToolCall> calls, ToolCallFormat format)
    {
        sb.Append("\n\n").Append(BlockOpen(format)).Append('\n');
        for (int i = 0; i < calls.Count; i++)
        {
            if (i > 0) sb.Append('\n');
            sb.Append(InvokeOpen).Append(calls[i].Name).Append("\">\n");
            AppendParameters(sb, calls[i], format);
            sb.Append('\n').Append(InvokeClose);
        }
        sb.Append('\n').Append(BlockClose(format));
    }

    private static void AppendParameters(StringBuilder sb, ToolCall call, ToolCallFormat format)
    {
        JsonDocument? doc = null;
        try { doc = JsonDocument.Parse(call.Arguments); }
        catch (JsonException) { }
        using (doc)
        {
            if (doc?.RootElement.ValueKind != JsonValueKind.Object)
            {
                if (format == ToolCallFormat.DsmlFunctionCalls)
                    throw new ArgumentException($"tool call '{call.Name}': arguments must be a JSON object (V3.2 writes each member as a parameter)");
                Parameter(sb, "arguments", true).Append(call.Arguments).Append(ParameterClose);
                return;
            }
            bool first = true;
            foreach (var p in doc.RootElement.EnumerateObject())
            {
                if (!first) sb.Append('\n');
                first = false;
                bool isString = p.Value.ValueKind == JsonValueKind.String;
                Parameter(sb, p.Name, isString);
                if (isString) sb.Append(p.Value.GetString());
                else PythonJson.Write(sb, p.Value);
                sb.Append(ParameterClose);
            }
        }
    }

    private static StringBuilder Parameter(StringBuilder sb, string name, bool isString) =>
        sb.Append(ParameterOpen).Append(name).Append("\" string=\"").Append(isString ? "true" : "false").Append("\">");
}
