namespace DeepSeekCpu.Models;

/// <summary>
/// Precomputed rotary-embedding cos/sin per position: [maxPos, dim/2] each. Frequencies follow the config's
/// rope_scaling: none, "llama3" (Llama 3.1's frequency-dependent scaling) or "yarn" (DeepSeek; DEEPSEEK.md "YaRN").
/// </summary>
internal sealed class RopeTable
{
    public int Dim { get; }
    public int MaxPositions { get; }
    private readonly float[] _cos, _sin;
    /// <summary>Multiplier for the attention softmax scale (YaRN mscale(s, mscale_all_dim)², else 1).</summary>
    public float AttentionScaleFactor { get; }

    public ReadOnlySpan<float> Cos(int pos) => _cos.AsSpan(pos * (Dim / 2), Dim / 2);
    public ReadOnlySpan<float> Sin(int pos) => _sin.AsSpan(pos * (Dim / 2), Dim / 2);

    public RopeTable(ModelConfig c, int dim, int maxPositions)
    {
        Dim = dim; MaxPositions = maxPositions;
        int half = dim / 2;
        var freq = new double[half];
        for (int i = 0; i < half; i++) freq[i] = 1.0 / Math.Pow(c.RopeTheta, 2.0 * i / dim);
        double cosSinScale = 1;
        AttentionScaleFactor = 1;
        switch (c.RopeScaling)
        {
            case { Type: "llama3", FreqFactors: { } factors }:
                // GGUF rope_freqs: llama.cpp divides each frequency by its stored factor.
                if (factors.Length != half) throw new ModelFormatException($"rope frequency factors have {factors.Length} values, expected {half} (head_dim / 2)");
                for (int i = 0; i < half; i++) freq[i] /= factors[i];
                break;
            case { Type: "llama3" } s:
                // Llama 3.1 (HF _compute_llama3_parameters): long wavelengths are divided by the factor,
                // short ones kept, and the band between is smoothly interpolated.
                double lowWavelen = s.OriginalMaxPositionEmbeddings / s.LowFreqFactor;
                double highWavelen = s.OriginalMaxPositionEmbeddings / s.HighFreqFactor;
                for (int i = 0; i < half; i++)
                {
                    double wavelen = 2 * Math.PI / freq[i];
                    if (wavelen > lowWavelen) freq[i] /= s.Factor;
                    else if (wavelen >= highWavelen)
                    {
                        double smooth = (s.OriginalMaxPositionEmbeddings / wavelen - s.LowFreqFactor) / (s.HighFreqFactor - s.LowFreqFactor);
                        freq[i] = (1 - smooth) * freq[i] / s.Factor + smooth * freq[i];
                    }
                }
                break;
            case { Type: "linear" } s:
                for (int i = 0; i < half; i++) freq[i] /= s.Factor;
                break;
            case { Type: "yarn" } s:
                // DeepSeek-V3 inference/model.py precompute_freqs_cis.
                double Correction(double beta) => dim * Math.Log(s.OriginalMaxPositionEmbeddings / (beta * 2 * Math.PI)) / (2 * Math.Log(c.RopeTheta));
                double low = Math.Max(Math.Floor(Correction(s.BetaFast)), 0);
                double high = Math.Min(Math.Ceiling(Correction(s.BetaSlow)), dim - 1);
                if (low == high) high += 0.001;
                if (s.Factor > 1)
                {
                    for (int i = 0; i < half; i++)
                    {
                        double ramp = Math.Clamp((i - low) / (high - low), 0, 1);
                        freq[i] = freq[i] / s.Factor * ramp + freq[i] * (1 - ramp);
                    }
                }
                static double Mscale(double scale, double m) => scale <= 1 ? 1 : 0.1 * m * Math.Log(scale) + 1;
                double all = Mscale(s.Factor, s.MscaleAllDim);
                AttentionScaleFactor = (float)(all * all);
                cosSinScale = Mscale(s.Factor, s.Mscale) / all;
                if (s.AttentionFactor is double af) { AttentionScaleFactor = 1; cosSinScale = af; }  // HF: given attention_factor wins
                break;
        }
        _cos = new float[maxPositions * half];
        _sin = new float[maxPositions * half];
        for (int p = 0; p < maxPositions; p++)
            for (int i = 0; i < half; i++)
            {
                double a = p * freq[i];
                _cos[p * half + i] = (float)(Math.Cos(a) * cosSinScale);
                _sin[p * half + i] = (float)(Math.Sin(a) * cosSinScale);
            }
    }
}

/// <summary>
/// A model's one rope table, shared by all its sessions and grown (under a lock) when a session needs more positions
/// than it has; forward passes read <see cref="Current"/> once, and an older table stays valid for the positions it has.
/// </summary>
internal sealed class RopeTables(ModelConfig c, int dim)
{
    private readonly Lock _lock = new();

    public RopeTable Current { get; private set; } = new(c, dim, Math.Clamp(c.MaxPositionEmbeddings, 1, 4096));

    /// <summary>
    /// The context a new session gets for <paramref name="contextLength"/> requested tokens: at most
    /// max_position_embeddings (the table is grown to it); fewer than one token is an error.
    /// </summary>
    public int Reserve(int contextLength)
    {
        if (contextLength < 1) throw new ArgumentOutOfRangeException(nameof(contextLength), $"context length {contextLength}: a session holds at least one token");
        contextLength = Math.Min(contextLength, Math.Max(1, c.MaxPositionEmbeddings));
        lock (_lock)
            if (Current.MaxPositions < contextLength) Current = new RopeTable(c, dim, contextLength);
        return contextLength;
    }
}
