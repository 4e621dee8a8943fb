namespace DeepSeekCpu;

/// <summary>
/// A file that is not a model's tensors but comes from strangers all the same (a tokenizer, a chat template, a saved
/// conversation) is not what was expected. Its message goes through <see cref="ModelFormatException.OneLine"/> like a
/// model file's, so names and strings quoted from the file can neither break the line nor reach the terminal as escape
/// sequences; front ends print it without a stack trace.
/// </summary>
public sealed class InvalidFileException : Exception
{
    /// <summary>An error whose message names the file and what is wrong (kept to one line).</summary>
    public InvalidFileException(string message) : base(ModelFormatException.OneLine(message)) { }
    /// <summary>As above, with the exception that revealed it.</summary>
    public InvalidFileException(string message, Exception inner) : base(ModelFormatException.OneLine(message), inner) { }
}
