using System.Numerics.Tensors;

namespace DeepSeekCpu.Generation;

/// <summary>
/// Picks tokens from logits. Same seed and same logits give the same tokens (its own xorshift generator,
/// independent of .NET's Random implementation). Reuses its buffers: no allocation per token.
/// </summary>
public sealed class Sampler
{
    private readonly SamplingOptions _o;
    private ulong _state;
    private int[] _idx = [];
    private float[] _p = [];
    private float[] _keys = [];
    private int[] _penalised = [];
    private int _stamp;

    public Sampler(SamplingOptions options)
    {
        options.Validate();
        _o = options;
        _state = options.Seed ?? (ulong)Random.Shared.NextInt64();
        if (_state == 0) _state = 0x9E3779B97F4A7C15;
    }

    /// <summary>Chooses the next token. <paramref name="logits"/> may be modified (penalties).</summary>
    public int Sample(Span<float> logits, ReadOnlySpan<int> history)
    {
        if (_o.RepetitionPenalty != 1f)
        {
            // Once per distinct token in the window (as llama.cpp does), not once per occurrence.
            if (_penalised.Length < logits.Length) _penalised = new int[logits.Length];
            _stamp++;
            int from = Math.Max(0, history.Length - _o.RepetitionWindow);
            foreach (int id in history[from..])
                if ((uint)id < (uint)logits.Length && _penalised[id] != _stamp)
                {
                    _penalised[id] = _stamp;
                    logits[id] = logits[id] > 0 ? logits[id] / _o.RepetitionPenalty : logits[id] * _o.RepetitionPenalty;
                }
        }
        if (_o.Temperature == 0) return TensorPrimitives.IndexOfMax(logits);

        int n = logits.Length;
        if (_idx.Length < n) { _idx = new int[n]; _p = new float[n]; }
        var p = _p.AsSpan(0, n);
        // Softmax at the temperature; filters below act on these probabilities.
        TensorPrimitives.Multiply(logits, 1f / _o.Temperature, p);
        Kernels.Ops.Softmax(p);

        // Candidates sorted by probability. Only the ones that can survive top-k/top-p matter, so first drop the
        // long tail cheaply: anything below (max * 1e-6) can neither pass min-p meaningfully nor be drawn.
        float max = TensorPrimitives.Max(p);
        int m = 0;
        float floor = Math.Max(max * 1e-6f, max * _o.MinP);
        for (int i = 0; i < n; i++) if (p[i] >= floor) _idx[m++] = i;
        if (m == 0) return TensorPrimitives.IndexOfMax(logits); // NaN logits: nothing comparable survived
        m = NarrowByExponent(p, m);
        var idx = _idx.AsSpan(0, m);
        // Sort by descending probability on float keys (a primitive sort, several times faster than a comparer).
        if (_keys.Length < m) _keys = new float[Math.Max(m, _idx.Length)];
        var keys = _keys.AsSpan(0, m);
        for (int i = 0; i < m; i++) keys[i] = -p[idx[i]];
        keys.Sort(idx);
        if (_o.TopK > 0 && m > _o.TopK) m = _o.TopK;
        if (_o.TopP < 1)
        {
            float cum = 0; int keep = 0;
            while (keep < m) { cum += p[_idx[keep]]; keep++; if (cum >= _o.TopP) break; }
            m = keep;
        }
        float total = 0;
        for (int i = 0; i < m; i++) total += p[_idx[i]];
        float r = NextFloat() * total;
        for (int i = 0; i < m; i++)
        {
            r -= p[_idx[i]];
            if (r <= 0) return _idx[i];
        }
        return _idx[m - 1];
    }

    /// <summary>
    /// Drops candidates that cannot be in the top-k or top-p set before sorting (with a 150K vocabulary and a flat
    /// distribution, sorting every candidate took 20 ms a token). Candidates are bucketed by the binary exponent of
    /// their probability; walking down from the largest bucket, the one where the count reaches k (top-k) or the mass
    /// reaches top-p ends the set, so everything in lower buckets goes. The exact cut is made after sorting.
    /// </summary>
    private int NarrowByExponent(Span<float> p, int m)
    {
        bool topK = _o.TopK > 0 && m > _o.TopK, topP = _o.TopP < 1;
        if (!topK && !topP) return m;
        Span<float> mass = stackalloc float[256];
        Span<int> count = stackalloc int[256];
        mass.Clear(); count.Clear();
        for (int i = 0; i < m; i++)
        {
            float v = p[_idx[i]];
            int e = (int)(BitConverter.SingleToUInt32Bits(v) >> 23) & 0xFF;
            mass[e] += v; count[e]++;
        }
        int lowest = 0;
        float cum = 0; int seen = 0;
        for (int e = 255; e >= 0; e--)
        {
            cum += mass[e]; seen += count[e];
            if ((topK && seen >= _o.TopK) || (topP && cum >= _o.TopP)) { lowest = e; break; }
        }
        if (lowest == 0) return m;
        int kept = 0;
        for (int i = 0; i < m; i++)
        {
            int id = _idx[i];
            if ((int)(BitConverter.SingleToUInt32Bits(p[id]) >> 23 & 0xFF) >= lowest) _idx[kept++] = id;
        }
        return kept;
    }

    private float NextFloat()
    {
        // xorshift64* (Vigna 2016); top 24 bits → [0, 1)
        _state ^= _state >> 12; _state ^= _state << 25; _state ^= _state >> 27;
        ulong x = _state * 0x2545F4914F6CDD1DUL;
        return (x >> 40) / 16777216f;
    }
}
