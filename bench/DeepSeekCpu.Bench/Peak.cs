using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace DeepSeekCpu.Bench;

/// <summary>
/// `peak`: the arithmetic bound of the int8 GEMM bodies on this core, one thread: independent chains of 256-bit
/// vpdpbusd (AVX-VNNI, 32 multiply-adds each; what GemmQ8 issues) and of 512-bit vpmaddubsw + vpaddw
/// (64 multiply-adds per pair; what GemmInt8Avx512 issues), in G instructions/s and G int8 multiply-adds/s. A GEMM's
/// GFLOP/s from `quick` ÷ 2 over these rates is how far its inner loop is from the bound.
/// </summary>
internal static class Peak
{
    public static int Run(string[] args)
    {
        const long iters = 50_000_000;
        if (AvxVnni.IsSupported)
        {
            double s = Best(() => VnniChains(iters));
            double instr = 12.0 * iters / s;
            Console.WriteLine($"vpdpbusd ymm      {instr / 1e9,6:F1} G/s  {32 * instr / 1e9,6:F0} G MAC/s");
        }
        if (Avx512BW.IsSupported)
        {
            double s = Best(() => MaddubswChains(iters));
            double pairs = 8.0 * iters / s;
            Console.WriteLine($"vpmaddubsw+vpaddw zmm {pairs / 1e9,6:F1} G pairs/s  {64 * pairs / 1e9,6:F0} G MAC/s");
        }
        return 0;
    }

    private static double Best(Func<int> run)
    {
        run();
        double best = double.MaxValue;
        for (int i = 0; i < 5; i++)
        {
            var cpu0 = Environment.CpuUsage.TotalTime;
            run();
            best = Math.Min(best, (Environment.CpuUsage.TotalTime - cpu0).TotalSeconds);
        }
        return best;
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static int VnniChains(long iters)
    {
        var a = Vector256.Create((byte)3);
        var b = Vector256.Create((sbyte)-5);
        Vector256<int> c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default;
        Vector256<int> c6 = default, c7 = default, c8 = default, c9 = default, c10 = default, c11 = default;
        for (long i = 0; i < iters; i++)
        {
            c0 = AvxVnni.MultiplyWideningAndAdd(c0, a, b); c1 = AvxVnni.MultiplyWideningAndAdd(c1, a, b);
            c2 = AvxVnni.MultiplyWideningAndAdd(c2, a, b); c3 = AvxVnni.MultiplyWideningAndAdd(c3, a, b);
            c4 = AvxVnni.MultiplyWideningAndAdd(c4, a, b); c5 = AvxVnni.MultiplyWideningAndAdd(c5, a, b);
            c6 = AvxVnni.MultiplyWideningAndAdd(c6, a, b); c7 = AvxVnni.MultiplyWideningAndAdd(c7, a, b);
            c8 = AvxVnni.MultiplyWideningAndAdd(c8, a, b); c9 = AvxVnni.MultiplyWideningAndAdd(c9, a, b);
            c10 = AvxVnni.MultiplyWideningAndAdd(c10, a, b); c11 = AvxVnni.MultiplyWideningAndAdd(c11, a, b);
        }
        var s = c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7 + c8 + c9 + c10 + c11;
        return s.GetElement(0);
    }

    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static unsafe int MaddubswChains(long iters)
    {
        // the signed operand is loaded each iteration (as the GEMM loads its activations), so nothing is hoisted
        sbyte* x = stackalloc sbyte[8 * 64];
        for (int i = 0; i < 8 * 64; i++) x[i] = (sbyte)(i % 7 - 3);
        Vector512<byte> a0 = Vector512.Create((byte)1), a1 = Vector512.Create((byte)2), a2 = Vector512.Create((byte)3), a3 = Vector512.Create((byte)4);
        Vector512<short> c0 = default, c1 = default, c2 = default, c3 = default, c4 = default, c5 = default, c6 = default, c7 = default;
        for (long i = 0; i < iters; i++)
        {
            var x0 = Vector512.Load(x + 64 * (i & 7));
            var x1 = Vector512.Load(x + 64 * ((i + 1) & 7));
            c0 += Avx512BW.MultiplyAddAdjacent(a0, x0); c1 += Avx512BW.MultiplyAddAdjacent(a0, x1);
            c2 += Avx512BW.MultiplyAddAdjacent(a1, x0); c3 += Avx512BW.MultiplyAddAdjacent(a1, x1);
            c4 += Avx512BW.MultiplyAddAdjacent(a2, x0); c5 += Avx512BW.MultiplyAddAdjacent(a2, x1);
            c6 += Avx512BW.MultiplyAddAdjacent(a3, x0); c7 += Avx512BW.MultiplyAddAdjacent(a3, x1);
        }
        var s = c0 + c1 + c2 + c3 + c4 + c5 + c6 + c7;
        return s.GetElement(0);
    }
}
