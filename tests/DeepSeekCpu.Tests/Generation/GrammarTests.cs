using System.Text;
using System.Text.Json;
using System.Text.Json.Nodes;
using DeepSeekCpu.Generation;
using DeepSeekCpu.Tokenization;
using Json.Schema;
using Xunit;

namespace DeepSeekCpu.Tests.Generation;

/// <summary>
/// GBNF grammars and JSON schemas as constraints: the matcher against sentences written from the GBNF description
/// (llama.cpp grammars/README.md), the whole-vocabulary mask against token-by-token checks, and the demo model's
/// constrained answers validated by an independent JSON Schema implementation (JsonSchema.Net) over many seeds.
/// </summary>
public class GrammarTests
{
    private static bool Matches(Grammar g, string text)
    {
        var m = new GrammarMatcher(g);
        return m.Accept(Encoding.UTF8.GetBytes(text)) && m.IsAccepting;
    }

    [Fact]
    public void Gbnf_sentences_match_and_others_do_not()
    {
        var g = Grammar.Parse("""
            # arithmetic, from the README's shape
            root  ::= expr
            expr  ::= term (("+" | "-") term)*
            term  ::= num | "(" expr ")"
            num   ::= [0-9]+ ("." [0-9]{1,2})?
            """);
        foreach (string ok in new[] { "1", "12+3", "(1-2)+3.25", "((7))" }) Assert.True(Matches(g, ok), ok);
        foreach (string bad in new[] { "", "+1", "1+", "3.125", "(1", "1 + 2", "a" }) Assert.False(Matches(g, bad), bad);

        var u = Grammar.Parse("root ::= [^a-z\\n]{2,3} \"é\" \"\\u00e9\" . [\\U0001F680]?\n");
        Assert.True(Matches(u, "AB" + "éé" + "x"));
        Assert.True(Matches(u, "12" + "éé" + "猫" + "🚀"));
        Assert.False(Matches(u, "aB" + "éé" + "x"));
        Assert.False(Matches(u, "ABCD" + "éé" + "x"));
        Assert.False(Matches(u, "AB" + "éé"));
    }

    [Fact]
    public void A_character_split_across_tokens_is_followed_byte_by_byte()
    {
        var g = Grammar.Parse("root ::= \"猫\" [a-c]\n");
        var m = new GrammarMatcher(g);
        byte[] cat = Encoding.UTF8.GetBytes("猫");
        Assert.True(m.Allows(cat[..1]));
        Assert.False(m.Allows(Encoding.UTF8.GetBytes("狗")[..2]));   // the second byte already differs
        Assert.True(m.Accept(cat[..2]));
        Assert.False(m.IsAccepting);
        Assert.True(m.Accept([cat[2], (byte)'b']));
        Assert.True(m.IsFinished);
    }

    [Theory]
    [InlineData("root ::= root \"a\" | \"b\"\n", "left-recursive")]
    [InlineData("root ::= x\n", "'x' is used but never defined")]
    [InlineData("root ::= \"a\\q\"\n", "line 1: expected a known escape")]
    [InlineData("root ::= \"a\"\nroot ::= \"b\"\n", "defined once")]
    [InlineData("r ::= \"a\"\n", "no 'root'")]
    [InlineData("root ::= [abc", "']' closing")]
    [InlineData("root ::= \"a\"{3,1}\n", "m <= n")]
    public void Bad_grammars_are_one_line_errors(string text, string message)
    {
        var e = Assert.Throws<FormatException>(() => Grammar.Parse(text));
        Assert.Contains(message, e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }

    [Fact]
    public void Unsupported_schema_keywords_are_refused_by_name()
    {
        var e = Assert.Throws<ArgumentException>(() => JsonSchemaGrammar.FromSchema("""{"type":"object","properties":{"a":{"type":"string","pattern":"^x"}}}"""));
        Assert.Contains("#.properties.a: keyword 'pattern'", e.Message);
        Assert.Throws<ArgumentException>(() => JsonSchemaGrammar.FromSchema("""{"$ref":"#/nowhere"}"""));
        Assert.Throws<ArgumentException>(() => JsonSchemaGrammar.FromSchema("""{"type":"object","properties":{"a":{}},"required":["b"]}"""));
    }

    private static readonly string[] SchemaTexts =
    [
        // object with required and optional fields, enum, bounded string, integer
        """{"type":"object","properties":{"name":{"type":"string","minLength":1,"maxLength":12},"age":{"type":"integer"},"mood":{"enum":["happy","sad",null,3]},"note":{"type":"string","maxLength":8}},"required":["name","mood"]}""",
        // array of numbers with bounds
        """{"type":"array","items":{"type":"number"},"minItems":1,"maxItems":4}""",
        // nested objects and arrays, booleans, a $ref, anyOf, const
        """{"$defs":{"pt":{"type":"object","properties":{"x":{"type":"integer"},"y":{"type":"integer"}},"required":["x","y"]}},"type":"object","properties":{"ok":{"type":"boolean"},"pts":{"type":"array","items":{"$ref":"#/$defs/pt"},"maxItems":3},"tag":{"anyOf":[{"type":"string","maxLength":5},{"type":"null"}]},"v":{"const":"1.0"}},"required":["ok","pts","v"]}""",
        // only optional properties
        """{"type":"object","properties":{"a":{"type":"boolean"},"b":{"type":["integer","null"]},"c":{"type":"string","maxLength":4}}}""",
    ];

    public static TheoryData<string> Schemas => new(SchemaTexts);

    [Theory]
    [MemberData(nameof(Schemas))]
    public async Task Demo_model_answers_validate_against_the_schema_for_many_seeds(string schemaText)
    {
        using var lm = LocalModel.Load(TestPaths.Stories260K);
        using var engine = new ChatEngine(lm.Model, lm.Tokenizer);
        var grammar = JsonSchemaGrammar.FromSchema(schemaText);
        var schema = JsonSchema.FromText(schemaText);
        int[] prompt = engine.RenderCompletion("Once upon a time");
        var outputs = new HashSet<string>();
        for (ulong seed = 1; seed <= 12; seed++)
        {
            var request = new GenerationRequest
            {
                MaxTokens = 600, Grammar = grammar,
                Sampling = new SamplingOptions { Temperature = 1.0f, TopP = 1f, Seed = seed },
            };
            var r = await engine.CompleteAsync(prompt, false, request);
            Assert.Equal(FinishReason.Stop, r.FinishReason);
            var node = JsonNode.Parse(r.Content);   // throws when it is not JSON
            var eval = schema.Evaluate(JsonDocument.Parse(r.Content).RootElement);
            Assert.True(eval.IsValid, $"seed {seed}: {r.Content}");
            outputs.Add(node!.ToJsonString());
        }
        Assert.True(outputs.Count > 3, "the seeds gave different answers");
    }

    [Fact]
    public async Task Json_object_mode_gives_an_object()
    {
        using var lm = LocalModel.Load(TestPaths.Stories260K);
        using var engine = new ChatEngine(lm.Model, lm.Tokenizer);
        var request = new GenerationRequest { MaxTokens = 300, Grammar = JsonSchemaGrammar.AnyObject(), Sampling = SamplingOptions.Greedy };
        var r = await engine.CompleteAsync(engine.RenderCompletion("Once upon a time"), false, request);
        // greedy may stop at the token budget inside a long string; what is there is an object's start
        Assert.StartsWith("{", r.Content.TrimStart());
        if (r.FinishReason == FinishReason.Stop) Assert.Equal(JsonValueKind.Object, JsonDocument.Parse(r.Content).RootElement.ValueKind);
    }

    /// <summary>
    /// An R1 model's reasoning is not held to the grammar, its answer is: the scripted reasoning comes out as written,
    /// and the scripted answer, which is not JSON, is replaced by what the grammar allows (the mask leaves only
    /// fitting tokens, all equally likely to this model, and greedy takes the first).
    /// </summary>
    [Fact]
    public async Task R1_reasoning_stays_free_and_only_the_answer_is_constrained()
    {
        var (model, tok, reasoning, _) = Serving.ScriptedModel.R1("Let me think { not json.\n", "\n\nThe answer is yes.");
        using var engine = new ChatEngine(model, tok);
        int[] prompt = engine.RenderChat([new("user", "Is it?")], out bool startsInReasoning);
        Assert.True(startsInReasoning);
        var request = new GenerationRequest
        {
            MaxTokens = 200, Sampling = SamplingOptions.Greedy,
            Grammar = JsonSchemaGrammar.FromSchema("""{"type":"object","properties":{"ok":{"type":"boolean"}},"required":["ok"]}"""),
        };
        var r = await engine.CompleteAsync(prompt, startsInReasoning, request);
        Assert.Equal(reasoning, r.Reasoning);
        Assert.Equal(FinishReason.Stop, r.FinishReason);
        var answer = JsonDocument.Parse(r.Content).RootElement;
        Assert.Equal(JsonValueKind.Object, answer.ValueKind);
        Assert.True(answer.GetProperty("ok").ValueKind is JsonValueKind.True or JsonValueKind.False);
    }

    /// <summary>The mask's walk over the sorted vocabulary against one check per token, at states along a sentence.</summary>
    [Fact]
    public void The_vocabulary_mask_equals_checking_every_token()
    {
        using var lm = LocalModel.Load(TestPaths.Stories260K);
        var tok = lm.Tokenizer;
        var grammar = JsonSchemaGrammar.FromSchema(SchemaTexts[0]);
        var c = new GrammarConstraint(grammar, tok);
        string sentence = "\n{\"name\": \"Tim é\", \"mood\": null, \"note\": \"x\"}";
        foreach (int id in tok.Encode(sentence))
        {
            var logits = new float[tok.VocabSize];
            c.Mask(logits);
            for (int t = 0; t < tok.VocabSize; t++)
                Assert.Equal(c.Allows(t), !float.IsNegativeInfinity(logits[t]));
            Assert.True(c.Allows(id), $"token {id} of the sentence");
            c.Accept(id);
        }
        Assert.True(c.IsFinished);
        Assert.True(c.Allows(tok.EosId!.Value));
    }
}
