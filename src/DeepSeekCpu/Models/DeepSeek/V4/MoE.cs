using DeepSeekCpu.Kernels;
using DeepSeekCpu.Weights;
using System.Numerics.Tensors;

namespace DeepSeekCpu.Models.DeepSeek.V4;

/// <summary>
/// DeepSeek-V4's router (inference/model.py class Gate): scores = sqrt(softplus(W x)) (scoring_func sqrtsoftplus;
/// sigmoid and softmax as in V3), a bias that only selects; the first num_hash_layers layers instead take the experts
/// a fixed table assigns to the token id (tid2eid). Weights are the chosen experts' unbiased scores, renormalised to
/// sum 1 (except softmax) and times routed_scaling_factor.
/// </summary>
internal sealed class Gate
{
    private readonly WeightMatrix _weight;            // [experts, dim]
    private readonly float[]? _bias;                  // [experts] score-routed layers
    private readonly int[]? _tid2eid;                 // [vocab, k] hash-routed layers
    private readonly string _scoreFunc;
    private readonly float _routeScale;
    private readonly int _experts;
    public int TopK { get; }

    public Gate(ModelWeights w, ModelConfig c, int layer, string p)
    {
        _experts = c.NRoutedExperts; TopK = c.NumExpertsPerTok; _scoreFunc = c.ScoringFunc; _routeScale = (float)c.RoutedScalingFactor;
        if (_scoreFunc is not ("sqrtsoftplus" or "sigmoid" or "softmax"))
            throw new ModelFormatException($"{w.Source}: scoring_func \"{_scoreFunc}\" is not supported (expected sqrtsoftplus, sigmoid or softmax)");
        _weight = w.Matrix(p + "weight", _experts, c.HiddenSize);
        if (layer < c.V4!.NumHashLayers) _tid2eid = ReadTable(w, p + "tid2eid", c.VocabSize, TopK, _experts);
        else _bias = w.Vector(p + "bias", _experts);
    }

    /// <summary>tid2eid [vocab, k] (I32 or I64) with every id a valid expert.</summary>
    private static unsafe int[] ReadTable(ModelWeights w, string name, int vocab, int k, int experts)
    {
        var t = w.Get(name);
        if (t.Rank != 2 || t.Shape[0] != vocab || t.Shape[1] != k || t.Type is not (DType.I32 or DType.I64))
            throw new ModelFormatException($"{t.File}: tensor {name} is {t.Type} {t.ShapeText}, expected I32 or I64 [{vocab}, {k}]");
        var table = new int[vocab * k];
        for (int i = 0; i < table.Length; i++)
        {
            long e = t.Type == DType.I64 ? ((long*)t.Data)[i] : ((int*)t.Data)[i];
            if ((ulong)e >= (ulong)experts) throw new ModelFormatException($"{t.File}: tensor {name} routes token {i / k} to expert {e}, expected 0..{experts - 1}");
            table[i] = (int)e;
        }
        return table;
    }

    /// <summary>chosen [n, k] expert ids and their weights [n, k] for the rows x [n, dim] of tokens [n].</summary>
    public void Forward(V4Pass p, ReadOnlySpan<float> x, ReadOnlySpan<int> tokens, Span<int> chosen, Span<float> weights, int n)
    {
        int E = _experts, k = TopK;
        var scores = p.RouterLogits.AsSpan(0, n * E);                // [n, experts]
        MatMul.Multiply(_weight, x, scores, n);
        var select = p.RouterSelect.AsSpan(0, E);                    // [experts] scores + bias
        for (int t = 0; t < n; t++)
        {
            var s = scores.Slice(t * E, E);
            switch (_scoreFunc)
            {
                case "softmax": Ops.Softmax(s); break;
                case "sigmoid": TensorPrimitives.Sigmoid(s, s); break;
                default:                                             // sqrt(softplus(x)); torch's softplus is x itself above 20
                    for (int e = 0; e < E; e++) s[e] = MathF.Sqrt(s[e] > 20 ? s[e] : MathF.Log(1 + MathF.Exp(s[e])));
                    break;
            }
            var ids = chosen.Slice(t * k, k);
            if (_tid2eid != null) _tid2eid.AsSpan(tokens[t] * k, k).CopyTo(ids);
            else
            {
                TensorPrimitives.Add(s, _bias, select);              // the bias selects, never weighs
                Ops.TopK(select, ids);
            }
            var wt = weights.Slice(t * k, k);
            for (int i = 0; i < k; i++) wt[i] = s[ids[i]];
            if (_scoreFunc != "softmax") TensorPrimitives.Multiply(wt, 1f / TensorPrimitives.Sum(wt), wt);
            TensorPrimitives.Multiply(wt, _routeScale, wt);
        }
    }
}

/// <summary>
/// One SwiGLU expert with DeepSeek-V4's clamp (inference/model.py class Expert): w2(silu(min(w1 x, limit)) ·
/// clamp(w3 x, −limit, limit)), optionally weighted per row before w2. Routed experts are FP4, the shared one BF16/FP8.
/// </summary>
internal sealed class Expert(WeightMatrix w1, WeightMatrix w2, WeightMatrix w3, float swigluLimit)
{
    public int Inter => w1.Rows;
    public WeightMatrix[] Matrices => [w1, w2, w3];

    /// <summary>y [m, dim] = expert(x [m, dim]) with hidden rows scaled by rowScale [m] (null: 1).</summary>
    public void Forward(V4Pass p, ReadOnlySpan<float> x, Span<float> y, int m, ReadOnlySpan<float> rowScale)
    {
        int I = Inter;
        var gate = p.Gate.AsSpan(0, m * I);                          // [m, inter]
        var up = p.Up.AsSpan(0, m * I);                              // [m, inter]
        MatMul.Multiply(w1, x, gate, m);
        MatMul.Multiply(w3, x, up, m);
        if (swigluLimit > 0)
        {
            TensorPrimitives.Clamp(up, -swigluLimit, swigluLimit, up);
            TensorPrimitives.Min(gate, swigluLimit, gate);
        }
        Ops.SwiGlu(gate, up);
        if (!rowScale.IsEmpty)
            for (int r = 0; r < m; r++) TensorPrimitives.Multiply(gate.Slice(r * I, I), rowScale[r], gate.Slice(r * I, I));
        MatMul.Multiply(w2, gate, y[..(m * w2.Rows)], m);
    }
}

/// <summary>
/// DeepSeek-V4's MoE (inference/model.py class MoE): y = Σ_chosen weight_e · Expert_e(x) + SharedExpert(x); each
/// chosen expert runs once over the rows that chose it, experts nobody chose are never read.
/// </summary>
internal sealed class MoE
{
    private readonly Gate _gate;
    private readonly Expert[] _experts;
    private readonly Expert _shared;
    private readonly int _dim;

    /// <summary>Bytes of all routed experts' matrices (a token reads k of them).</summary>
    public long ExpertBytes { get; }

    /// <summary>w1, w2, w3 of every routed expert.</summary>
    public IEnumerable<WeightMatrix> ExpertMatrices => _experts.SelectMany(e => e.Matrices);

    public MoE(ModelWeights w, ModelConfig c, int layer)
    {
        string p = $"layers.{layer}.ffn.";
        _dim = c.HiddenSize;
        int D = _dim, I = c.MoeIntermediateSize;
        float limit = (float)c.V4!.SwigluLimit;
        if (c.NSharedExperts != 1) throw new ModelFormatException($"{w.Source}: n_shared_experts = {c.NSharedExperts}, DeepSeek-V4 has exactly 1");
        _gate = new Gate(w, c, layer, p + "gate.");
        _experts = new Expert[c.NRoutedExperts];
        for (int e = 0; e < _experts.Length; e++)
        {
            string q = $"{p}experts.{e}.";
            var m = new[] { ("w1", I, D), ("w2", D, I), ("w3", I, D) }.Select(x => ExpertMatrix(w, q + x.Item1, x.Item2, x.Item3)).ToArray();
            ExpertBytes += m.Sum(x => x.ByteLength);
            _experts[e] = new Expert(m[0], m[1], m[2], limit);
        }
        _shared = new Expert(V4Weights.Linear(w, p + "shared_experts.w1", I, D), V4Weights.Linear(w, p + "shared_experts.w2", D, I),
            V4Weights.Linear(w, p + "shared_experts.w3", I, D), limit);
    }

    /// <summary>FP4 (I8 codes + "….scale" E8M0: kept as MXFP4, V4Weights.Fp4Expert) or any type the loader maps.</summary>
    private static WeightMatrix ExpertMatrix(ModelWeights w, string prefix, int rows, int cols)
    {
        var t = w.Get(prefix + ".weight");
        if (t.Type != DType.I8)
        {
            // a GGUF deepseek4 file's experts are MXFP4 (V4Gguf): the same numbers, computed the same way
            var m0 = V4Weights.Linear(w, prefix, rows, cols);
            return m0.Type == DType.MXFP4 ? m0.WithFloatActivations() : m0;
        }
        var scales = w.TryGet(prefix + ".scale") ?? throw new ModelFormatException($"{t.File}: FP4 tensor {t.Name} has no {prefix}.scale");
        var m = V4Weights.Fp4Expert(t, scales, rows, cols);
        w.AddDerived(t.Name, m.ByteLength, m.Owner);
        return m;
    }

    public void Forward(V4Pass p, ReadOnlySpan<float> x, ReadOnlySpan<int> tokens, Span<float> y, int n)
    {
        int k = _gate.TopK, D = _dim;
        var chosen = p.Chosen.AsSpan(0, n * k);                      // [n, k]
        var weights = p.ChosenWeights.AsSpan(0, n * k);              // [n, k]
        _gate.Forward(p, x, tokens, chosen, weights, n);
        y = y[..(n * D)];
        _shared.Forward(p, x, y, n, default);
        var xs = p.ExpertIn.AsSpan(); var outs = p.ExpertOut.AsSpan(); var scale = p.RowScale.AsSpan();
        var rowsOf = p.ExpertRows.AsSpan(0, n * k);                  // the (row, slot) pairs that chose one expert
        for (int e = 0; e < _experts.Length; e++)
        {
            // the rows that chose e, gathered; each output row added back with the row's weight already applied
            int m = 0;
            for (int i = 0; i < n * k; i++) if (chosen[i] == e) rowsOf[m++] = i;
            if (m == 0) continue;
            for (int j = 0; j < m; j++) { x.Slice(rowsOf[j] / k * D, D).CopyTo(xs.Slice(j * D, D)); scale[j] = weights[rowsOf[j]]; }
            _experts[e].Forward(p, xs[..(m * D)], outs, m, scale[..m]);
            for (int j = 0; j < m; j++)
            {
                var dst = y.Slice(rowsOf[j] / k * D, D);
                TensorPrimitives.Add(dst, outs.Slice(j * D, D), dst);
            }
        }
    }
}
