namespace DeepSeekCpu;

/// <summary>
/// A model, tokenizer or config file that cannot be used as it is. The message is one line that names the file,
/// the tensor or key, and what was expected; front ends print it without a stack trace.
/// </summary>
public sealed class ModelFormatException(string message) : Exception(message)
{
    public static ModelFormatException In(string file, string what) => new($"{file}: {what}");
}
