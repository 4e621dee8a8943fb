namespace DeepSeekCpu.Models.DeepSeek.V4;

/// <summary>
/// DeepSeek-V4's rotary tables (inference/model.py precompute_freqs_cis, computed in float32 as torch does): the
/// window-only layers use rope_theta without YaRN, the compressed layers compress_rope_theta with YaRN's frequency
/// interpolation (factor, original_max_position_embeddings, beta_fast/slow) and, unlike V3, no mscale anywhere.
/// Rotations act on interleaved pairs (2i, 2i+1) of the LAST rope dims of a head. Grown under a lock when a session
/// needs more positions; passes read <see cref="Current"/> once.
/// </summary>
internal sealed class V4Rope
{
    private readonly float[] _freqs;   // [rope/2]
    private readonly Lock _lock = new();
    public int Half { get; }

    /// <summary>cos/sin [positions, rope/2].</summary>
    public sealed record Table(float[] Cos, float[] Sin, int Positions);

    public Table Current { get; private set; }

    public V4Rope(int dim, double theta, RopeScaling? yarn, int positions)
    {
        Half = dim / 2;
        _freqs = new float[Half];
        for (int i = 0; i < Half; i++) _freqs[i] = 1f / MathF.Pow((float)theta, (2 * i) / (float)dim);
        if (yarn is { OriginalMaxPositionEmbeddings: > 0 } s)
        {
            // find_correction_range (python floats), linear_ramp_factor (float32)
            double Correction(double rotations) => dim * Math.Log(s.OriginalMaxPositionEmbeddings / (rotations * 2 * Math.PI)) / (2 * Math.Log(theta));
            double low = Math.Max(Math.Floor(Correction(s.BetaFast)), 0), high = Math.Min(Math.Ceiling(Correction(s.BetaSlow)), dim - 1);
            if (low == high) high += 0.001;
            for (int i = 0; i < Half; i++)
            {
                float smooth = 1 - Math.Clamp((float)((i - low) / (high - low)), 0f, 1f);
                _freqs[i] = _freqs[i] / (float)s.Factor * (1 - smooth) + _freqs[i] * smooth;
            }
        }
        Current = Build(Math.Max(1, positions));
    }

    public void Reserve(int positions)
    {
        lock (_lock) if (Current.Positions < positions) Current = Build(positions);
    }

    private Table Build(int positions)
    {
        var cos = new float[positions * Half];
        var sin = new float[positions * Half];
        for (int p = 0; p < positions; p++)
            for (int i = 0; i < Half; i++)
            {
                float a = p * _freqs[i];                          // torch.outer in float32
                cos[p * Half + i] = MathF.Cos(a);
                sin[p * Half + i] = MathF.Sin(a);
            }
        return new Table(cos, sin, positions);
    }

    /// <summary>
    /// apply_rotary_emb on the last 2·Half values of <paramref name="v"/> at <paramref name="pos"/>: pairs (2i, 2i+1)
    /// times e^{iθ}, or e^{−iθ} when <paramref name="inverse"/> (the conjugate, which undoes it).
    /// </summary>
    public static void Rotate(Table t, Span<float> v, int pos, bool inverse = false)
    {
        int half = t.Cos.Length / t.Positions;
        var r = v[^(2 * half)..];
        var cos = t.Cos.AsSpan(pos * half, half);
        var sin = t.Sin.AsSpan(pos * half, half);
        float sign = inverse ? -1f : 1f;
        for (int i = 0; i < half; i++)
        {
            float a = r[2 * i], b = r[2 * i + 1], s = sign * sin[i];
            r[2 * i] = a * cos[i] - b * s;
            r[2 * i + 1] = a * s + b * cos[i];
        }
    }
}
