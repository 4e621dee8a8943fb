using System.Net;
using System.Text.Json;
using DeepSeekCpu.Extensions.AI;
using DeepSeekCpu.Generation;
using DeepSeekCpu.Tests.Tokenization;
using Microsoft.Extensions.AI;
using Xunit;
using EngineMessage = DeepSeekCpu.Tokenization.ChatMessage;

namespace DeepSeekCpu.Tests.Serving;

/// <summary>
/// V3.1's thinking switch through every front end (engine, HTTP server, IChatClient), with DeepSeek's tokenizer and
/// V3.1's template (LaterChatTemplateTests.V31Tokenizer) and a scripted model that always answers "R &lt;/think&gt; A":
/// when the prompt opened "&lt;think&gt;", R is reasoning and A the answer; when it closed it, both are answer text.
/// </summary>
public class ThinkingSwitchTests
{
    private const string R = "Two plus two is four.", A = "4";
    private const int Think = 128798, Unthink = 128799;   // "<think>", "</think>" in R1 / V3.1's vocabulary

    private static (ScriptedModel Model, DeepSeekCpu.Tokenization.ITokenizer Tok) Scripted(string text)
    {
        var tok = LaterChatTemplateTests.V31Tokenizer;
        return (new ScriptedModel(tok.VocabSize, [.. tok.Encode(text), tok.EosId!.Value]), tok);
    }

    [Fact]
    public void Engine_renders_the_switch_and_reads_whether_the_prompt_opened_reasoning()
    {
        var (model, tok) = Scripted(R + "</think>" + A);
        using var engine = new ChatEngine(model, tok);
        EngineMessage[] chat = [new("user", "2+2?")];
        Assert.Equal(Think, engine.RenderChat(chat, true, out bool on)[^1]);
        Assert.True(on);
        Assert.Equal(Unthink, engine.RenderChat(chat, false, out bool off)[^1]);
        Assert.False(off);
        Assert.Equal(Unthink, engine.RenderChat(chat, out bool byDefault)[^1]);   // the template's default: off
        Assert.False(byDefault);
    }

    [Theory]
    [InlineData(true, R + "</think>" + A, R, A)]             // prompt opened <think>: the model reasons, closes, answers
    [InlineData(false, "<think>" + R + "</think>" + A, R, A)] // prompt did not (R1-0528): the model opens it itself
    [InlineData(false, R + "</think>" + A, "", R + A)]        // no reasoning block: all of it is answer text
    public async Task Reasoning_splits_whether_or_not_the_prompt_opened_it(bool opened, string script, string reasoning, string answer)
    {
        var (model, tok) = Scripted(script);
        using var engine = new ChatEngine(model, tok);
        var prompt = engine.RenderChat([new EngineMessage("user", "2+2?")], opened, out bool opens);
        Assert.Equal(opened, opens);
        var result = await engine.CompleteAsync(prompt, opens, new GenerationRequest { MaxTokens = 64 });
        Assert.Equal(reasoning, result.Reasoning);
        Assert.Equal(answer, result.Content);
    }

    [Theory]
    [InlineData("""
        "chat_template_kwargs": {"thinking": true}
        """, true)]
    [InlineData("""
        "chat_template_kwargs": {"thinking": false}
        """, false)]
    [InlineData("""
        "chat_template_kwargs": {"enable_thinking": true}
        """, true)]
    [InlineData("""
        "reasoning_effort": "high"
        """, true)]
    [InlineData("""
        "reasoning_effort": "none"
        """, false)]
    [InlineData("""
        "temperature": 0
        """, false)]
    public async Task Server_maps_chat_template_kwargs_and_reasoning_effort(string field, bool thinks)
    {
        var (status, body) = await PostChat($$"""{"messages": [{"role": "user", "content": "2+2?"}], {{field}}}""");
        Assert.Equal(HttpStatusCode.OK, status);
        var message = body.GetProperty("choices")[0].GetProperty("message");
        Assert.Equal(thinks ? A : R + A, message.GetProperty("content").GetString());
        Assert.Equal(thinks ? R : null, message.TryGetProperty("reasoning_content", out var rc) ? rc.GetString() : null);
    }

    /// <summary>One /v1/chat/completions request to a fresh server over the scripted model: status and JSON body.</summary>
    private static async Task<(HttpStatusCode, JsonElement)> PostChat(string json)
    {
        var (model, tok) = Scripted(R + "</think>" + A);
        using var engine = new ChatEngine(model, tok);
        var (status, body, text) = await TestServer.Post(engine, "v31", json);
        Assert.True(body.ValueKind == JsonValueKind.Object, $"not a JSON object: {text}");
        return (status, body);
    }

    [Theory]
    [InlineData("""{"messages": [{"role": "user", "content": "x"}], "reasoning_effort": "extreme"}""", "reasoning_effort")]
    [InlineData("""{"messages": [{"role": "user", "content": "x"}], "reasoning_effort": 3}""", "reasoning_effort")]
    [InlineData("""{"messages": [{"role": "user", "content": "x"}], "chat_template_kwargs": []}""", "chat_template_kwargs")]
    [InlineData("""{"messages": [{"role": "user", "content": "x"}], "chat_template_kwargs": {"thinking": "yes"}}""", "chat_template_kwargs.thinking")]
    public async Task Server_names_a_bad_switch_field(string body, string param)
    {
        var (status, response) = await PostChat(body);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal(param, response.GetProperty("error").GetProperty("param").GetString());
    }

    [Theory]
    [InlineData("thinking", true, true)]
    [InlineData("thinking", false, false)]
    [InlineData("reasoning_effort", "medium", true)]
    [InlineData("reasoning_effort", "none", false)]
    public async Task Chat_client_reads_the_switch_from_additional_properties(string key, object value, bool thinks)
    {
        var (model, tok) = Scripted(R + "</think>" + A);
        using var engine = new ChatEngine(model, tok);
        IChatClient client = new DeepSeekChatClient(engine, "v31");
        var options = new ChatOptions { AdditionalProperties = new() { [key] = value } };
        var response = await client.GetResponseAsync("2+2?", options);
        Assert.Equal(thinks ? A : R + A, response.Text);
        Assert.Equal(thinks ? R : "", string.Concat(response.Messages.SelectMany(m => m.Contents.OfType<TextReasoningContent>()).Select(c => c.Text)));
    }
}
