namespace DeepSeekCpu.Models.DeepSeek;

/// <summary>How MLA computes attention: over the latent cache (absorbed) or with keys/values expanded per head.</summary>
internal enum MlaMode
{
    /// <summary>Absorbed for decoding; naive for prompt chunks whose queries are most of the keys (cheaper there).</summary>
    Auto,
    /// <summary>Always absorbed: scores and values over the latent c_kv (DeepSeek's attn_impl "absorb").</summary>
    Absorbed,
    /// <summary>Always naive: expand k_h = [W_uk_h c_kv ; k_pe], v_h = W_uv_h c_kv per head (attn_impl "naive"). Reference.</summary>
    Naive,
}

/// <summary>Which MLA computation a forward pass uses (the cost model; the layer only does what it is told).</summary>
internal static class MlaPlan
{
    /// <summary>
    /// The most the naive path's expanded keys and values (per head [tokens, nope + rope] and [tokens, v], float32) may
    /// take: past it a prompt chunk attends absorbed (same values, more arithmetic, no scratch). V2-Lite: 52K tokens;
    /// V3: 6.5K.
    /// </summary>
    public const long MaxExpandedBytes = 1L << 30;

    /// <summary>Whether a pass over <paramref name="rows"/> expands keys and values (naive) instead of absorbing.</summary>
    public static bool Expands(MlaMode mode, BatchRows<DeepSeekSession> rows, ModelConfig c)
    {
        // rows of several sequences each attend over their own latent cache: absorbed
        return rows.OneSequence && Expands(mode, c, rows.Count, rows.Positions[0]);
    }

    /// <summary>Whether a prompt chunk of <paramref name="n"/> rows at positions start.. expands keys and values.</summary>
    internal static bool Expands(MlaMode mode, ModelConfig c, int n, int start)
    {
        // The naive path expands the whole cache into one array, per head [tokens, nope+rope] keys then [tokens, v]
        // values: within .NET's array limit and the scratch budget; beyond them absorbed attention computes the same values.
        long expanded = (long)(start + n) * c.NumHeads * (c.QkNopeHeadDim + c.QkRopeHeadDim + c.VHeadDim);
        if (expanded > Array.MaxLength || 4 * expanded > MaxExpandedBytes) return false;
        return mode switch
        {
            MlaMode.Naive => true,
            MlaMode.Absorbed => false,
            _ => n >= 8 && NaiveCost(c, n, start) < AbsorbedCost(c, n, start),
        };
    }

    // Multiply-adds of the attention of n rows at positions start.. (causal: pairs = n·start + n(n+1)/2), per head:
    //   naive:    expand every cached latent, (nope+v)·kvl per token, then (nope+rope) per score and v per value;
    //   absorbed: fold W_uk into each query and W_uv after its sum, (nope+v)·kvl per row, then (kvl+rope) per score
    //             and kvl per value.
    // The expansion is paid for the whole cache once per chunk, so naive wins for long chunks at any depth: V2-Lite
    // (kvl 512, nope = v = 128, rope 64) from about 170 rows on; a decoding row (n = 1) is always absorbed.
    internal static double NaiveCost(ModelConfig c, int n, int start) =>
        (double)c.NumHeads * ((double)(start + n) * (c.QkNopeHeadDim + c.VHeadDim) * c.KvLoraRank
                              + Pairs(n, start) * (c.QkNopeHeadDim + c.QkRopeHeadDim + c.VHeadDim));

    internal static double AbsorbedCost(ModelConfig c, int n, int start) =>
        (double)c.NumHeads * ((double)n * (c.QkNopeHeadDim + c.VHeadDim) * c.KvLoraRank
                              + Pairs(n, start) * (2.0 * c.KvLoraRank + c.QkRopeHeadDim));

    private static double Pairs(int n, int start) => (double)n * start + (double)n * (n + 1) / 2;
}
