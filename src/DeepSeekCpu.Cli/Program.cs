using DeepSeekCpu;
using DeepSeekCpu.Cli;

// deepseek-cpu: the command-line front end. Bad input is one line on stderr and a non-zero exit, never a stack trace.
try
{
    return Commands.Dispatch(args);
}
catch (UsageException e)
{
    Console.Error.WriteLine($"error: {e.Message}");
    return 2;
}
catch (Exception e) when (e is ModelFormatException or FileNotFoundException or DirectoryNotFoundException
                              or InvalidDataException or ArgumentException or IOException or UnauthorizedAccessException
                              or InvalidOperationException or NotSupportedException)
{
    Console.Error.WriteLine($"error: {e.Message.Split('\n')[0]}");
    return 1;
}
