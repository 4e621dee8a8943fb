using System.Runtime.Intrinsics;
using DeepSeekCpu.Kernels;
using DeepSeekCpu.Kernels.Reference;
using DeepSeekCpu.Kernels.Repack;
using DeepSeekCpu.Weights;
using Xunit;

namespace DeepSeekCpu.Kernels.Tests;

/// <summary>
/// The int8 GEMM's lane tiles (<see cref="Int8Tiles.UnpackLanes"/>: Q4_0 and Q4_K read from the decode kernels'
/// interleaved copy, 16 rows interleaved as the copy holds them): their values equal <see cref="Dequantize"/> bit for
/// bit, the GEMMs and expert batches that read them give the same floats, bit for bit, as the row tiles unpacked from
/// the stored rows (the same integer sums, scaled in the same order), and both stay within float rounding of the scalar
/// integer GEMM (<see cref="GemmReference"/>). Row counts leave a partial 16-row group and a partial 64-row tile.
/// </summary>
public unsafe class LaneTileTests
{
    public static TheoryData<DType, bool> FormatsAndModes() => new() { { DType.Q4_0, false }, { DType.Q4_K, false }, { DType.Q4_K, true } };

    [Theory]
    [MemberData(nameof(FormatsAndModes))]
    public void Lane_tiles_equal_Dequantize_bit_for_bit(DType t, bool q8k)
    {
        int rows = 83, cols = t == DType.Q4_K ? 768 : 544;   // rows: 64 + 19 (a partial group of 16); Q4_0: a partial slice
        using var w = t == DType.Q4_K ? KQuantsTests.RandomBlocks(t, rows, cols, 43)   // every 6-bit scale and min occurs
            : TestData.Matrix(t, TestData.Gaussian(rows * cols, 17, 0.05f), rows, cols);
        Assert.True(Interleave.Attach(w, KernelPath.Scalar) > 0);
        var q = new byte[Int8Tiles.TileRows * Int8Tiles.KBlock];
        var d = new float[Int8Tiles.TileRows * Int8Tiles.BlocksPerSlice];
        var m = new float[Int8Tiles.TileRows * Int8Tiles.BlocksPerSlice];
        var expect = new float[cols];
        fixed (byte* pq = q)
        fixed (float* pd = d, pm = m)
        for (int r0 = 0; r0 < rows; r0 += Int8Tiles.TileRows)
        {
            int nr = Math.Min(Int8Tiles.TileRows, rows - r0), nrPad = (nr + 3) / 4 * 4;
            for (int k0 = 0; k0 < cols; k0 += Int8Tiles.KBlock)
            {
                int count = Math.Min(Int8Tiles.KBlock, cols - k0) / 32;
                Array.Fill(q, (byte)0xEE); Array.Fill(d, float.NaN); Array.Fill(m, float.NaN);
                Int8Tiles.UnpackLanes(w, r0, nrPad, k0 / 32, count, q8k, pq, pd, pm);
                for (int r = 0; r < nrPad; r++)
                {
                    if (r < nr) Dequantize.RowOf(w, r0 + r, expect);
                    for (int k = 0; k < 32 * count; k++)
                    {
                        int i = k / 32, kk = k % 32;   // block of the slice, element of the block
                        byte qk = q[r / 16 * Int8Tiles.LaneGroupBytes + i * Int8Tiles.LaneBlockBytes + 64 * (kk / 4) + 4 * (r % 16) + kk % 4];
                        Assert.InRange(qk, (byte)0, (byte)15);
                        float got;
                        if (q8k)
                        {
                            // per sub-block (or slot) i and row r at [64·i + r]: sc·0x10001; the mins' int16 pairs, d, −dmin
                            const int ld = Int8Tiles.TileRows;
                            int sc = ((int*)pd)[ld * i + r];
                            int s = sc & 0xFFFF, mn = (BitConverter.SingleToInt32Bits(pm[ld * (i / 2) + r]) >> (16 * (i % 2))) & 0xFFFF;
                            Assert.Equal(s * 0x10001, sc);
                            got = pm[ld * 4 + r] * s * qk - -pm[ld * 5 + r] * mn;   // (d·sc)·q − dmin·m, Dequantize's operations
                        }
                        else got = (float)((double)d[Int8Tiles.TileRows * i + r] * qk + m[Int8Tiles.TileRows * i + r]);   // d·q + m rounded once
                        float want = r < nr ? expect[k0 + k] : 0;   // rows past the matrix: zero (the copy's padding)
                        Assert.True(want == got, $"{t} q8k={q8k} row {r0 + r} col {k0 + k}: lane tile {got} vs Dequantize {want}");
                    }
                }
            }
        }
    }

    /// <summary>
    /// An expert batch of plain products (the MoE's down projections, each over its own tokens) and the same products
    /// alone, on every int8 GEMM path this machine runs: with the interleaved copies attached (lane tiles) the values
    /// equal those alone bit for bit, the GEMM's tokens equal, bit for bit, those computed before from the stored rows
    /// (row tiles: the GEMM over all tokens), and every token (the GEMV's tail past the GEMM's whole steps too) the
    /// scalar integer GEMM within float rounding of the per-block scaling.
    /// </summary>
    [Theory]
    [InlineData(DType.Q4_0)]
    [InlineData(DType.Q4_K)]
    public void Expert_batches_over_lane_tiles_equal_row_tiles_bit_for_bit_and_the_integer_reference(DType t)
    {
        int cols = t == DType.Q4_K ? 512 : 352;
        int[] rows = [67, 131, 16, 83], tokens = [48, 37, 64, 43];   // each at least one GEMM step on every path, most with a GEMV tail
        var w = rows.Select((r, e) => TestData.Matrix(t, TestData.Gaussian(r * cols, 900 + e, 0.05f), r, cols)).ToArray();
        try
        {
            var xs = tokens.Select((n, e) => Pinned(TestData.Gaussian(n * cols, 950 + e))).ToArray();
            var paths = KernelInfo.Available.Where(p => MatMul.Plan(w[0], 48, p) is MatMulKernel.GemmInt8Avx512 or MatMulKernel.GemmInt8Avx2 or MatMulKernel.GemmInt8Neon).ToArray();
            var byRows = paths.Select(p => Batch(w, xs, tokens, p)).ToArray();
            foreach (var m in w) Assert.True(Interleave.Attach(m, KernelPath.Scalar) > 0);
            for (int pi = 0; pi < paths.Length; pi++)
            {
                var path = paths[pi];
                var byLanes = Batch(w, xs, tokens, path);
                for (int e = 0; e < w.Length; e++)
                {
                    int n = tokens[e], nr = rows[e];
                    var kind = MatMul.Plan(w[e], n, path);
                    bool q8k = kind switch
                    {
                        MatMulKernel.GemmInt8Avx512 => X86.GemmInt8Avx512.UsesQ8K(t),
                        MatMulKernel.GemmInt8Avx2 => X86.GemmInt8Avx2.UsesQ8K(t),
                        MatMulKernel.GemmInt8Neon => Arm.GemmInt8Neon.UsesQ8K(t),
                        _ => throw new InvalidOperationException($"{path}: {kind} for {n} tokens"),
                    };
                    var expect = new double[n * nr];
                    if (q8k) GemmReference.KQ8_K(w[e], xs[e], expect, n);
                    else GemmReference.Int8(w[e], xs[e], expect, n);
                    var alone = new float[n * nr];
                    MatMul.Multiply(w[e], xs[e], alone, n, path);
                    var deq = Dequantize.Matrix(w[e]);
                    int gemm = MatMul.GemmTokens(w[e], n, path);
                    Assert.True(gemm > 0, $"{t} {path} entry {e}: no GEMM tokens");
                    for (int tk = 0; tk < n; tk++)
                    for (int r = 0; r < nr; r++)
                    {
                        int i = tk * nr + r;
                        if (tk < gemm) Assert.True(byRows[pi][e][i] == byLanes[e][i], $"{t} {path} entry {e} token {tk} row {r}: lane tiles {byLanes[e][i]} vs row tiles {byRows[pi][e][i]}");
                        Assert.True(alone[i] == byLanes[e][i], $"{t} {path} entry {e} token {tk} row {r}: alone {alone[i]} vs batch {byLanes[e][i]}");
                        double scale = 0;
                        for (int k = 0; k < cols; k++) scale += Math.Abs((double)deq[r * cols + k] * xs[e][tk * cols + k]);
                        double tol = 2e-6 * scale + 1e-7;
                        Assert.True(Math.Abs(byLanes[e][i] - expect[i]) <= tol, $"{t} {path} entry {e} token {tk} row {r}: {byLanes[e][i]} vs integer reference {expect[i]} (tolerance {tol:G3})");
                    }
                }
            }
        }
        finally
        {
            foreach (var m in w) m.Dispose();
        }
    }

    private static float[][] Batch(WeightMatrix[] w, float[][] xs, int[] tokens, KernelPath path)
    {
        var ys = tokens.Select((n, e) => Pinned(new float[n * w[e].Rows])).ToArray();
        var b = new ExpertBatch();
        for (int e = 0; e < w.Length; e++) b.Add(w[e], xs[e], tokens[e], ys[e]);
        ExpertGemm.Run(b, path);
        b.Clear();
        return ys;
    }

    /// <summary>The vector half conversion of the lane tiles' scales equals the scalar one for every half, at every width.</summary>
    [Fact]
    public void Vector_half_conversion_equals_the_scalar_one_for_every_half()
    {
        for (uint h = 0; h < 65536; h += 16)
        {
            var bits = Vector512.Create(h) + Vector512.Create(0u, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
            var w512 = HalfBits.ToFloat<FloatDot.W512, Vector512<float>>(bits.AsSingle()).AsUInt32();
            var w256 = HalfBits.ToFloat<FloatDot.W256, Vector256<float>>(bits.GetLower().AsSingle()).AsUInt32();
            for (int i = 0; i < 16; i++)
            {
                uint want = BitConverter.SingleToUInt32Bits(HalfBits.ToFloat(BitConverter.UInt16BitsToHalf((ushort)(h + i))));
                Assert.True(want == w512[i], $"half 0x{h + i:X4}, 512 bits: 0x{w512[i]:X8} vs 0x{want:X8}");
                if (i < 8) Assert.True(want == w256[i], $"half 0x{h + i:X4}, 256 bits: 0x{w256[i]:X8} vs 0x{want:X8}");
            }
        }
        for (uint h = 0; h < 65536; h += 4)
        {
            var got = HalfBits.ToFloat(Vector128.Create(h, h + 1, h + 2, h + 3));
            for (uint i = 0; i < 4; i++)
            {
                float want = HalfBits.ToFloat(BitConverter.UInt16BitsToHalf((ushort)(h + i)));
                Assert.True(BitConverter.SingleToUInt32Bits(want) == BitConverter.SingleToUInt32Bits(got[(int)i]), $"half 0x{h + i:X4}: {got[(int)i]} vs {want}");
            }
        }
        Assert.Equal(65504f, HalfBits.ToFloat(Vector128.Create(0x7BFFu))[0]);        // largest half
        Assert.Equal(MathF.Pow(2, -24), HalfBits.ToFloat(Vector128.Create(1u))[0]);   // smallest subnormal
        Assert.Equal(-2f, HalfBits.ToFloat(Vector128.Create(0xC000u))[0]);
    }

    private static T[] Pinned<T>(T[] a) where T : unmanaged
    {
        var p = GC.AllocateArray<T>(a.Length, pinned: true);
        a.CopyTo(p, 0);
        return p;
    }
}
