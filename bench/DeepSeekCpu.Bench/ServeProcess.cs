using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace DeepSeekCpu.Bench;

/// <summary>`deepseek-cpu serve` started as a child process on a free loopback port, for the benchmarks that drive the
/// server over HTTP (soak, load). Disposing kills it.</summary>
internal sealed class ServeProcess : IDisposable
{
    public required Process Process { get; init; }
    public required HttpClient Http { get; init; }
    public required int Port { get; init; }
    private readonly StringBuilder _log = new();

    /// <summary>What the server printed so far.</summary>
    public string Log { get { lock (_log) return _log.ToString(); } }

    /// <summary>Starts <c>dotnet CLI serve --host 127.0.0.1 --port P ARGS</c> and waits (at most 60 s) until /health answers.
    /// Null, after printing why, if it exits or does not answer.</summary>
    public static async Task<ServeProcess?> StartAsync(string cli, IEnumerable<string> args, TimeSpan requestTimeout)
    {
        int port = FreePort();
        var psi = new ProcessStartInfo("dotnet", [cli, "serve", "--host", "127.0.0.1", "--port", port.ToString(), .. args])
        { RedirectStandardError = true, RedirectStandardOutput = true };
        var s = new ServeProcess
        {
            Process = Process.Start(psi)!, Port = port,
            Http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = requestTimeout },
        };
        s.Process.ErrorDataReceived += (_, e) => { lock (s._log) s._log.AppendLine(e.Data); };
        s.Process.OutputDataReceived += (_, e) => { lock (s._log) s._log.AppendLine(e.Data); };
        s.Process.BeginErrorReadLine(); s.Process.BeginOutputReadLine();
        var up = Stopwatch.StartNew();
        while (true)
        {
            if (s.Process.HasExited) { Console.WriteLine($"server exited ({s.Process.ExitCode}):\n{s.Log}"); s.Dispose(); return null; }
            try { if ((await s.Http.GetAsync("/health")).IsSuccessStatusCode) return s; } catch (HttpRequestException) { }
            if (up.Elapsed > TimeSpan.FromSeconds(60)) { Console.WriteLine("server did not answer /health within 60 s"); s.Dispose(); return null; }
            await Task.Delay(200);
        }
    }

    /// <summary>The CLI built in Release beside this benchmark (src/DeepSeekCpu.Cli/bin/Release/net10.0/deepseek-cpu.dll).</summary>
    public static string FindCli()
    {
        for (DirectoryInfo? d = new(AppContext.BaseDirectory); d != null; d = d.Parent)
        {
            string p = Path.Combine(d.FullName, "src", "DeepSeekCpu.Cli", "bin", "Release", "net10.0", "deepseek-cpu.dll");
            if (File.Exists(p)) return p;
        }
        throw new FileNotFoundException("deepseek-cpu.dll not found: build src/DeepSeekCpu.Cli -c Release, or pass --cli PATH");
    }

    public static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    /// <summary>Resident set of the server in MiB (/proc/PID/status VmRSS).</summary>
    public double RssMiB()
    {
        foreach (string line in File.ReadLines($"/proc/{Process.Id}/status"))
            if (line.StartsWith("VmRSS:")) return long.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1]) / 1024.0;
        return double.NaN;
    }

    /// <summary>The p-th percentile of sorted values (nearest rank); NaN when there are none.</summary>
    public static double Percentile(double[] sorted, int p) =>
        sorted.Length == 0 ? double.NaN : sorted[Math.Clamp((int)Math.Ceiling(p / 100.0 * sorted.Length) - 1, 0, sorted.Length - 1)];

    public void Dispose()
    {
        Http.Dispose();
        if (!Process.HasExited) { Process.Kill(entireProcessTree: true); Process.WaitForExit(); }
        Process.Dispose();
    }
}
