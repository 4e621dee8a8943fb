using DeepSeekCpu.Models;
using DeepSeekCpu.Models.DeepSeek;
using Xunit;

namespace DeepSeekCpu.Tests.DeepSeek;

/// <summary>
/// Which MLA computation a prompt chunk gets (<see cref="MlaPlan"/>), on the published shapes of DeepSeek-V2-Lite
/// (16 heads) and V3 (128 heads), both kv_lora_rank 512, qk_nope 128, qk_rope 64, v 128 (their config.json files).
/// Worked by hand: naive minus absorbed multiply-adds is heads·[start·(nope+v)·kvl − pairs·(2·kvl − nope − v)], with
/// pairs = n·start + n(n+1)/2, so a first chunk (start 0) is always cheaper naive, and deep in a context naive needs
/// n·768 > 131072, about 171 rows.
/// </summary>
public class MlaPlanTests
{
    private static ModelConfig Shape(int heads) => new()
    {
        Architecture = Architecture.DeepSeekV2, VocabSize = 102400, HiddenSize = 2048, IntermediateSize = 10944,
        NumLayers = 27, NumHeads = heads, KvLoraRank = 512, QkNopeHeadDim = 128, QkRopeHeadDim = 64, VHeadDim = 128,
    };

    [Theory]
    [InlineData(16, 512, 0, true)]        // a first chunk
    [InlineData(16, 8, 0, true)]
    [InlineData(16, 512, 16384, true)]    // a long chunk deep in the context: the expansion is paid back
    [InlineData(16, 171, 16384, true)]
    [InlineData(16, 128, 16384, false)]   // a short chunk deep in the context: the expansion of 16K tokens is not
    [InlineData(16, 1, 4096, false)]      // decoding
    [InlineData(16, 4, 0, false)]         // fewer than 8 rows
    [InlineData(128, 512, 4096, true)]    // V3: 4608 tokens x 128 heads x 320 floats (keys with their k_pe, values) = 755 MB
    [InlineData(128, 512, 6000, true)]    // V3: 6512 tokens, 1.067 GB: just within the 1 GiB (1.074 GB) scratch budget
    [InlineData(128, 512, 6144, false)]   // V3: 6656 tokens, 1.091 GB: past it (without k_pe per head it would fit)
    [InlineData(128, 512, 16384, false)]  // V3: 2.8 GB
    public void A_chunk_expands_when_that_is_less_arithmetic_within_the_scratch_budget(int heads, int n, int start, bool naive)
    {
        Assert.Equal(naive, MlaPlan.Expands(MlaMode.Auto, Shape(heads), n, start));
        Assert.False(MlaPlan.Expands(MlaMode.Absorbed, Shape(heads), n, start));
    }
}
