using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels;

/// <summary>
/// Dequantizes a column segment of one weight row to float32 for the float GEMM. The common formats take a SIMD route
/// (Vector128 code, accelerated on x86 and ARM64 alike); the rest go through the scalar reference in
/// <see cref="Dequantize"/>. Tested against the reference through the GEMM tests.
/// </summary>
internal static unsafe partial class WeightDecode
{
    /// <summary>Columns [k0, k0 + len) of row r (k0 and len whole blocks) into dst, FP8 block scales applied.</summary>
    public static void Segment(WeightMatrix w, int r, int k0, int len, float* dst)
    {
        var type = w.Type;
        byte* src = w.Row(r) + type.ByteCount(k0);
        if (Vector128.IsHardwareAccelerated)
        {
            switch (type)
            {
                case DType.Q8_0: Q8_0((BlockQ8_0*)src, len / 32, dst); return;
                case DType.Q6_K: Q6_K((BlockQ6_K*)src, len / 256, dst); return;
                case DType.BF16: Bf16((ushort*)src, len, dst); return;
                case DType.MXFP4: NibbleGrid<MXFP4Grid>(src, len / 32, dst); return;
                case var t when IQuantDecode.Handles(t): IQuantDecode.Floats(t, src, len / 256, dst); return;
            }
        }
        Dequantize.Row(type, src, new Span<float>(dst, len));
        if (type == DType.F8_E4M3)
        {
            float* s = w.BlockScales + (r / WeightMatrix.Fp8BlockSize) * w.ScaleCols;
            for (int i = 0; i < len; i++) dst[i] *= s[(k0 + i) / WeightMatrix.Fp8BlockSize];
        }
    }

    /// <summary>16 signed bytes → 16 floats × scale.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Store16(Vector128<sbyte> q, Vector128<float> scale, float* dst)
    {
        var lo = Vector128.WidenLower(q);
        var hi = Vector128.WidenUpper(q);
        (Vector128.ConvertToSingle(Vector128.WidenLower(lo)) * scale).Store(dst);
        (Vector128.ConvertToSingle(Vector128.WidenUpper(lo)) * scale).Store(dst + 4);
        (Vector128.ConvertToSingle(Vector128.WidenLower(hi)) * scale).Store(dst + 8);
        (Vector128.ConvertToSingle(Vector128.WidenUpper(hi)) * scale).Store(dst + 12);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Q8_0(BlockQ8_0* blk, int blocks, float* dst)
    {
        for (int b = 0; b < blocks; b++, blk++, dst += 32)
        {
            var d = Vector128.Create(HalfBits.ToFloat(blk->D));
            Store16(Vector128.Load(blk->Qs), d, dst);
            Store16(Vector128.Load(blk->Qs + 16), d, dst + 16);
        }
    }

    /// <summary>Q6_K in groups of 16 elements (one int8 scale each); bit positions as in BlockQ6_K.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Q6_K(BlockQ6_K* blk, int blocks, float* dst)
    {
        var m4 = Vector128.Create((byte)0x0F);
        var m30 = Vector128.Create((byte)0x30);
        var offset = Vector128.Create((sbyte)32);
        for (int b = 0; b < blocks; b++, blk++, dst += 256)
        {
            float d = HalfBits.ToFloat(blk->D);
            for (int half = 0; half < 2; half++)
            {
                byte* ql = blk->Ql + 64 * half;
                byte* qh = blk->Qh + 32 * half;
                sbyte* sc = blk->Scales + 8 * half;
                float* y = dst + 128 * half;
                for (int i = 0; i < 2; i++)   // elements l = 16 i .. 16 i + 15 of each quarter
                {
                    var l0 = Vector128.Load(ql + 16 * i);
                    var l1 = Vector128.Load(ql + 32 + 16 * i);
                    var h = Vector128.Load(qh + 16 * i);
                    var q1 = ((l0 & m4) | (Vector128.ShiftLeft(h.AsUInt16(), 4).AsByte() & m30)).AsSByte() - offset;
                    var q2 = ((l1 & m4) | (Vector128.ShiftLeft(h.AsUInt16(), 2).AsByte() & m30)).AsSByte() - offset;
                    var q3 = ((Vector128.ShiftRightLogical(l0.AsUInt16(), 4).AsByte() & m4) | (h & m30)).AsSByte() - offset;
                    var q4 = ((Vector128.ShiftRightLogical(l1.AsUInt16(), 4).AsByte() & m4) | (Vector128.ShiftRightLogical(h.AsUInt16(), 2).AsByte() & m30)).AsSByte() - offset;
                    Store16(q1, Vector128.Create(d * sc[i]), y + 16 * i);
                    Store16(q2, Vector128.Create(d * sc[i + 2]), y + 32 + 16 * i);
                    Store16(q3, Vector128.Create(d * sc[i + 4]), y + 64 + 16 * i);
                    Store16(q4, Vector128.Create(d * sc[i + 6]), y + 96 + 16 * i);
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Bf16(ushort* src, int n, float* dst)
    {
        int i = 0;
        for (; i + 8 <= n; i += 8)
        {
            var v = Vector128.Load(src + i);
            Vector128.ShiftLeft(Vector128.WidenLower(v), 16).AsSingle().Store(dst + i);
            Vector128.ShiftLeft(Vector128.WidenUpper(v), 16).AsSingle().Store(dst + i + 4);
        }
        for (; i < n; i++) dst[i] = Dequantize.Bf16ToFloat(src[i]);
    }
}
