using DeepSeekCpu.Kernels;

namespace DeepSeekCpu.Models.Llama;

/// <summary>A sequence's KV cache ([layer][pos, kvHeads*headDim] for K and V, in the model's cache type at creation, grown as the sequence does).</summary>
internal sealed class LlamaSession : ModelSession
{
    private readonly LlamaModel _m;
    internal readonly KvCache[] KCache, VCache;   // per layer: [ctx, kv*hd]
    internal override object Owner => _m;

    public LlamaSession(LlamaModel m, int ctx, KvCacheType type) : base(ctx)
    {
        _m = m;
        int kv = m.Config.NumKvHeads * m.Config.HeadDim;
        KCache = new KvCache[m.Config.NumLayers];
        VCache = new KvCache[m.Config.NumLayers];
        int heads = m.Config.NumKvHeads;   // stored head by head: a decoding step streams each head's keys contiguously
        for (int l = 0; l < KCache.Length; l++) { KCache[l] = new KvCache(type, kv, ctx, heads); VCache[l] = new KvCache(type, kv, ctx, heads); }
    }

    /// <summary>Bytes of cache allocated so far (all layers, K and V).</summary>
    public long CacheBytes => KCache.Sum(k => k.AllocatedBytes) + VCache.Sum(k => k.AllocatedBytes);

    public override void Forward(ReadOnlySpan<int> tokens, Span<float> logits, bool allPositions = false) =>
        _m.Contract.Forward(this, tokens, logits, allPositions);
}

/// <summary>
/// The activations of one Llama forward pass over up to <see cref="Rows"/> rows (R), one set per model (passes run
/// one at a time), llama2.c's names. Pinned: batched products take their addresses (<see cref="ExpertBatch"/>).
/// </summary>
internal sealed class LlamaPass(ModelConfig c, int rows)
{
    public readonly int Rows = rows;
    public readonly float[] X = F(rows * c.HiddenSize);                       // [R, dim] residual stream
    public readonly float[] Xb = F(rows * c.HiddenSize);                      // [R, dim] normed input of a half
    public readonly float[] O = F(rows * c.HiddenSize);                       // [R, dim] a half's output
    public readonly float[] Q = F(rows * c.NumHeads * c.HeadDim);             // [R, heads, hd]
    public readonly float[] Att = F(rows * c.NumHeads * c.HeadDim);           // [R, heads, hd] attention output
    public readonly float[] K = F(rows * c.NumKvHeads * c.HeadDim);           // [R, kv heads, hd]
    public readonly float[] V = F(rows * c.NumKvHeads * c.HeadDim);           // [R, kv heads, hd]
    public readonly float[] G = F(rows * c.IntermediateSize);                 // [R, ffn]
    public readonly float[] U = F(rows * c.IntermediateSize);                 // [R, ffn] scratch where gate and up run unfused
    public readonly ExpertBatch Products = new();                             // products of one input run together (q, k, v; gate and up with SwiGLU)

    private static float[] F(long length) => GC.AllocateArray<float>(checked((int)length), pinned: true);

    /// <summary>Bytes of the buffers above for <paramref name="rows"/> rows (the memory plan of `info`).</summary>
    public static long Bytes(ModelConfig c, int rows) =>
        4L * rows * (3L * c.HiddenSize + 2L * c.NumHeads * c.HeadDim + 2L * c.NumKvHeads * c.HeadDim + 2L * c.IntermediateSize);
}
