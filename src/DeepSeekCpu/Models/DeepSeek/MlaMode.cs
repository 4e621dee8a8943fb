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
    /// <summary>Whether a pass over <paramref name="rows"/> expands keys and values (naive) instead of absorbing.</summary>
    public static bool Expands(MlaMode mode, BatchRows<DeepSeekSession> rows, ModelConfig c)
    {
        // rows of several sequences each attend over their own latent cache: absorbed
        if (!rows.OneSequence) return false;
        int n = rows.Count, start = rows.Positions[0];
        // The naive path expands the whole cache into one array, [tokens, heads, nope+v]; past .NET's array limit
        // (about 65K tokens for V3's 128 heads) it cannot, and absorbed attention computes the same values.
        if ((long)(start + n) * c.NumHeads * (c.QkNopeHeadDim + c.VHeadDim) > Array.MaxLength) return false;
        return mode switch
        {
            MlaMode.Naive => true,
            MlaMode.Absorbed => false,
            // Naive expansion costs heads*(nope+v)*kvl per cached token once per pass, then per (query, key) pair
            // heads*(nope+rope+v) instead of absorbed heads*(2*kvl+rope): it wins when the queries are most of the keys.
            _ => n >= 8 && 2 * n >= start + n,
        };
    }
}
