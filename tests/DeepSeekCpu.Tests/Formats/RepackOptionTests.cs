using DeepSeekCpu.Cli;
using DeepSeekCpu.Kernels;
using DeepSeekCpu.Kernels.Repack;
using DeepSeekCpu.Models;
using DeepSeekCpu.Tests.Models;
using DeepSeekCpu.Weights;
using Xunit;

namespace DeepSeekCpu.Tests.Formats;

/// <summary>
/// LoadOptions.Repack (--repack on|off): with it, quantized matrices get interleaved copies for decoding (counted in
/// the resident bytes), and the logits are those of the stored layout up to float summation order; the independent
/// Python reference's logits stay within the quantization budget either way.
/// </summary>
public unsafe class RepackOptionTests
{
    [Theory]
    [InlineData("q4_0", 0.6)]
    [InlineData("q8_0", 0.08)]
    public void Repacked_model_matches_the_stored_layout_and_counts_its_copy(string type, double maxRelRms)
    {
        var r = ReferenceData.Load(TestPaths.Fixture("tiny-qwen2"));
        LoadOptions Options(bool repack) => new() { MatrixTransform = Commands.QuantTransform(type), CacheType = KvCacheType.F32, Repack = repack };
        using var on = ModelLoader.Load(TestPaths.Fixture("tiny-qwen2"), Options(true));
        using var off = ModelLoader.Load(TestPaths.Fixture("tiny-qwen2"), Options(false));
        var dtype = type == "q4_0" ? DType.Q4_0 : DType.Q8_0;
        bool hasBody = Interleave.GroupDot(dtype, KernelInfo.Path) != null;
        Assert.Equal(0, off.Weights.InterleavedBytes);
        if (hasBody) Assert.True(on.Weights.InterleavedBytes > 0, "no interleaved copies were made");
        Assert.Equal(off.Weights.ResidentBytes + on.Weights.InterleavedBytes, on.Weights.ResidentBytes);
        var logitsOn = Engine.Prefill(on, r.Prompt);
        var logitsOff = Engine.Prefill(off, r.Prompt);
        // same quantized weights and activations: only the order of float sums differs
        Assert.True(Engine.RelativeRms(logitsOff, logitsOn) < 1e-4, $"--repack on vs off: relative RMS {Engine.RelativeRms(logitsOff, logitsOn):G3}");
        Assert.True(Engine.RelativeRms(r.Logits, logitsOn) < maxRelRms);
    }

    [Fact]
    public void Repack_option_takes_on_or_off()
    {
        var err = Console.Error;
        var sw = new StringWriter();
        Console.SetError(sw);
        try
        {
            Assert.Equal(2, Commands.Execute(["info", "-m", TestPaths.Fixture("tiny-qwen2"), "--repack", "maybe"]));
            Assert.Contains("--repack expects on or off, got 'maybe'", sw.ToString());
        }
        finally { Console.SetError(err); }
    }
}
