using System.Diagnostics;
using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using DeepSeekCpu.Generation;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using MinDataRate = Microsoft.AspNetCore.Server.Kestrel.Core.MinDataRate;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace DeepSeekCpu.Server;

/// <summary>
/// An OpenAI-compatible HTTP API over a <see cref="ChatEngine"/> (the endpoints and JSON shapes of
/// platform.openai.com/docs/api-reference, as llama.cpp's server and vLLM serve them):
/// <list type="bullet">
/// <item><c>POST /v1/chat/completions</c>: messages rendered with the model's chat template; the R1 reasoning comes
/// apart from the answer as <c>reasoning_content</c> (DeepSeek API's field), streamed as server-sent events with
/// <c>"stream": true</c>.</item>
/// <item><c>POST /v1/completions</c>: plain text continuation.</item>
/// <item><c>GET /v1/models</c>, <c>GET /health</c>.</item>
/// </list>
/// Bad requests get a 4xx with OpenAI's error object naming the field (a body too large 413, too slow 408, malformed
/// HTTP, JSON or Unicode 400); a 500 is a bug of ours, for that request only; the server keeps serving. Concurrent
/// requests take the engine's slots and wait when all are busy, at most <see cref="ServerLimits.Queue"/> of them
/// (503 with Retry-After beyond). See <see cref="ServerLimits"/>.
/// </summary>
internal static partial class OpenAiServer
{
    /// <summary>UTF-8 text as it is (the default encoder would write every non-ASCII character as \uXXXX).</summary>
    private static readonly JsonSerializerOptions Json = new() { Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping };

    /// <summary>Builds the application listening on <paramref name="urls"/> (e.g. "http://127.0.0.1:8080"; port 0 picks one).</summary>
    /// <param name="apiKey">When set, every /v1 request must carry "Authorization: Bearer KEY" (401 otherwise), as
    /// OpenAI clients send it; /health stays open for load balancers.</param>
    public static WebApplication Build(ChatEngine engine, string modelId, string urls, TextWriter? log = null, string? apiKey = null,
        ServerLimits? limits = null, ServerOperations? ops = null)
    {
        limits ??= ServerLimits.Default;
        ops ??= ServerOperations.Default;
        if (limits.MaxPromptChars <= 0)
            limits = limits with { MaxPromptChars = (int)Math.Min(int.MaxValue, (long)ServerLimits.PromptCharsPerToken * engine.ContextLength) };
        var builder = WebApplication.CreateSlimBuilder();
        builder.WebHost.UseUrls(urls);
        builder.WebHost.ConfigureKestrel(k =>
        {
            k.Limits.MaxRequestBodySize = limits.MaxBodyBytes;
            k.Limits.MinRequestBodyDataRate = new MinDataRate(limits.MinBodyBytesPerSecond, limits.BodyGracePeriod);
        });
        builder.Logging.ClearProviders();
        ConfigureOperations(builder, ops);
        var app = builder.Build();
        long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
        JsonObject Model() => new()
        {
            ["id"] = modelId, ["object"] = "model", ["created"] = created, ["owned_by"] = "deepseek-cpu",
            ["context_length"] = engine.ContextLength,
        };
        UseOperations(app, engine, modelId, Model, log, ops);
        if (!string.IsNullOrEmpty(apiKey))
        {
            byte[] expected = Encoding.UTF8.GetBytes("Bearer " + apiKey);
            app.Use(async (ctx, next) =>
            {
                if (ctx.Request.Path.StartsWithSegments("/v1"))
                {
                    byte[] given = Encoding.UTF8.GetBytes(ctx.Request.Headers.Authorization.ToString());
                    if (!System.Security.Cryptography.CryptographicOperations.FixedTimeEquals(given, expected))
                    {
                        await WriteError(ctx, new ApiError(401, "invalid or missing API key (send Authorization: Bearer KEY)", type: "authentication_error", code: "invalid_api_key"));
                        return;
                    }
                }
                await next(ctx);
            });
        }

        app.MapGet("/health", () => Results.Text("""{"status":"ok"}""", "application/json"));
        app.MapGet("/v1/models", () => Results.Text(new JsonObject
        {
            ["object"] = "list",
            ["data"] = new JsonArray(Model()),
        }.ToJsonString(Json), "application/json"));
        var gate = new Admission(engine.SlotCount + limits.Queue);
        app.MapPost("/v1/chat/completions", ctx => Handle(ctx, engine, modelId, chat: true, log, limits, gate));
        app.MapPost("/v1/completions", ctx => Handle(ctx, engine, modelId, chat: false, log, limits, gate));
        app.MapFallback(ctx => WriteError(ctx, new ApiError(404, $"no route for {ctx.Request.Method} {ctx.Request.Path}", type: "not_found_error")));
        return app;
    }

    /// <summary>Counts the requests being served or waiting; admits at most <c>capacity</c> of them.</summary>
    private sealed class Admission(int capacity)
    {
        private int _inside;
        public bool TryEnter()
        {
            if (Interlocked.Increment(ref _inside) <= capacity) return true;
            Interlocked.Decrement(ref _inside);
            return false;
        }
        public void Leave() => Interlocked.Decrement(ref _inside);
    }

    private static async Task Handle(HttpContext ctx, ChatEngine engine, string modelId, bool chat, TextWriter? log, ServerLimits limits, Admission gate)
    {
        int status = 200;
        var result = new GenerationResult();
        ctx.Items[ResultItem] = result;
        bool admitted = false;
        // the client leaving, the request timeout, or the server shutting down: each stops tokenization and generation
        var stopping = ctx.RequestServices.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping;
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ctx.RequestAborted, stopping);
        timeout.CancelAfter(limits.RequestTimeout);
        var cancel = timeout.Token;
        try
        {
            ApiRequest req;
            JsonDocument doc;
            try { doc = await JsonDocument.ParseAsync(ctx.Request.Body, cancellationToken: cancel); }
            catch (JsonException e) { throw new ApiError(400, $"the request body is not valid JSON: {e.Message.Split('\n')[0]}"); }
            // Kestrel's own verdicts on the body: too large (413), too slow (408), bad chunking or a short body (400)
            catch (BadHttpRequestException e) { throw new ApiError(e.StatusCode, $"bad request body: {e.Message}"); }
            using (doc) req = ApiRequest.Parse(doc, chat, modelId, limits);
            CheckAgainstModel(req, engine);

            if (!gate.TryEnter())
            {
                ctx.Response.Headers.RetryAfter = limits.RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
                throw new ApiError(503, $"the server is busy: {engine.SlotCount} slot(s) and {limits.Queue} waiting request(s) are taken; retry later",
                    type: "server_error", code: "server_busy");
            }
            admitted = true;

            ChatPrompt prepared;
            int[] prompt;
            try
            {
                // the text was bounded by MaxPromptChars in Parse, before this tokenization
                prepared = chat ? engine.PrepareChat(req.Messages!, req.Thinking, req.Tools, cancel) : new ChatPrompt(engine.RenderCompletion(req.Prompt!, cancel), false);
                prompt = prepared.Tokens;
                if (limits.MaxPromptTokens > 0 && prompt.Length > limits.MaxPromptTokens)
                    throw new ArgumentException($"the prompt has {prompt.Length} tokens; this server takes at most {limits.MaxPromptTokens} (context holds {engine.ContextLength})");
                engine.Check(prompt, req.Generation);
            }
            catch (ArgumentException e)
            {
                bool tooLong = e.Message.Contains("context holds");
                throw new ApiError(400, e.Message, chat ? "messages" : "prompt", code: tooLong ? "context_length_exceeded" : null);
            }

            string id = (chat ? "chatcmpl-" : "cmpl-") + Guid.NewGuid().ToString("N")[..24];
            long created = DateTimeOffset.UtcNow.ToUnixTimeSeconds();
            if (req.Stream) await Stream(ctx, engine, modelId, chat, req, prepared, id, created, result, cancel);
            else
            {
                var (choices, usage) = await Choices(engine, chat, req, prepared, result, cancel);
                var body = new JsonObject
                {
                    ["id"] = id, ["object"] = chat ? "chat.completion" : "text_completion", ["created"] = created, ["model"] = modelId,
                    ["choices"] = choices, ["usage"] = usage,
                };
                ctx.Response.ContentType = "application/json";
                await ctx.Response.WriteAsync(body.ToJsonString(Json), ctx.RequestAborted);
            }
        }
        catch (ApiError e) { status = e.Status; await WriteError(ctx, e); }
        catch (OperationCanceledException) when (ctx.RequestAborted.IsCancellationRequested) { status = 499; } // the client went away
        catch (BadHttpRequestException e) { status = e.StatusCode; await WriteError(ctx, new ApiError(e.StatusCode, $"bad request: {e.Message}")); }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested)
        {
            status = 503;
            if (!ctx.Response.HasStarted)
                ctx.Response.Headers.RetryAfter = limits.RetryAfterSeconds.ToString(System.Globalization.CultureInfo.InvariantCulture);
            await WriteError(ctx, stopping.IsCancellationRequested
                ? new ApiError(503, "the server is shutting down", type: "server_error", code: "shutting_down")
                : new ApiError(503, $"the request did not finish within the server's {limits.RequestTimeout.TotalSeconds:0} s timeout", type: "server_error", code: "timeout"));
        }
        catch (Exception e)
        {
            status = 500;
            log?.WriteLine($"error: {ctx.Request.Path}: {e.GetType().Name}: {e.Message}");
            await WriteError(ctx, new ApiError(500, $"the server failed on this request: {e.Message}", type: "server_error"));
        }
        finally
        {
            if (admitted) gate.Leave();
        }
        ctx.Items[StatusItem] = status;   // the request log and metrics (UseOperations) read it
    }

    private static async Task Stream(HttpContext ctx, ChatEngine engine, string modelId, bool chat, ApiRequest req, ChatPrompt prompt,
        string id, long created, GenerationResult result, CancellationToken cancel)
    {
        var res = ctx.Response;
        res.ContentType = "text/event-stream";
        res.Headers.CacheControl = "no-cache";
        res.Headers["X-Accel-Buffering"] = "no";
        string obj = chat ? "chat.completion.chunk" : "text_completion";
        JsonObject Chunk(JsonObject? delta, string? text, string? finish) => new()
        {
            ["id"] = id, ["object"] = obj, ["created"] = created, ["model"] = modelId,
            ["choices"] = new JsonArray(chat
                ? new JsonObject { ["index"] = 0, ["delta"] = delta ?? new JsonObject(), ["logprobs"] = null, ["finish_reason"] = finish }
                : new JsonObject { ["index"] = 0, ["text"] = text ?? "", ["logprobs"] = null, ["finish_reason"] = finish }),
        };
        async Task Send(JsonNode node)
        {
            await res.WriteAsync("data: " + node.ToJsonString(Json) + "\n\n", ctx.RequestAborted);
            await res.Body.FlushAsync(ctx.RequestAborted);
        }

        if (chat) await Send(Chunk(new JsonObject { ["role"] = "assistant", ["content"] = "" }, null, null));
        int calls = 0;
        try
        {
            await foreach (var d in ChatEngine.ReadToolCalls(engine.StreamAsync(prompt.Tokens, prompt.StartsInReasoning, req.Generation, result, cancel), prompt, cancel))
            {
                if (d.Fragment is { } f) { if (ToolCallDelta(f) is { } delta) await Send(Chunk(delta, null, null)); }
                else if (d.Call != null) calls++;   // already streamed in fragments
                else if (d.Logprob is { } lp)
                {
                    if (d.Kind != TextKind.Answer || req.Generation.TopLogprobs < 0) continue;
                    var chunk = Chunk(chat ? new JsonObject() : null, "", null);
                    chunk["choices"]![0]!["logprobs"] = Logprobs(engine.Tokenizer, [lp], chat);
                    await Send(chunk);
                }
                else if (chat)
                    await Send(Chunk(new JsonObject { [d.Kind == TextKind.Answer ? "content" : "reasoning_content"] = d.Text }, null, null));
                else await Send(Chunk(null, d.Text, null));
            }
        }
        catch (OperationCanceledException) when (cancel.IsCancellationRequested && !ctx.RequestAborted.IsCancellationRequested)
        {
            // the request timeout, with the client still there: the answer ends as cut short ("length")
        }
        catch (Exception e) when (e is not OperationCanceledException)
        {
            // Headers are gone: report in the stream, as OpenAI does, and end it.
            await Send(new JsonObject { ["error"] = ErrorObject(new ApiError(500, $"the server failed on this request: {e.Message}", type: "server_error")) });
            await res.WriteAsync("data: [DONE]\n\n");
            return;
        }
        await Send(Chunk(chat ? new JsonObject() : null, "", Finish(result, calls)));
        if (req.IncludeUsage)
            await Send(new JsonObject
            {
                ["id"] = id, ["object"] = obj, ["created"] = created, ["model"] = modelId,
                ["choices"] = new JsonArray(), ["usage"] = Usage(result),
            });
        await res.WriteAsync("data: [DONE]\n\n", ctx.RequestAborted);
    }

    private static JsonObject Message(string content, string reasoning, List<Tokenization.ToolCall> calls)
    {
        var m = new JsonObject { ["role"] = "assistant", ["content"] = calls.Count > 0 && content.Length == 0 ? null : content };
        if (reasoning.Length > 0) m["reasoning_content"] = reasoning;
        if (calls.Count > 0) m["tool_calls"] = ToolCallsJson(calls);
        return m;
    }

    /// <summary>OpenAI's finish reasons: "stop" (a stop token or string) or "length" (max_tokens or the context). A
    /// cancelled request's client is gone, so its reason is never sent; OpenAI has no word for it.</summary>
    private static string Finish(GenerationResult r) => r.FinishReason switch
    {
        FinishReason.Stop => "stop",
        FinishReason.Length or FinishReason.Cancelled => "length",
        _ => throw new ArgumentOutOfRangeException(nameof(r), r.FinishReason, null),
    };

    private static JsonObject Usage(GenerationResult r) => new()
    {
        ["prompt_tokens"] = r.PromptTokens, ["completion_tokens"] = r.CompletionTokens, ["total_tokens"] = r.PromptTokens + r.CompletionTokens,
    };

    private static JsonObject ErrorObject(ApiError e) => new()
    {
        ["message"] = e.Message, ["type"] = e.Type, ["param"] = e.Param, ["code"] = e.Code,
    };

    private static async Task WriteError(HttpContext ctx, ApiError e)
    {
        if (ctx.Response.HasStarted) return;
        ctx.Response.StatusCode = e.Status;
        ctx.Response.ContentType = "application/json";
        await ctx.Response.WriteAsync(new JsonObject { ["error"] = ErrorObject(e) }.ToJsonString(Json));
    }
}
