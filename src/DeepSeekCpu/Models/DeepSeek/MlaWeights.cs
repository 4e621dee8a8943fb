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
    /// <summary>kv_b_proj as float32 [heads*(nope+v), kvl] (per head the nope rows are W_uk_h, the v rows W_uv_h): the naive path's expansion.</summary>
    public readonly WeightMatrix WkvB;
    /// <summary>W_ukᵀ_h [kvl, nope] per head: turns q_nope into the latent query (absorbed path).</summary>
    public readonly WeightMatrix[] WukT;
    /// <summary>W_uv_h [v, kvl] per head: turns the latent output into the head's values (absorbed path).</summary>
    public readonly WeightMatrix[] Wuv;
    public readonly WeightMatrix Wo;                 // [dim, heads*v]

    private readonly int _heads, _nope, _v, _kvl;
    private readonly float[] _wkvB;                  // WkvB's values, pinned (WkvB views them)

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

        // kv_b_proj is small (heads*(nope+v) x kvl; 64 MiB as float32 for V3) and the absorbed path reads it per
        // head both ways (W_ukᵀ and W_uv), so it is dequantized once here, whatever the stored format.
        _wkvB = GC.AllocateUninitializedArray<float>(_heads * (_nope + _v) * _kvl, pinned: true);
        WukT = new WeightMatrix[_heads]; Wuv = new WeightMatrix[_heads];
        if (w.Contains(p + "kv_b_proj.weight"))
        {
            var kvB = w.RawMatrix(p + "kv_b_proj.weight", _heads * (_nope + _v), _kvl);
            Dequantize.Matrix(kvB).CopyTo(_wkvB, 0);
            PackAbsorbed(w, kvB);
        }
        else LoadSplitKvB(w, p);
        WkvB = new WeightMatrix(p + "kv_b_proj.weight(f32)", DType.F32, _heads * (_nope + _v), _kvl,
            (byte*)Marshal.UnsafeAddrOfPinnedArrayElement(_wkvB, 0));
    }

    /// <summary>
    /// Per-head W_ukᵀ and W_uv from the combined kv_b_proj [heads * (nope + v), kvl]. W_uv_h is rows
    /// h*(nope+v)+nope .. +v of it, used in place (FP8 excepted: its 128-row scale blocks would need re-slicing, so it is
    /// packed as float32). W_ukᵀ_h needs a transpose, packed once: float formats keep their type (F32 and BF16 fixtures
    /// stay exact), FP8 becomes float32 (exact; model.py dequantizes it to BF16 here, a rounding we do not add) and
    /// GGUF quants Q8_0 (an 8-bit copy of the dequantized values, so decoding reads 1.06 bytes per weight instead of
    /// the 4 of float32).
    /// </summary>
    private void PackAbsorbed(ModelWeights w, WeightMatrix kvB)
    {
        DType packed = kvB.Type switch
        {
            DType.F32 or DType.F16 or DType.BF16 => kvB.Type,
            DType.F8_E4M3 => DType.F32,
            _ => DType.Q8_0,
        };
        var t = new float[_kvl * _nope];                                     // [kvl, nope] W_ukᵀ_h
        var uk = Pack(w, kvB.Name + "(uk^T)", packed, _heads * _kvl, _nope, h =>
        {
            int baseRow = h * (_nope + _v);
            for (int d = 0; d < _nope; d++)
                for (int c = 0; c < _kvl; c++)
                    t[c * _nope + d] = _wkvB[(baseRow + d) * _kvl + c];
            return t;
        });
        for (int h = 0; h < _heads; h++)
            WukT[h] = new WeightMatrix($"{uk.Name}[{h}]", packed, _kvl, _nope, uk.Row(h * _kvl));

        if (kvB.Type == DType.F8_E4M3)
        {
            var uv = Pack(w, kvB.Name + "(uv)", DType.F32, _heads * _v, _kvl,
                h => _wkvB.AsSpan((h * (_nope + _v) + _nope) * _kvl, _v * _kvl).ToArray());
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
    /// A packed [heads * rowsPerHead, cols] matrix of <paramref name="type"/> whose head h rows come from
    /// <paramref name="headRows"/>(h) ([rowsPerHead, cols] float32); owned and counted by <paramref name="w"/>.
    /// </summary>
    private WeightMatrix Pack(ModelWeights w, string name, DType type, int rows, int cols, Func<int, float[]> headRows)
    {
        long rowBytes = type.ByteCount(cols);
        var buffer = new NativeBuffer(rowBytes * rows);
        w.AddDerived(name, rowBytes * rows, buffer);
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
    /// GGUF files from newer llama.cpp converters split kv_b_proj into k_b_proj [heads, kvl, nope] (W_uk transposed per
    /// head) and v_b_proj [heads, v, kvl] (W_uv); DeepSeekGguf passes them on under these names.
    /// </summary>
    private void LoadSplitKvB(ModelWeights w, string p)
    {
        var kb = w.Get(p + "k_b_proj.weight");
        var vb = w.Get(p + "v_b_proj.weight");
        if (kb.ElementCount != (long)_heads * _kvl * _nope || kb.Shape[^1] != _nope)
            throw new ModelFormatException($"{kb.File}: tensor {kb.Name} has shape {kb.ShapeText}, expected [{_heads}, {_kvl}, {_nope}]");
        if (vb.ElementCount != (long)_heads * _v * _kvl || vb.Shape[^1] != _kvl)
            throw new ModelFormatException($"{vb.File}: tensor {vb.Name} has shape {vb.ShapeText}, expected [{_heads}, {_v}, {_kvl}]");
        var kbf = Dequantize.Matrix(new WeightMatrix(kb.Name, kb.Type, _heads * _kvl, _nope, kb.Data)); // [heads, kvl, nope]
        var vbf = Dequantize.Matrix(new WeightMatrix(vb.Name, vb.Type, _heads * _v, _kvl, vb.Data));    // [heads, v, kvl]
        for (int h = 0; h < _heads; h++)
        {
            int baseRow = h * (_nope + _v);
            for (int d = 0; d < _nope; d++)
                for (int c = 0; c < _kvl; c++)
                    _wkvB[(baseRow + d) * _kvl + c] = kbf[((long)h * _kvl + c) * _nope + d];
            Array.Copy(vbf, (long)h * _v * _kvl, _wkvB, (long)(baseRow + _nope) * _kvl, _v * _kvl);
            // k_b is already W_ukᵀ per head and v_b W_uv: the absorbed path uses them in place
            WukT[h] = new WeightMatrix($"{kb.Name}[{h}]", kb.Type, _kvl, _nope, kb.Data + h * kb.Type.ByteCount(_kvl * _nope));
            Wuv[h] = new WeightMatrix($"{vb.Name}[{h}]", vb.Type, _v, _kvl, vb.Data + h * vb.Type.ByteCount(_v * _kvl));
        }
        w.AddDerived(kb.Name, kb.ByteLength, null);
        w.AddDerived(vb.Name, vb.ByteLength, null);
    }
}
