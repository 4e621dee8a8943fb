using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace DeepSeekCpu.Kernels.X86;

/// <summary>
/// AVX-VNNI operators of the Q8_0 GEMM (<see cref="GemmQ8{TOps, TX, TAcc, TF}"/>): 8-token panels (one 256-bit
/// register of int32 lanes); per 4 k one vpdpbusd per row and panel multiplies the activations + 128 (unsigned) by the
/// row's 4 signed weight bytes broadcast to every lane and adds the 4 products into int32, where the nibble-plane split
/// of <see cref="GemmInt8Avx512"/> needs two vpmaddubsw and two int16 adds per 16 tokens. .NET 10 exposes VNNI only at
/// 256 bits (no Avx512Vnni class). Two panels per call (4 rows × 16 tokens: 8 int32 sums, 8 independent vpdpbusd
/// chains; the float sums live in C) on AVX-512 and AVX2 alike: AVX2's 16 registers hold them without a spill (JIT
/// listing), where one panel left 4 chains, and at 5 cycles of latency half of the two ports idle (AVX-512 off,
/// one thread, 1536×1536 × 480 tokens: 143-147 → 164-175 GFLOP/s, bit for bit the same C). More sums do not pay
/// on AVX-512 either: 8 rows × 2 panels spilled (the JIT keeps vpdpbusd's accumulator in ymm0-15 even where EVEX
/// gives 32 registers), and 4 rows × 3 panels (12 chains, no spill) ran no faster, because per 8 vpdpbusd of a row
/// and panel the block's scaling adds a multiply and an FMA on the same two ports: the loop runs at about 73% of
/// `bench peak`'s vpdpbusd rate against a bound of 80%.
/// </summary>
internal readonly unsafe struct GemmQ8Vnni : IQ8Ops<Vector256<sbyte>, Vector256<int>, Vector256<float>>
{
    public static int Panel => 8;
    public static int TokenStep => 16;
    public static bool UnsignedActs => true;

    /// <summary>
    /// The bits of 1.5·2²³ (0x4B400000): a sum that starts there holds, once all products are added, the float
    /// 1.5·2²³ + s exactly (|s| ≤ 32·128·128 = 2¹⁹ &lt; 2²², where floats in [2²³, 2²⁴) step by 1; the running sums stay
    /// within 2²¹ of it, far from int32 overflow), so float(s) = bits − 1.5·2²³: one exact float subtraction, the same
    /// value as vcvtdq2ps gives. An add can issue on port 5 on Intel cores since Golden Cove, where vcvtdq2ps shares
    /// ports 0 and 1 with vpdpbusd (per 8 vpdpbusd a row and panel pays convert, multiply and FMA).
    /// </summary>
    public static int SumOffset => 0x4B400000;

    public static Vector256<int> Start(int bias) => Vector256.Create(bias);
    public static Vector256<sbyte> Broadcast(sbyte* w) => Vector256.Create(*(int*)w).AsSByte();
    public static Vector256<int> Dot(Vector256<int> acc, Vector256<sbyte> w, Vector256<sbyte> x) => AvxVnni.MultiplyWideningAndAdd(acc, x.AsByte(), w);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> Scale(Vector256<float> f, Vector256<int> acc, float* dw, Vector256<float> dx) =>
        Fma.MultiplyAdd(acc.AsSingle() - Vector256.Create(12582912f), dx * Vector256.Create(*dw), f);
}
