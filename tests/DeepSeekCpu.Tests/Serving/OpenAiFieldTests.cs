using System.Net;
using System.Text;
using System.Text.Json;
using DeepSeekCpu.Extensions.AI;
using DeepSeekCpu.Generation;
using Json.Schema;
using Microsoft.Extensions.AI;
using Xunit;

namespace DeepSeekCpu.Tests.Serving;

/// <summary>
/// OpenAI fields that used to be refused or ignored: penalties and logit_bias (checked against the formula by hand),
/// logprobs (against a log-softmax of the model's own logits), n (choices sharing the prompt's cache), response_format
/// (validated by JsonSchema.Net), reasoning_budget; each bad value is a 400 naming the field.
/// </summary>
public class OpenAiFieldTests
{
    private static async Task<(HttpStatusCode, JsonElement)> Post(ChatEngine engine, string path, string json)
    {
        var (status, body, text) = await TestServer.Post(engine, "m", json, path);
        Assert.True(body.ValueKind == JsonValueKind.Object, $"not a JSON object: {text}");
        return (status, body);
    }

    [Fact]
    public void Presence_frequency_and_bias_follow_openais_formula()
    {
        var s = new Sampler(SamplingOptions.Greedy with
        {
            PresencePenalty = 0.25f, FrequencyPenalty = 0.5f, LogitBias = new Dictionary<int, float> { [3] = 5f, [0] = -1f },
        });
        float[] logits = [1, 2, 3, 4, 5];
        s.Penalize(logits, [1, 1, 2, 1]);
        // token 1 seen 3 times: 2 - (3 * 0.5 + 0.25); token 2 once: 3 - (0.5 + 0.25); biases added
        Assert.Equal([0f, 0.25f, 2.25f, 9f, 5f], logits);
    }

    [Fact]
    public async Task Logprobs_are_the_models_log_softmax_and_add_up_to_the_answer()
    {
        using var lm = LocalModel.Load(TestPaths.Stories260K);
        using var engine = new ChatEngine(lm.Model, lm.Tokenizer);
        var (status, body) = await Post(engine, "/v1/chat/completions",
            """{"messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":8,"temperature":0,"logprobs":true,"top_logprobs":3}""");
        Assert.Equal(HttpStatusCode.OK, status);
        var choice = body.GetProperty("choices")[0];
        var entries = choice.GetProperty("logprobs").GetProperty("content").EnumerateArray().ToList();
        Assert.Equal(8, entries.Count);
        Assert.Equal(choice.GetProperty("message").GetProperty("content").GetString(),
            Encoding.UTF8.GetString([.. entries.SelectMany(e => e.GetProperty("bytes").EnumerateArray().Select(b => (byte)b.GetInt32()))]));
        foreach (var e in entries)
        {
            var top = e.GetProperty("top_logprobs").EnumerateArray().ToList();
            Assert.Equal(3, top.Count);
            // greedy: the chosen token is the most likely one
            Assert.Equal(e.GetProperty("token").GetString(), top[0].GetProperty("token").GetString());
            Assert.Equal(e.GetProperty("logprob").GetDouble(), top[0].GetProperty("logprob").GetDouble(), 6);
            Assert.True(top[0].GetProperty("logprob").GetDouble() >= top[1].GetProperty("logprob").GetDouble());
        }
        // the first token's log-probability against a log-softmax (in double) of the model's logits after the prompt
        int[] prompt = engine.RenderChat([new("user", "Once upon a time")], out _);
        using var session = lm.Model.NewSession(64);
        var logits = new float[lm.Model.Config.VocabSize];
        session.Forward(prompt, logits);
        double max = logits.Max(), z = Math.Log(logits.Sum(x => Math.Exp(x - max))) + max;
        int first = Array.IndexOf(logits, logits.Max());
        Assert.Equal(logits[first] - z, entries[0].GetProperty("logprob").GetDouble(), 4);
    }

    [Fact]
    public async Task Completions_logprobs_have_openais_legacy_shape()
    {
        using var lm = LocalModel.Load(TestPaths.Stories260K);
        using var engine = new ChatEngine(lm.Model, lm.Tokenizer);
        var (_, body) = await Post(engine, "/v1/completions", """{"prompt":"Once upon a time","max_tokens":5,"temperature":0,"logprobs":2}""");
        var lp = body.GetProperty("choices")[0].GetProperty("logprobs");
        Assert.Equal(5, lp.GetProperty("tokens").GetArrayLength());
        Assert.Equal(body.GetProperty("choices")[0].GetProperty("text").GetString(), string.Concat(lp.GetProperty("tokens").EnumerateArray().Select(t => t.GetString())));
        Assert.Equal(0, lp.GetProperty("text_offset")[0].GetInt32());
        Assert.All(lp.GetProperty("token_logprobs").EnumerateArray(), x => Assert.True(x.GetDouble() <= 0));
    }

    [Fact]
    public async Task Logit_bias_forces_or_bans_a_token()
    {
        using var lm = LocalModel.Load(TestPaths.Stories260K);
        using var engine = new ChatEngine(lm.Model, lm.Tokenizer);
        const string Req = """{"prompt":"Once upon a time","max_tokens":6,"temperature":0""";
        var (_, plain) = await Post(engine, "/v1/completions", Req + "}");
        string text = plain.GetProperty("choices")[0].GetProperty("text").GetString()!;
        // the greedy first token, from the model's own logits after the prompt
        using var session = lm.Model.NewSession(64);
        var logits = new float[lm.Model.Config.VocabSize];
        session.Forward(engine.RenderCompletion("Once upon a time"), logits);
        int firstToken = Array.IndexOf(logits, logits.Max());
        var (_, banned) = await Post(engine, "/v1/completions", Req + ",\"logit_bias\":{\"" + firstToken + "\":-100}}");
        Assert.NotEqual(text, banned.GetProperty("choices")[0].GetProperty("text").GetString());
        int forced = lm.Tokenizer.Encode(" cat")[^1];
        var (_, all) = await Post(engine, "/v1/completions", Req + ",\"logit_bias\":{\"" + forced + "\":100}}");
        Assert.Equal(string.Concat(Enumerable.Repeat(lm.Tokenizer.Decode([forced]), 6)), all.GetProperty("choices")[0].GetProperty("text").GetString());
        var (status, err) = await Post(engine, "/v1/completions", Req + ""","logit_bias":{"99999":1}}""");
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal("logit_bias", err.GetProperty("error").GetProperty("param").GetString());
    }

    [Fact]
    public async Task N_choices_share_the_prompts_cache()
    {
        string longQuestion = string.Join(" ", Enumerable.Repeat("Tell me about the weather today.", 30));
        var (model, tok, _, answer) = ScriptedModel.R1("Hm.\n", "\n\nSunny.");
        using var engine = new ChatEngine(model, tok);
        var (status, body) = await Post(engine, "/v1/chat/completions",
            $$"""{"messages":[{"role":"user","content":"{{longQuestion}}"}],"n":3,"seed":7}""");
        Assert.Equal(HttpStatusCode.OK, status);
        var choices = body.GetProperty("choices").EnumerateArray().ToList();
        Assert.Equal([0, 1, 2], choices.Select(c => c.GetProperty("index").GetInt32()));
        Assert.All(choices, c => Assert.Equal(answer, c.GetProperty("message").GetProperty("content").GetString()));
        int p = body.GetProperty("usage").GetProperty("prompt_tokens").GetInt32();
        Assert.Equal(3 * model.Script.Length, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        // the prompt was processed once; the later choices fed one prompt token each (plus their answers)
        Assert.True(model.TokensFed <= p + 2 + 3 * model.Script.Length, $"{model.TokensFed} tokens fed for a {p}-token prompt");
    }

    [Fact]
    public async Task Response_format_json_schema_holds_the_answer_to_the_schema()
    {
        const string Schema = """{"type":"object","properties":{"hero":{"type":"string","maxLength":10},"friends":{"type":"array","items":{"enum":["cat","dog"]},"maxItems":2}},"required":["hero","friends"]}""";
        using var lm = LocalModel.Load(TestPaths.Stories260K);
        using var engine = new ChatEngine(lm.Model, lm.Tokenizer);
        var (status, body) = await Post(engine, "/v1/chat/completions",
            """{"messages":[{"role":"user","content":"Once upon a time"}],"max_tokens":200,"seed":3,"temperature":1,"response_format":{"type":"json_schema","json_schema":{"name":"story","strict":true,"schema":""" + Schema + "}}}");
        Assert.Equal(HttpStatusCode.OK, status);
        string content = body.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString()!;
        Assert.True(JsonSchema.FromText(Schema).Evaluate(JsonDocument.Parse(content).RootElement).IsValid, content);

        IChatClient client = new DeepSeekChatClient(engine, "m");
        var reply = await client.GetResponseAsync("Once upon a time", new ChatOptions
        {
            Seed = 4, Temperature = 1, MaxOutputTokens = 200, ResponseFormat = ChatResponseFormat.ForJsonSchema(JsonDocument.Parse(Schema).RootElement),
        });
        Assert.True(JsonSchema.FromText(Schema).Evaluate(JsonDocument.Parse(reply.Text).RootElement).IsValid, reply.Text);
    }

    [Fact]
    public async Task Reasoning_budget_closes_the_reasoning_when_spent()
    {
        var (model, tok, reasoning, _) = ScriptedModel.R1("one two three four five six seven eight.\n", "\n\nDone.");
        using var engine = new ChatEngine(model, tok);
        var (_, body) = await Post(engine, "/v1/chat/completions", """{"messages":[{"role":"user","content":"Count"}],"reasoning_budget":3}""");
        var message = body.GetProperty("choices")[0].GetProperty("message");
        // three reasoning tokens, then the forced "\n</think>\n\n": its "\n" is the reasoning's last text
        Assert.Equal(tok.Decode(tok.Encode(reasoning)[..3]) + "\n", message.GetProperty("reasoning_content").GetString());
        var (_, free) = await Post(engine, "/v1/chat/completions", """{"messages":[{"role":"user","content":"Count"}]}""");
        Assert.Equal(reasoning, free.GetProperty("choices")[0].GetProperty("message").GetProperty("reasoning_content").GetString());
    }

    [Theory]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"presence_penalty":3}""", "presence_penalty")]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"logit_bias":{"a":1}}""", "logit_bias")]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"logit_bias":{"1":101}}""", "logit_bias")]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"top_logprobs":2}""", "top_logprobs")]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"logprobs":true,"top_logprobs":21}""", "top_logprobs")]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"n":2,"stream":true}""", "n")]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"xml"}}""", "response_format.type")]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"schema":{"type":"string","pattern":"a+"}}}}""", "response_format.json_schema.schema")]
    [InlineData("""{"messages":[{"role":"user","content":"x"}],"reasoning_budget":-1}""", "reasoning_budget")]
    public async Task Bad_values_are_a_400_naming_the_field(string json, string param)
    {
        var (model, tok, _, _) = ScriptedModel.R1("R.\n", "A.");
        using var engine = new ChatEngine(model, tok);
        var (status, body) = await Post(engine, "/v1/chat/completions", json);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal(param, body.GetProperty("error").GetProperty("param").GetString());
    }
}
