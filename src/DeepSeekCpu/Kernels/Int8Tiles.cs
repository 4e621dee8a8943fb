using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels;

/// <summary>
/// Weight tiles for the int8 GEMM (<see cref="GemmInt8{TMicro}"/> on every instruction set): a row's blocks unpacked
/// once per tile to bytes q with per-block (or per-16) d and m, w = d·q + m, then reused for every token.
/// Only 128-bit vector operations, so every instruction set runs it natively.
/// </summary>
internal static unsafe class Int8Tiles
{
    /// <summary>Columns per unpacked slice (one K-quant super-block, 8 blocks of 32).</summary>
    public const int KBlock = 256;
    public const int BlocksPerSlice = KBlock / 32;

    /// <summary>d and m per 32-element block: 1, or 2 for Q6_K (a scale per 16 elements).</summary>
    public static int ScalesPerBlock(DType t) => t == DType.Q6_K ? 2 : 1;

    /// <summary>Blocks [b0, b0 + count) of row r as q bytes (element order) with per-32 d and m: w = d·q + m
    /// (8-bit formats: q = 16·high + low).</summary>
    public static void Unpack(WeightMatrix w, int r, int b0, int count, byte* q, byte* high, float* d, float* m)
    {
        var mask = Vector128.Create((byte)0x0F);
        byte* row = w.Row(r);
        switch (w.Type)
        {
            case DType.Q6_K:
                // q (0..63) in element order as low nibble + high 2 bits; d·sc and −32·d·sc per 16 elements.
                for (int i = 0; i < count; i += 8)
                {
                    var blk = (BlockQ6_K*)row + (b0 + i) / 8;
                    float sd = HalfBits.ToFloat(blk->D);
                    var m30 = Vector128.Create((byte)0x30);
                    for (int half = 0; half < 2; half++)
                    {
                        byte* ql = blk->Ql + 64 * half, qhp = blk->Qh + 32 * half;
                        int o = 32 * i + 128 * half;
                        for (int k = 0; k < 2; k++)
                        {
                            var l0 = Vector128.Load(ql + 16 * k);
                            var l1 = Vector128.Load(ql + 32 + 16 * k);
                            var h = Vector128.Load(qhp + 16 * k);
                            // element order: l (0..31), l + 32, l + 64, l + 96 of this half
                            StoreQ6(l0 & mask, Vector128.ShiftLeft(h.AsUInt16(), 4).AsByte() & m30, q + o + 16 * k, high + o + 16 * k);
                            StoreQ6(l1 & mask, Vector128.ShiftLeft(h.AsUInt16(), 2).AsByte() & m30, q + o + 32 + 16 * k, high + o + 32 + 16 * k);
                            StoreQ6(Vector128.ShiftRightLogical(l0.AsUInt16(), 4).AsByte() & mask, h & m30, q + o + 64 + 16 * k, high + o + 64 + 16 * k);
                            StoreQ6(Vector128.ShiftRightLogical(l1.AsUInt16(), 4).AsByte() & mask, Vector128.ShiftRightLogical(h.AsUInt16(), 2).AsByte() & m30, q + o + 96 + 16 * k, high + o + 96 + 16 * k);
                        }
                    }
                    for (int s16 = 0; s16 < 16; s16++)
                    {
                        float ds = sd * blk->Scales[s16];
                        d[2 * i + s16] = ds;
                        m[2 * i + s16] = -32 * ds;
                    }
                }
                break;
            case DType.Q8_0:
                for (int i = 0; i < count; i++)
                {
                    var blk = (BlockQ8_0*)row + b0 + i;
                    for (int h = 0; h < 2; h++)
                    {
                        var u = Vector128.Load((byte*)blk->Qs + 16 * h) ^ Vector128.Create((byte)0x80);     // q + 128
                        (u & mask).Store(q + 32 * i + 16 * h);
                        (Vector128.ShiftRightLogical(u.AsUInt16(), 4).AsByte() & mask).Store(high + 32 * i + 16 * h);
                    }
                    d[i] = HalfBits.ToFloat(blk->D);
                    m[i] = -128 * d[i];
                }
                break;
            case DType.Q4_0 or DType.Q4_1:
                // the same nibbles after d (Q4_0) or d, m (Q4_1): w = d·q − 8d, or d·q + m
                int bytes = w.Type == DType.Q4_0 ? sizeof(BlockQ4_0) : sizeof(BlockQ4_1), qsAt = bytes - 16;
                for (int i = 0; i < count; i++)
                {
                    byte* blk = row + (long)(b0 + i) * bytes;
                    var v = Vector128.Load(blk + qsAt);
                    (v & mask).Store(q + 32 * i);
                    (Vector128.ShiftRightLogical(v.AsUInt16(), 4).AsByte() & mask).Store(q + 32 * i + 16);
                    d[i] = HalfBits.ToFloat(((BlockQ4_1*)blk)->D);
                    m[i] = w.Type == DType.Q4_0 ? -8 * d[i] : HalfBits.ToFloat(((BlockQ4_1*)blk)->M);
                }
                break;
            case DType.Q4_K:
                // one super-block per slice (b0 and count are multiples of 8 since cols % 256 == 0)
                for (int i = 0; i < count; i += 8)
                {
                    var blk = (BlockQ4_K*)row + (b0 + i) / 8;
                    float sd = HalfBits.ToFloat(blk->D), sm = HalfBits.ToFloat(blk->DMin);
                    for (int g = 0; g < 4; g++)
                        for (int h = 0; h < 2; h++)   // 128-bit halves: Vector256 is emulated on Arm64
                        {
                            var v = Vector128.Load(blk->Qs + 32 * g + 16 * h);
                            (v & mask).Store(q + 32 * i + 64 * g + 16 * h);
                            (Vector128.ShiftRightLogical(v.AsUInt16(), 4).AsByte() & mask).Store(q + 32 * i + 64 * g + 32 + 16 * h);
                        }
                    for (int j = 0; j < 8; j++)
                    {
                        KQuant.ScaleMin(j, blk->Scales, out int sc, out int mn);
                        d[i + j] = sd * sc;
                        m[i + j] = -sm * mn;
                    }
                }
                break;
            default:
                throw new NotSupportedException($"int8 GEMM for {w.Type}");
        }
    }

    /// <summary>Q6_K planes: low nibble as is, the two high bits (already at bits 4-5) shifted down to 0..3.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void StoreQ6(Vector128<byte> low, Vector128<byte> highBits45, byte* q, byte* high)
    {
        low.Store(q);
        Vector128.ShiftRightLogical(highBits45.AsUInt16(), 4).AsByte().Store(high);
    }

}
