using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Text;
using Xunit;

namespace DeepSeekCpu.Tests.Serving;

/// <summary>
/// `deepseek-cpu serve` as a real process, stopped by a real SIGTERM while streams are open: every stream ends with
/// its final event and [DONE], the process exits 0, and the port is closed afterwards. Its --cors and --log-format json
/// options are used on the way. (That a stream cut short gets
/// finish_reason "length" is checked in-process with a gated model: OperationsTests.)
/// </summary>
public class ServeShutdownTests
{
    private static readonly TimeSpan Bound = TimeSpan.FromSeconds(60);

    [DllImport("libc", SetLastError = true)]
    private static extern int kill(int pid, int sig);

    private const int SIGTERM = 15;

    private static int FreePort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        int port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    [Fact]
    public async Task Sigterm_ends_open_streams_and_exits_zero()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "signals are sent with libc's kill");
        string cli = Path.Combine(AppContext.BaseDirectory, "deepseek-cpu.dll");   // the CLI project's output, copied here
        int port = FreePort();
        var psi = new ProcessStartInfo("dotnet", [cli, "serve", "--port", port.ToString(), "--parallel", "2", "--log-format", "json", "--cors", "http://app.example"])
        { RedirectStandardError = true, RedirectStandardOutput = true };
        using var server = Process.Start(psi)!;
        var log = new StringBuilder();
        server.ErrorDataReceived += (_, e) => { lock (log) log.AppendLine(e.Data); };
        server.OutputDataReceived += (_, e) => { lock (log) log.AppendLine(e.Data); };
        server.BeginErrorReadLine(); server.BeginOutputReadLine();
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = Bound };
        try
        {
            var until = DateTime.UtcNow + Bound;
            while (true)
            {
                Assert.False(server.HasExited, $"serve exited early: {log}");
                try { if ((await http.GetAsync("/health")).IsSuccessStatusCode) break; } catch (HttpRequestException) { }
                Assert.True(DateTime.UtcNow < until, "serve did not answer /health in time");
                await Task.Delay(100);
            }

            var preflight = new HttpRequestMessage(HttpMethod.Options, "/v1/completions");
            preflight.Headers.Add("Origin", "http://app.example");
            preflight.Headers.Add("Access-Control-Request-Method", "POST");
            using (var res = await http.SendAsync(preflight))
                Assert.Equal("http://app.example", res.Headers.GetValues("Access-Control-Allow-Origin").Single());

            // four streams on two slots (two of them wait), each started before the signal
            var streams = new List<(HttpResponseMessage Res, StreamReader Reader)>();
            for (int i = 0; i < 4; i++)
            {
                var req = new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
                {
                    Content = new StringContent($$"""{"prompt": "Once upon a time", "max_tokens": 400, "temperature": 1, "seed": {{i}}, "stream": true}""",
                        Encoding.UTF8, "application/json"),
                };
                var res = await http.SendAsync(req, HttpCompletionOption.ResponseHeadersRead);
                Assert.Equal(HttpStatusCode.OK, res.StatusCode);
                streams.Add((res, new StreamReader(await res.Content.ReadAsStreamAsync())));
            }
            Assert.Equal(0, kill(server.Id, SIGTERM));

            using var bound = new CancellationTokenSource(Bound);
            foreach (var (res, reader) in streams)
            {
                string text = await reader.ReadToEndAsync(bound.Token);
                var events = text.Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
                Assert.Equal("data: [DONE]", events[^1]);
                Assert.Matches("\"finish_reason\":\"(length|stop)\"", events[^2]);
                res.Dispose();
            }
            await server.WaitForExitAsync(bound.Token);
            Assert.True(0 == server.ExitCode, $"exit code {server.ExitCode}: {log}");
            await Assert.ThrowsAsync<HttpRequestException>(() => http.GetAsync("/health"));   // nothing listens any more
            lock (log) Assert.DoesNotContain("Exception", log.ToString());
            // the request log: a JSON object per request, the preflight's and each stream's
            string[] lines;
            lock (log) lines = log.ToString().Split('\n').Where(l => l.StartsWith('{')).ToArray();
            var entries = lines.Select(l => System.Text.Json.JsonDocument.Parse(l).RootElement).ToList();
            Assert.Equal(5, entries.Count);
            Assert.Equal("OPTIONS", entries[0].GetProperty("method").GetString());
            Assert.Equal(4, entries.Count(e => e.GetProperty("path").GetString() == "/v1/completions" && e.GetProperty("status").GetInt32() == 200
                                               && e.GetProperty("prompt_tokens").GetInt32() == 5));
        }
        finally
        {
            if (!server.HasExited) server.Kill();
        }
    }
}
