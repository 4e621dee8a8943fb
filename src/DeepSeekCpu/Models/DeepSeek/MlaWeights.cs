using System.Runtime.InteropServices;
using DeepSeekCpu.Kernels;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Models.DeepSeek;

/// <summary>
/// One MLA layer's weights, prepared once at load for both ways of computing attention (model.py MLA.__init__ plus
/// the re-layout its "absorb" path does with einsum views of wkv_b). The graph (<see cref="MLA"/>) reads only these
/// matrices and never names a storage format.
/// </summary>
internal sealed unsafe class MlaWeights
{
    // q: either Wq [heads*(nope+rope), dim], or WqA [q_lora, dim] → QNorm → WqB [heads*(nope+rope), q_lora]
    public readonly WeightMatrix? Wq, WqA, WqB;
    public readonly float[]? QNorm;                  // [q_lora]
    public readonly WeightMatrix WkvA;               // [kvl + rope, dim]  (HF kv_a_proj_with_mqa)
    public readonly float[] KvNorm;                  // [kvl]
    /// <summary>
    /// kv_b_proj [heads*(nope+v), kvl] (per head the nope rows are W_uk_h, the v rows W_uv_h): the naive path's
    /// expansion, in its stored type (no float32 copy: at V3 scale that would be 4 GB).
    /// </summary>
    public readonly WeightMatrix WkvB;
    /// <summary>W_ukᵀ_h [kvl, nope] per head: turns q_nope into the latent query (absorbed path).</summary>
    public readonly WeightMatrix[] WukT;
    /// <summary>W_uv_h [v, kvl] per head: turns the latent output into the head's values (absorbed path).</summary>
    public readonly WeightMatrix[] Wuv;
    public readonly WeightMatrix Wo;                 // [dim, heads*v]

    private readonly int _heads, _nope, _v, _kvl;

    public MlaWeights(ModelWeights w, ModelConfig c, string p)
    {
        int dim = c.HiddenSize, qkHead = c.QkNopeHeadDim + c.QkRopeHeadDim;
        _heads = c.NumHeads; _nope = c.QkNopeHeadDim; _v = c.VHeadDim; _kvl = c.KvLoraRank;
        if (c.QLoraRank is int qr && qr > 0)
        {
            WqA = w.Matrix(p + "q_a_proj.weight", qr, dim);
            QNorm = w.Vector(p + "q_a_layernorm.weight", qr);
            WqB = w.Matrix(p + "q_b_proj.weight", _heads * qkHead, qr);
        }
        else Wq = w.Matrix(p + "q_proj.weight", _heads * qkHead, dim);
        WkvA = w.Matrix(p + "kv_a_proj_with_mqa.weight", _kvl + c.QkRopeHeadDim, dim);
        KvNorm = w.Vector(p + "kv_a_layernorm.weight", _kvl);
        Wo = w.Matrix(p + "o_proj.weight", dim, _heads * _v);

        // kv_b_proj (heads*(nope+v) x kvl; 64 MiB per layer as float32 for V3, 4 GB over 61 layers) is used as stored
        // by the naive path; the absorbed path reads it per head both ways (W_ukᵀ and W_uv), packed below.
        WukT = new WeightMatrix[_heads]; Wuv = new WeightMatrix[_heads];
        if (w.Contains(p + "kv_b_proj.weight"))
        {
            WkvB = w.RawMatrix(p + "kv_b_proj.weight", _heads * (_nope + _v), _kvl);
            PackAbsorbed(w, WkvB);
        }
        else WkvB = LoadSplitKvB(w, p);
    }

    /// <summary>Rows first..first+count-1 of <paramref name="m"/> as float32 [count, cols].</summary>
    private static float[] RowsOf(WeightMatrix m, int first, int count)
    {
        var r = new float[(long)count * m.Cols];
        for (int i = 0; i < count; i++) Dequantize.RowOf(m, first + i, r.AsSpan(i * m.Cols, m.Cols));
        return r;
    }

    /// <summary>
    /// Per-head W_ukᵀ and W_uv from the combined kv_b_proj [heads * (nope + v), kvl]. W_uv_h is rows
    /// h*(nope+v)+nope .. +v of it, used in place. W_ukᵀ_h needs a transpose, packed once: float formats keep their
    /// type (F32 and BF16 fixtures stay exact), GGUF quants become Q8_0 (an 8-bit copy of the dequantized values, so
    /// decoding reads 1.06 bytes per weight instead of the 4 of float32). FP8 see <see cref="PackAbsorbedFp8"/>.
    /// </summary>
    private void PackAbsorbed(ModelWeights w, WeightMatrix kvB)
    {
        if (kvB.Type == DType.F8_E4M3 && _nope % WeightMatrix.Fp8BlockSize == 0 && _v % WeightMatrix.Fp8BlockSize == 0)
        {
            PackAbsorbedFp8(w, kvB);
            return;
        }
        DType packed = kvB.Type switch
        {
            DType.F32 or DType.F16 or DType.BF16 => kvB.Type,
            DType.F8_E4M3 => DType.F32,      // head slices not on 128-blocks: float32, exact (model.py's BF16 rounding not added)
            _ => _nope % DType.Q8_0.BlockSize() == 0 ? DType.Q8_0 : DType.F32,   // rows of nope values: whole Q8_0 blocks only
        };
        var t = new float[_kvl * _nope];                                     // [kvl, nope] W_ukᵀ_h
        var uk = Pack(w, kvB.Name + "(uk^T)", packed, _heads * _kvl, _nope, h =>
        {
            var ukh = RowsOf(kvB, h * (_nope + _v), _nope);                  // [nope, kvl] W_uk_h
            for (int d = 0; d < _nope; d++)
                for (int c = 0; c < _kvl; c++)
                    t[c * _nope + d] = ukh[d * _kvl + c];
            return t;
        });
        for (int h = 0; h < _heads; h++)
            WukT[h] = new WeightMatrix($"{uk.Name}[{h}]", packed, _kvl, _nope, uk.Row(h * _kvl));

        if (kvB.Type == DType.F8_E4M3)
        {
            var uv = Pack(w, kvB.Name + "(uv)", DType.F32, _heads * _v, _kvl,
                h => RowsOf(kvB, h * (_nope + _v) + _nope, _v));
            for (int h = 0; h < _heads; h++)
                Wuv[h] = new WeightMatrix($"{uv.Name}[{h}]", DType.F32, _v, _kvl, uv.Row(h * _v));
        }
        else
        {
            for (int h = 0; h < _heads; h++)
                Wuv[h] = new WeightMatrix($"{kvB.Name}(uv)[{h}]", kvB.Type, _v, _kvl, kvB.Row(h * (_nope + _v) + _nope));
            w.AddDerived(kvB.Name + "(uv)", _heads * _v * kvB.RowBytes, null);
        }
    }

    /// <summary>
    /// FP8 kv_b_proj whose per-head slices lie on the 128x128 scale blocks (nope and v multiples of 128, as in V3/R1:
    /// nope = v = 128, kvl = 512): both absorbed matrices stay FP8, exactly, at 1 byte per weight (a float32 copy is
    /// 4 GB over V3's 61 layers). W_uv_h is a view of its rows with the scale rows that cover them; W_ukᵀ_h is the
    /// byte transpose of W_uk_h [nope, kvl] with the scale grid transposed likewise: value(c, d) = fp8(d, c) ·
    /// scale[d/128, c/128] before and after, so no code or scale changes.
    /// </summary>
    private void PackAbsorbedFp8(ModelWeights w, WeightMatrix kvB)
    {
        const int B = WeightMatrix.Fp8BlockSize;
        int kvlBlocks = (_kvl + B - 1) / B, nopeBlocks = _nope / B, headRows = _nope + _v;
        long codeBytes = (long)_heads * _kvl * _nope, scaleCount = (long)_heads * kvlBlocks * nopeBlocks;
        var codes = new NativeBuffer(codeBytes);                                         // [heads, kvl, nope] fp8
        var scales = new NativeBuffer(scaleCount * sizeof(float));                       // [heads, kvlBlocks, nopeBlocks]
        w.AddDerived(kvB.Name + "(uk^T)", codeBytes + scaleCount * sizeof(float), codes);
        w.AddResident(0, scales);
        float* sT = (float*)scales.Pointer;
        for (int h = 0; h < _heads; h++)
        {
            byte* t = codes.Pointer + (long)h * _kvl * _nope;
            for (int d = 0; d < _nope; d++)
            {
                byte* src = kvB.Row(h * headRows + d);                                   // W_uk_h row d: [kvl]
                for (int c = 0; c < _kvl; c++) t[(long)c * _nope + d] = src[c];
            }
            int blockRow0 = h * headRows / B;                                            // first scale row of head h
            float* hs = sT + (long)h * kvlBlocks * nopeBlocks;
            for (int i = 0; i < kvlBlocks; i++)
                for (int j = 0; j < nopeBlocks; j++)
                    hs[i * nopeBlocks + j] = kvB.BlockScales[(long)(blockRow0 + j) * kvB.ScaleCols + i];
            WukT[h] = new WeightMatrix($"{kvB.Name}(uk^T)[{h}]", DType.F8_E4M3, _kvl, _nope, t, hs);
            int uvRow = h * headRows + _nope;                                            // a multiple of 128
            Wuv[h] = new WeightMatrix($"{kvB.Name}(uv)[{h}]", DType.F8_E4M3, _v, _kvl, kvB.Row(uvRow),
                kvB.BlockScales + (long)(uvRow / B) * kvB.ScaleCols);
        }
        w.AddDerived(kvB.Name + "(uv)", _heads * _v * kvB.RowBytes, null);
    }

    /// <summary>
    /// A packed [heads * rowsPerHead, cols] matrix of <paramref name="type"/> whose head h rows come from
    /// <paramref name="headRows"/>(h) ([rowsPerHead, cols] float32); owned and counted by <paramref name="w"/>.
    /// </summary>
    private WeightMatrix Pack(ModelWeights w, string name, DType type, int rows, int cols, Func<int, float[]> headRows, bool perToken = true)
    {
        long rowBytes = type.ByteCount(cols);
        var buffer = new NativeBuffer(rowBytes * rows);
        if (perToken) w.AddDerived(name, rowBytes * rows, buffer);
        else w.AddResident(rowBytes * rows, buffer);
        int perHead = rows / _heads;
        for (int h = 0; h < _heads; h++)
        {
            var src = headRows(h);
            for (int r = 0; r < perHead; r++)
                Quantize.Row(type, src.AsSpan(r * cols, cols),
                    new Span<byte>(buffer.Pointer + (long)(h * perHead + r) * rowBytes, checked((int)rowBytes)));
        }
        return new WeightMatrix(name, type, rows, cols, buffer.Pointer, null, buffer);
    }

    /// <summary>
    /// The split form's two tensors, shapes checked, as matrices: k_b [heads*kvl, nope] (W_ukᵀ per head) and v_b
    /// [heads*v, kvl] (W_uv per head). Also read by the TorchSharp backend.
    /// </summary>
    internal static unsafe (WeightMatrix kb, WeightMatrix vb) SplitKvB(ModelWeights w, string p, int heads, int kvl, int nope, int v)
    {
        var kb = w.Get(p + "k_b_proj.weight");
        var vb = w.Get(p + "v_b_proj.weight");
        if (kb.ElementCount != (long)heads * kvl * nope || kb.Shape[^1] != nope)
            throw new ModelFormatException($"{kb.File}: tensor {kb.Name} has shape {kb.ShapeText}, expected [{heads}, {kvl}, {nope}]");
        if (vb.ElementCount != (long)heads * v * kvl || vb.Shape[^1] != kvl)
            throw new ModelFormatException($"{vb.File}: tensor {vb.Name} has shape {vb.ShapeText}, expected [{heads}, {v}, {kvl}]");
        return (new WeightMatrix(kb.Name, kb.Type, heads * kvl, nope, kb.Data),      // [heads, kvl, nope]
                new WeightMatrix(vb.Name, vb.Type, heads * v, kvl, vb.Data));        // [heads, v, kvl]
    }

    /// <summary>
    /// GGUF files from newer llama.cpp converters split kv_b_proj into k_b_proj [heads, kvl, nope] (W_uk transposed per
    /// head) and v_b_proj [heads, v, kvl] (W_uv); DeepSeekGguf passes them on under these names.
    /// </summary>
    private WeightMatrix LoadSplitKvB(ModelWeights w, string p)
    {
        var (kbm, vbm) = SplitKvB(w, p, _heads, _kvl, _nope, _v);
        var (kb, vb) = (kbm, vbm);
        for (int h = 0; h < _heads; h++)
        {
            // k_b is already W_ukᵀ per head and v_b W_uv: the absorbed path uses them in place
            WukT[h] = new WeightMatrix($"{kb.Name}[{h}]", kb.Type, _kvl, _nope, kb.Data + h * kb.Type.ByteCount(_kvl * _nope));
            Wuv[h] = new WeightMatrix($"{vb.Name}[{h}]", vb.Type, _v, _kvl, vb.Data + h * vb.Type.ByteCount(_v * _kvl));
        }
        w.AddDerived(kb.Name, kb.ByteLength, null);
        w.AddDerived(vb.Name, vb.ByteLength, null);

        // The naive path's combined kv_b [heads*(nope+v), kvl], packed in k_b's type if it is a float type (exact),
        // else Q8_0 (1.06 bytes per weight; used only for prompt chunks).
        DType packed = kb.Type is DType.F32 or DType.F16 or DType.BF16 ? kb.Type : _kvl % DType.Q8_0.BlockSize() == 0 ? DType.Q8_0 : DType.F32;
        var rows = new float[(_nope + _v) * _kvl];                                      // [nope+v, kvl] of head h
        return Pack(w, p + "kv_b_proj.weight(k_b;v_b)", packed, _heads * (_nope + _v), _kvl, h =>
        {
            var kbh = RowsOf(kbm, h * _kvl, _kvl);                                      // [kvl, nope]
            for (int d = 0; d < _nope; d++)
                for (int c = 0; c < _kvl; c++)
                    rows[d * _kvl + c] = kbh[c * _nope + d];
            RowsOf(vbm, h * _v, _v).CopyTo(rows, _nope * _kvl);
            return rows;
        }, perToken: false);
    }
}
