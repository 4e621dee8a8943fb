using System.Text.Json;
using System.Text.Json.Nodes;
using DeepSeekCpu.Cli;
using DeepSeekCpu.Formats;
using DeepSeekCpu.Tokenization;
using DeepSeekCpu.Tokenizers;
using DeepSeekCpu.Weights;
using Xunit;

namespace DeepSeekCpu.Tests.Cli;

/// <summary>Issue 15, nothing silently changed: a capped context, fallback quant types, a tokenizer of another model
/// and an unrecognised chat template are each said; --chat-template FILE replaces the template; info names it.</summary>
[Collection("Console")]
public class CliWarningsTests
{
    private static (int code, string stdout, string stderr) Cli(params string[] args) => CliRunner.Run(args);
    private static readonly string R1Tokenizer = TestPaths.Fixture("tokenizers", "r1-distill-qwen");

    [Fact]
    public void A_context_above_the_model_limit_is_capped_with_a_warning()
    {
        // stories260K: llama2.c's header says seq_len 512
        var (code, _, stderr) = Cli("run", "--ctx", "100000", "-p", "Once", "-n", "1", "--no-stats");
        Assert.Equal(0, code);
        Assert.Contains("warning: --ctx 100000 is more than the model's limit of 512 tokens (max_position_embeddings): using 512", stderr);
        Assert.DoesNotContain("warning", Cli("run", "--ctx", "512", "-p", "Once", "-n", "1", "--no-stats").stderr);
    }

    [Fact]
    public void Quantize_reports_the_types_it_wrote_and_why_rows_fell_back()
    {
        using var tmp = TestPaths.NewTempDir();
        string output = tmp.File("q4k.gguf");
        var (code, _, stderr) = Cli("quantize", "-m", TestPaths.Fixture("tiny-qwen2"), "--type", "q4_k", "-o", output);
        Assert.Equal(0, code);
        // tiny-qwen2 has rows of 32 and 64 values; Q4_K blocks hold 256 (ggml-common.h QK_K): llama.cpp's fallback is Q8_0
        using (var g = GgufFile.Open(output))
        {
            var matrices = g.Tensors.Values.Where(t => t.Rank >= 2).ToList();
            Assert.All(matrices, t => Assert.Equal(DType.Q8_0, t.Type));
            Assert.Contains($"warning: quantize: {matrices.Count} of {matrices.Count} matrices are not Q4_K: their rows (32, 64 values) are not a multiple of its 256-value blocks; they are Q8_0 x {matrices.Count}", stderr);
        }
        var wrote = stderr.Split('\n').Single(l => l.StartsWith("wrote "));
        Assert.DoesNotContain("Q4_K", wrote);
        Assert.Contains("Q8_0 x 16", wrote);
        // a type whose blocks fit (Q8_0: 32 values) is no warning
        Assert.DoesNotContain("warning: quantize", Cli("quantize", "-m", TestPaths.Fixture("tiny-qwen2"), "--type", "q8_0", "-o", tmp.File("q8.gguf")).stderr);
    }

    [Fact]
    public void Quant_at_load_says_which_matrices_it_could_not_convert()
    {
        // stories260K: dim 64, hidden 172; Q4_K needs rows of a multiple of 256, Q8_0 of 32 (172 is not one either)
        var (code, _, stderr) = Cli("run", "--quant", "q4_k", "-p", "Once", "-n", "1", "--no-stats");
        Assert.Equal(0, code);
        Assert.Contains("matrices kept as F32: their rows (64, 172 values) are not a multiple of Q4_K's 256-value blocks", stderr);
        (code, _, stderr) = Cli("run", "--quant", "q8_0", "-p", "Once", "-n", "1", "--no-stats");
        Assert.Contains("their rows (172 values) are not a multiple of Q8_0's 32-value blocks", stderr);
    }

    [Fact]
    public void A_tokenizer_of_another_model_is_a_one_line_error_at_load()
    {
        var (code, stdout, stderr) = Cli("run", "-m", TestPaths.Fixture("tiny-qwen2"), "--tokenizer", R1Tokenizer, "-p", "hi");
        Assert.Equal(1, code);
        Assert.Equal("", stdout);
        Assert.Contains("the tokenizer has 151665 tokens but the model's vocabulary is 96", stderr);
        Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public void A_tokenizer_of_another_model_is_refused_by_the_library_too()
    {
        // Applications load through LocalModel, not the CLI: the check lives there, before the graph is built.
        var e = Assert.Throws<ModelFormatException>(() => LocalModel.Load(TestPaths.Fixture("tiny-qwen2"), R1Tokenizer));
        Assert.Equal($"{R1Tokenizer}: the tokenizer has 151665 tokens but the model's vocabulary is 96 (a tokenizer of another model?)", e.Message);
    }

    /// <summary>The R1 tokenizer with another chat template in its tokenizer_config.json.</summary>
    private static string TokenizerWithTemplate(TestPaths.TempDir tmp, string template)
    {
        string dir = tmp.File("tok");
        Directory.CreateDirectory(dir);
        File.Copy(Path.Combine(R1Tokenizer, "tokenizer.json"), Path.Combine(dir, "tokenizer.json"));
        var config = JsonNode.Parse(File.ReadAllText(Path.Combine(R1Tokenizer, "tokenizer_config.json")))!;
        config["chat_template"] = template;
        File.WriteAllText(Path.Combine(dir, "tokenizer_config.json"), config.ToJsonString());
        return dir;
    }

    private const string ChatML = "{% for m in messages %}{{'<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n'}}{% endfor %}{% if add_generation_prompt %}{{'<|im_start|>assistant\\n'}}{% endif %}";

    [Fact]
    public void Info_names_the_template_and_says_when_it_is_not_recognised()
    {
        string model = TestPaths.Fixture("tiny-qwen2");
        Assert.Contains("chat template:  DeepSeek R1 (opens <think>)", Cli("info", "-m", model, "--tokenizer", R1Tokenizer).stdout);
        using var tmp = TestPaths.NewTempDir();
        string chatml = TokenizerWithTemplate(tmp, ChatML);
        Assert.True(ChatTemplateFile.Unrecognised(TokenizerLoader.FromDirectory(chatml)));
        Assert.False(ChatTemplateFile.Unrecognised(TokenizerLoader.FromDirectory(R1Tokenizer)));
        Assert.Contains("chat template:  not recognised: prompts are sent as plain text (give --chat-template FILE)",
            Cli("info", "-m", model, "--tokenizer", chatml).stdout);
        Assert.Contains("chat template:  none", Cli("info", "-m", TestPaths.Stories260K).stdout);
        File.WriteAllText(tmp.File("t.json"), """{"user": "{content}", "assistant": "{content}", "generation": ":"}""");
        Assert.Contains($"chat template:  {tmp.File("t.json")} (JSON form, --chat-template)",
            Cli("info", "-m", TestPaths.Stories260K, "--chat-template", tmp.File("t.json")).stdout);
    }

    [Fact]
    public void A_json_template_renders_each_role_as_documented()
    {
        using var tmp = TestPaths.NewTempDir();
        string path = tmp.File("chatml.json");
        File.WriteAllText(path, """
            {"bos": "<｜begin▁of▁sentence｜>", "system": "[S]{content}\n", "user": "[U]{content}\n", "assistant": "[A]{content}<｜end▁of▁sentence｜>\n",
             "generation": "[A]<think>\n", "stop": ["<｜end▁of▁sentence｜>"]}
            """);
        var tokenizer = TokenizerLoader.FromDirectory(R1Tokenizer);
        var template = Assert.IsType<ChatTemplateFile>(ChatTemplateFile.Load(path, tokenizer));
        ChatMessage[] messages = [new("system", "Be brief."), new("user", "2+2?"), new("assistant", "<think>\nadd\n</think>\n\n4"), new("user", "3+3?")];
        // by the format's rules: bos, each message by its role's pattern (earlier reasoning dropped), then the generation prompt
        Assert.Equal("<｜begin▁of▁sentence｜>[S]Be brief.\n[U]2+2?\n[A]\n\n4<｜end▁of▁sentence｜>\n[U]3+3?\n[A]<think>\n", template.Render(messages));
        Assert.True(template.OpensReasoning);
        var templated = new TemplatedTokenizer(tokenizer, template, [tokenizer.TokenToId("<｜end▁of▁sentence｜>")!.Value]);
        Assert.Contains(tokenizer.TokenToId("<｜end▁of▁sentence｜>")!.Value, templated.StopIds);
        Assert.Equal(tokenizer.Encode("[U]x"), templated.Encode("[U]x"));
    }

    [Theory]
    [InlineData("""{"user": "{content}", "assistant": "{content}", "generation": "A", "colour": "red"}""", "unknown key \"colour\"")]
    [InlineData("""{"user": "no placeholder", "assistant": "{content}", "generation": "A"}""", "\"user\" should be a pattern containing {content}")]
    [InlineData("""{"user": "{content}", "generation": "A"}""", "\"assistant\" is missing")]
    [InlineData("""{"user": "{content}", "assistant": "{content}"}""", "\"generation\" is missing")]
    [InlineData("""{"user": "{content}", "assistant": "{content}", "generation": "A", "stop": ["<|im_end|>"]}""", "'<|im_end|>', which is not a token of the model's vocabulary")]
    [InlineData("""{"user": "{content}",""", "not valid JSON")]
    [InlineData(ChatML, "not a DeepSeek Jinja chat template")]
    public void A_bad_template_file_is_one_line_naming_it(string text, string expected)
    {
        using var tmp = TestPaths.NewTempDir();
        string path = tmp.File("template.txt");
        File.WriteAllText(path, text);
        var e = Assert.Throws<InvalidFileException>(() => ChatTemplateFile.Load(path, TokenizerLoader.FromDirectory(R1Tokenizer)));
        Assert.StartsWith(path + ": ", e.Message);
        Assert.Contains(expected, e.Message);
        Assert.DoesNotContain('\n', e.Message);
        var (code, stdout, stderr) = Cli("run", "--chat-template", path, "-p", "hi", "-n", "1");
        Assert.Equal(1, code);
        Assert.Equal("", stdout);
        Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith("error: " + path, stderr);
    }

    [Fact]
    public void A_deepseek_jinja_file_overrides_the_template()
    {
        string file = TestPaths.Fixture("chat-templates", "r1-0528.jinja");
        var template = ChatTemplateFile.Load(file, TokenizerLoader.FromDirectory(R1Tokenizer));
        Assert.Equal("DeepSeek R1-0528", ChatTemplateFile.Describe(new TemplatedTokenizer(TokenizerLoader.FromDirectory(R1Tokenizer), template, [])));
        // the demo model has no template; with one it renders a chat (no echo of the prompt, as for plain text)
        using var tmp = TestPaths.NewTempDir();
        File.WriteAllText(tmp.File("t.json"), """{"user": "{content}", "assistant": "{content}", "generation": ","}""");
        var (code, stdout, _) = Cli("run", "--chat-template", tmp.File("t.json"), "-p", "Once upon a time", "--temp", "0", "-n", "8", "--no-stats");
        Assert.Equal(0, code);
        Assert.False(stdout.StartsWith("Once upon a time"), stdout);
        Assert.NotEqual("", stdout.Trim());
    }
}
