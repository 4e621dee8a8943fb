using System.Text.Json.Nodes;
using DeepSeekCpu.Models;
using Xunit;

namespace DeepSeekCpu.Tests.Models;

/// <summary>config.json's quantization_config for DeepSeek FP8 checkpoints (V3/R1, and V3.1's scale_fmt "ue8m0").</summary>
public class QuantizationConfigTests
{
    private static ModelConfig Read(string quantizationConfig)
    {
        using var tmp = TestPaths.NewTempDir();
        var cfg = JsonNode.Parse(File.ReadAllText(TestPaths.Fixture("deepseek-v3-tiny", "config.json")))!;
        cfg["quantization_config"] = JsonNode.Parse(quantizationConfig);
        string path = tmp.File("config.json");
        File.WriteAllText(path, cfg.ToJsonString());
        return ModelConfig.FromHfJson(path);
    }

    [Fact]
    public void V31_scale_format_is_read()
    {
        var c = Read("""{"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8", "scale_fmt": "ue8m0", "weight_block_size": [128, 128]}""");
        Assert.Equal("ue8m0", c.Fp8ScaleFormat);
        Assert.Null(Read("""{"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8", "weight_block_size": [128, 128]}""").Fp8ScaleFormat);
    }

    [Theory]
    [InlineData("""{"quant_method": "fp8", "weight_block_size": [64, 64]}""", "weight_block_size must be [128, 128]")]
    [InlineData("""{"quant_method": "fp8", "scale_fmt": "e5m2"}""", "scale_fmt \"e5m2\" is not supported")]
    [InlineData("""{"quant_method": "fp8", "scale_fmt": 8}""", "\"scale_fmt\" must be a string")]
    public void Other_fp8_layouts_are_one_line_errors(string quantizationConfig, string expected)
    {
        var e = Assert.Throws<ModelFormatException>(() => Read(quantizationConfig));
        Assert.Contains(expected, e.Message);
        Assert.Contains("config.json", e.Message);
        Assert.DoesNotContain('\n', e.Message);
    }
}
