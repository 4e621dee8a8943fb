using System.Diagnostics;
using System.Text.Json.Nodes;
using DeepSeekCpu.Generation;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace DeepSeekCpu.Server;

/// <summary>How the server writes its one line per request: plain text, or one JSON object per line (for log shippers).</summary>
internal enum LogFormat { Text, Json }

/// <summary>What an operator sets beside the limits: the request log's format and the origins a browser may call from.</summary>
internal sealed record ServerOperations
{
    public LogFormat LogFormat { get; init; } = LogFormat.Text;

    /// <summary>Origins (e.g. "http://localhost:3000") whose pages may call the API from a browser (CORS); "*" any.
    /// Empty: no CORS headers, so only the server's own pages (the chat page at /) can.</summary>
    public IReadOnlyList<string> CorsOrigins { get; init; } = [];

    /// <summary>On SIGTERM or Ctrl+C, open requests are told to end (a stream gets its final event and [DONE]); this is
    /// how long the server then waits for them before it closes their connections.</summary>
    public TimeSpan ShutdownGrace { get; init; } = TimeSpan.FromSeconds(2);

    public static ServerOperations Default { get; } = new();
}

/// <summary>
/// The operator's side of the server: Prometheus metrics at <c>GET /metrics</c>, one log line per request, graceful
/// shutdown, <c>GET /v1/models/{id}</c>, CORS and the chat page at <c>/</c>.
/// </summary>
internal static partial class OpenAiServer
{
    /// <summary>Keys under which <see cref="Handle"/> leaves its outcome for the request log and the metrics.</summary>
    private const string StatusItem = "deepseekcpu.status", ResultItem = "deepseekcpu.result";

    /// <summary>Before the app is built: the shutdown grace, and CORS's services when origins are given.</summary>
    private static void ConfigureOperations(WebApplicationBuilder builder, ServerOperations ops)
    {
        // the host's stop waits this long for open requests (Kestrel's drain), then aborts their connections
        builder.Services.Configure<HostOptions>(o => o.ShutdownTimeout = ops.ShutdownGrace);
        if (ops.CorsOrigins.Count > 0) builder.Services.AddCors();
    }

    /// <summary>
    /// After the app is built and before any other middleware: the request log and metrics around every request, CORS
    /// (so a browser's preflight is answered before the API key is asked for), and the operations' endpoints.
    /// </summary>
    private static void UseOperations(WebApplication app, ChatEngine engine, string modelId, Func<JsonObject> model, TextWriter? log, ServerOperations ops)
    {
        var metrics = new ServerMetrics(engine);
        engine.Observer = metrics;
        app.Use(async (ctx, next) =>
        {
            long start = Stopwatch.GetTimestamp();
            bool failed = false;
            try { await next(ctx); }
            catch { failed = true; throw; }
            finally { Record(ctx, Stopwatch.GetElapsedTime(start), failed, metrics, log, ops.LogFormat); }
        });
        if (ops.CorsOrigins.Count > 0)
            app.UseCors(p =>
            {
                if (ops.CorsOrigins.Contains("*")) p.AllowAnyOrigin(); else p.WithOrigins([.. ops.CorsOrigins]);
                p.AllowAnyHeader().AllowAnyMethod();
            });

        app.MapGet("/metrics", async ctx =>
        {
            ctx.Response.ContentType = Prometheus.PrometheusConstants.TextContentTypeWithVersionAndEncoding;
            await metrics.Registry.CollectAndExportAsTextAsync(ctx.Response.Body, ctx.RequestAborted);
        });
        // {**id}: a model served by a hub name has a slash in its id ("deepseek-ai/DeepSeek-R1")
        app.MapGet("/v1/models/{**id}", async (HttpContext ctx, string id) =>
        {
            if (Uri.UnescapeDataString(id) != modelId)
            {
                await WriteError(ctx, new ApiError(404, $"the model '{id}' does not exist here; this server serves '{modelId}'", "model", code: "model_not_found"));
                return;
            }
            ctx.Response.ContentType = "application/json";
            await ctx.Response.WriteAsync(model().ToJsonString(Json));
        });
        ChatPage.Map(app);   // the chat page at /
    }

    /// <summary>Counts the request, and writes its log line (probes of /health and /metrics are counted, not logged).</summary>
    private static void Record(HttpContext ctx, TimeSpan elapsed, bool failed, ServerMetrics metrics, TextWriter? log, LogFormat format)
    {
        int status = failed ? 500 : ctx.Items[StatusItem] as int? ?? ctx.Response.StatusCode;
        var result = ctx.Items[ResultItem] as GenerationResult;
        string route = ctx.GetEndpoint() is RouteEndpoint { RoutePattern.RawText: { } raw } && !raw.StartsWith("{*", StringComparison.Ordinal) ? raw : "other";
        metrics.Request(route, status, elapsed, result);
        if (log == null || route is "/health" or "/metrics") return;

        string line;
        if (format == LogFormat.Json)
        {
            var o = new JsonObject
            {
                ["time"] = DateTimeOffset.UtcNow.ToString("yyyy-MM-ddTHH:mm:ss.fffZ", System.Globalization.CultureInfo.InvariantCulture),
                ["method"] = ctx.Request.Method, ["path"] = ctx.Request.Path.Value, ["status"] = status,
                ["duration_ms"] = Math.Round(elapsed.TotalMilliseconds, 1), ["remote"] = ctx.Connection.RemoteIpAddress?.ToString(),
            };
            if (result != null)
            {
                o["prompt_tokens"] = result.PromptTokens; o["cached_tokens"] = result.CachedPromptTokens;
                o["completion_tokens"] = result.CompletionTokens; o["finish_reason"] = status == 200 ? Finish(result) : null;
                o["prompt_ms"] = Math.Round(result.PromptTime.TotalMilliseconds, 1);
                o["tokens_per_second"] = Math.Round(result.GenerationTokensPerSecond, 2);
            }
            line = o.ToJsonString(Json);
        }
        else
            line = $"{ctx.Request.Method} {ctx.Request.Path} {status}" +
                   (result != null ? $" prompt={result.PromptTokens} completion={result.CompletionTokens}" : "") + $" {elapsed.TotalSeconds:F2}s";
        lock (log) log.WriteLine(line);
    }
}
