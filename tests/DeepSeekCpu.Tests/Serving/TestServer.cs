using System.Net;
using System.Text;
using System.Text.Json;
using DeepSeekCpu.Extensions.AI;
using DeepSeekCpu.Generation;
using DeepSeekCpu.Server;
using DeepSeekCpu.Tokenization;
using Microsoft.Extensions.AI;

namespace DeepSeekCpu.Tests.Serving;

/// <summary>
/// What the serving tests share: an engine over a model whose outputs are scripted per prompt, and one request to the
/// OpenAI server run in-process over an engine (a free port on 127.0.0.1, stopped after the answer).
/// </summary>
internal static class TestServer
{
    /// <summary>An engine whose model answers its n-th prompt with <paramref name="outputs"/>[n] in <paramref name="tok"/>'s tokens, then EOS.</summary>
    public static (PromptScriptedModel Model, ChatEngine Engine) Scripted(ITokenizer tok, params string[] outputs)
    {
        var model = new PromptScriptedModel(tok.VocabSize, [.. outputs.Select(o => (int[])[.. tok.Encode(o), tok.EosId!.Value])]);
        return (model, new ChatEngine(model, tok));
    }

    /// <summary>
    /// Asks "Weather in Paris?" through Microsoft.Extensions.AI's UseFunctionInvocation() over <paramref name="engine"/>,
    /// with a get_weather function (Paris: "18 degrees"): the cities the function was called with, and the response.
    /// </summary>
    public static async Task<(List<string> Asked, ChatResponse Response)> AskWeather(ChatEngine engine, string modelId)
    {
        var asked = new List<string>();
        var weather = AIFunctionFactory.Create((string city) => { asked.Add(city); return city == "Paris" ? "18 degrees" : "unknown"; },
            "get_weather", "Weather of a city.");
        IChatClient client = new ChatClientBuilder(new DeepSeekChatClient(engine, modelId)).UseFunctionInvocation().Build();
        return (asked, await client.GetResponseAsync("Weather in Paris?", new ChatOptions { Tools = [weather] }));
    }

    /// <summary>
    /// POSTs <paramref name="json"/> to <paramref name="path"/> of a server over <paramref name="engine"/> serving
    /// <paramref name="modelId"/>: the status, the body as JSON (default when it is not a JSON object) and as text.
    /// </summary>
    public static async Task<(HttpStatusCode Status, JsonElement Body, string Text)> Post(ChatEngine engine, string modelId, string json,
        string path = "/v1/chat/completions")
    {
        var app = OpenAiServer.Build(engine, modelId, "http://127.0.0.1:0");
        await app.StartAsync();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri(app.Urls.First()) };
            using var res = await http.PostAsync(path, new StringContent(json, Encoding.UTF8, "application/json"));
            string text = await res.Content.ReadAsStringAsync();
            return (res.StatusCode, text.StartsWith('{') ? JsonDocument.Parse(text).RootElement.Clone() : default, text);
        }
        finally { await app.StopAsync(); await app.DisposeAsync(); }
    }
}
