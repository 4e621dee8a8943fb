using System.Net;
using System.Net.Sockets;
using DeepSeekCpu.Cli;
using Xunit;

namespace DeepSeekCpu.Tests.Serving;

/// <summary>`deepseek-cpu serve` refuses bad options and busy ports in one line, with a non-zero exit.</summary>
[Collection("Console")]
public class ServeCommandTests
{
    private static (int Code, string Err) Cli(params string[] args)
    {
        var err = Console.Error;
        var sw = new StringWriter();
        Console.SetError(sw);
        try { return (Commands.Execute(args), sw.ToString()); }
        finally { Console.SetError(err); }
    }

    [Fact]
    public void A_port_out_of_range_is_a_usage_error()
    {
        var (code, err) = Cli("serve", "--port", "70000");
        Assert.Equal(2, code);
        Assert.Contains("--port", err);
        Assert.Single(err.Trim().Split('\n'));
    }

    [Fact]
    public void An_unknown_log_format_is_a_usage_error()
    {
        var (code, err) = Cli("serve", "--log-format", "xml");
        Assert.Equal(2, code);
        Assert.Contains("--log-format expects text or json, got 'xml'", err);
        Assert.Single(err.Trim().Split('\n'));
    }

    [Fact]
    public void A_busy_port_is_reported_in_one_line()
    {
        using var busy = new TcpListener(IPAddress.Loopback, 0);
        busy.Start();
        int port = ((IPEndPoint)busy.LocalEndpoint).Port;
        var (code, err) = Cli("serve", "--port", port.ToString(), "--quiet");
        Assert.Equal(1, code);
        Assert.Contains($"cannot listen on http://127.0.0.1:{port}", err);
        Assert.Single(err.Trim().Split('\n'));
    }
}
