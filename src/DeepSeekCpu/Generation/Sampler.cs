using System.Numerics.Tensors;

namespace DeepSeekCpu.Generation;

/// <summary>
/// Picks tokens from logits. Same seed and same logits give the same tokens (its own xorshift generator,
/// independent of .NET's Random implementation). Reuses its buffers: no allocation per token.
/// </summary>
internal sealed partial class Sampler
{
    private readonly SamplingOptions _o;
    private ulong _state;
    private int[] _idx = [];
    private float[] _p = [];
    private float[] _keys = [];
    private int[] _tmp = [];
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
        Penalize(logits, history);
        return Pick(logits);
    }

    /// <summary>Applies the penalties and biases to <paramref name="logits"/> (once per step: <see cref="Pick"/> may then
    /// run more than once, e.g. again after a grammar's mask).</summary>
    public void Penalize(Span<float> logits, ReadOnlySpan<int> history)
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
        ApplyOpenAiPenalties(logits, history);
    }

    /// <summary>Draws a token from logits already penalised (temperature, min-p, top-k, top-p, seeded draw).</summary>
    public int Pick(Span<float> logits)
    {
        if (_o.Temperature == 0) return TensorPrimitives.IndexOfMax(logits);

        int n = logits.Length;
        if (_idx.Length < n) { _idx = new int[n]; _p = new float[n]; _tmp = new int[n]; }
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
        m = SelectSet(p, m);
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
    /// Moves the top-k / top-p set to the front of the m candidates in _idx and returns its size. Sorting every
    /// candidate (20 ms a token for a 150K vocabulary with a flat distribution) is not needed: the set is "every
    /// probability above a cut, plus the largest ones at the cut", found by radix selection on the float bits (for
    /// p ≥ 0 they order as the values do), 8 bits at a time from the top. At each digit, the candidates of the
    /// current group are counted and weighed by digit; walking down, the digit where the count reaches k or the mass
    /// reaches top-p holds the cut; candidates above it are in the set (in any order: drawing from a set does not need
    /// one), those below are out, and the boundary digit's candidates are the next group. The last, small group is
    /// sorted to place the exact cut, as llama.cpp's sorted top-k / top-p do.
    /// </summary>
    private int SelectSet(Span<float> p, int m)
    {
        int k = _o.TopK > 0 ? Math.Min(_o.TopK, m) : m;
        float topP = _o.TopP;
        if (k == m && topP >= 1) return m;
        Span<float> mass = stackalloc float[256];
        Span<int> count = stackalloc int[256];
        int kept = 0, lo = 0, hi = m;          // _idx: [0, kept) in the set, [lo, hi) the undecided group
        float cum = 0;
        for (int shift = 23; shift >= 0 && hi - lo > 64; shift -= 8)
        {
            mass.Clear(); count.Clear();
            for (int i = lo; i < hi; i++)
            {
                int d = Digit(p[_idx[i]], shift);
                mass[d] += p[_idx[i]]; count[d]++;
            }
            int cut = 0;
            for (int d = 255; d >= 0; d--)
            {
                if (kept + count[d] >= k || cum + mass[d] >= topP) { cut = d; break; }
                kept += count[d]; cum += mass[d];
            }
            // [lo, hi) → set (digit > cut) packed after the earlier set members, then the cut digit's group
            // (one pass: a write at set ≤ i never clobbers an unread candidate)
            int set = kept - SumAbove(count, cut), boundary = 0;
            for (int i = lo; i < hi; i++)
            {
                int id = _idx[i], d = Digit(p[id], shift);
                if (d > cut) _idx[set++] = id;
                else if (d == cut) _tmp[boundary++] = id;
            }
            _tmp.AsSpan(0, boundary).CopyTo(_idx.AsSpan(set));
            lo = set; hi = set + boundary;
        }
        // the last group, sorted by descending probability, up to the exact cut
        if (_keys.Length < hi - lo) _keys = new float[Math.Max(hi - lo, 64)];
        var keys = _keys.AsSpan(0, hi - lo);
        var group = _idx.AsSpan(lo, hi - lo);
        for (int i = 0; i < group.Length; i++) keys[i] = -p[group[i]];
        keys.Sort(group);
        int end = lo;
        while (end < hi && kept < k && cum < topP) { cum += p[_idx[end]]; kept++; end++; }
        return end;
    }

    private static int Digit(float v, int shift) => (int)(BitConverter.SingleToUInt32Bits(v) >> shift) & 0xFF;

    private static int SumAbove(Span<int> count, int cut)
    {
        int s = 0;
        for (int d = cut + 1; d < 256; d++) s += count[d];
        return s;
    }

    private float NextFloat()
    {
        // xorshift64* (Vigna 2016); top 24 bits → [0, 1)
        _state ^= _state >> 12; _state ^= _state << 25; _state ^= _state >> 27;
        ulong x = _state * 0x2545F4914F6CDD1DUL;
        return (x >> 40) / 16777216f;
    }
}
