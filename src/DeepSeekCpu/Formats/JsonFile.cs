namespace DeepSeekCpu.Formats;

/// <summary>
/// What the readers of a model folder's JSON files (config.json, the safetensors header and index, tokenizer.json)
/// share. System.Text.Json checks a document's structure when it parses it, but decodes a string only when it is
/// read: invalid UTF-8 or an escaped lone surrogate ("\ud800") then throws InvalidOperationException, as does reading
/// a value as the wrong JSON type. Either is the file's fault, and is reported as such.
/// </summary>
internal static class JsonFile
{
    /// <summary>
    /// True for the InvalidOperationException System.Text.Json throws on reading such a string or value (it marks
    /// them with the Source "System.Text.Json.Rethrowable"; checked with .NET 10).
    /// </summary>
    public static bool IsReadError(Exception e) =>
        e is InvalidOperationException && e.Source?.StartsWith("System.Text.Json", StringComparison.Ordinal) == true;

    /// <summary>The error's text for <paramref name="file"/>, one line.</summary>
    public static string ReadErrorText(string file, Exception e) =>
        ModelFormatException.OneLine($"{file}: holds a string that is not valid Unicode (invalid UTF-8 or an escaped lone surrogate) or a value of the wrong JSON type ({e.Message})");
}
