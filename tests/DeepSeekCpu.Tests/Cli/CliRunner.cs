using DeepSeekCpu.Cli;

namespace DeepSeekCpu.Tests.Cli;

/// <summary>Runs the CLI in-process as a user would: the exit code, what went to stdout and stderr, with
/// <paramref name="stdin"/> as the input when given. Tests using it belong to the "Console" collection.</summary>
internal static class CliRunner
{
    public static (int code, string stdout, string stderr) Run(string[] args, string? stdin = null)
    {
        var (o, e, i) = (Console.Out, Console.Error, Console.In);
        var so = new StringWriter(); var se = new StringWriter();
        Console.SetOut(so); Console.SetError(se);
        Console.SetIn(new StringReader(stdin ?? ""));   // never the test host's own stdin
        try { return (Commands.Execute(args), so.ToString(), se.ToString()); }
        finally { Console.SetOut(o); Console.SetError(e); Console.SetIn(i); }
    }
}
