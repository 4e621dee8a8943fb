using System.Runtime.InteropServices;
using DeepSeekCpu.Kernels.Repack;
using DeepSeekCpu.Weights;
using Xunit;

namespace DeepSeekCpu.Kernels.Tests;

/// <summary>
/// Interleaved rows (Kernels/Repack/Interleave): the scalar group body over the repacked bytes equals DotReference
/// over the original rows exactly, every group body this machine has matches it within float-order rounding, and the
/// GEMV over interleaved copies (odd row counts, row counts not a multiple of 16, several tokens, mixed batches)
/// matches DotReference row by row; the multi-token group bodies equal the one-token body per token bit for bit.
/// </summary>
public unsafe class InterleaveTests
{
    private static readonly DType[] Types = [DType.Q4_0, DType.Q8_0, DType.Q4_K, DType.Q6_K];

    public static TheoryData<DType, int, int> Shapes()
    {
        var d = new TheoryData<DType, int, int>();
        foreach (var t in Types)
            foreach (var (rows, cols) in new[] { (1, 32), (5, 96), (16, 416), (17, 288), (35, 1536), (48, 64) })
                d.Add(t, rows, t.BlockSize() == 256 ? 256 * (cols / 64 % 4 + 1) : cols);   // Q4_K: 1-4 super-blocks
        return d;
    }

    /// <summary>Weights with some blocks of zero, subnormal-half and ordinary scales (the bodies convert halves with bit tricks).</summary>
    private static WeightMatrix Weights(DType t, int rows, int cols, int seed)
    {
        var data = TestData.Gaussian(rows * cols, seed, 0.05f);
        for (int r = 0; r < rows; r++)
            for (int c = 0; c < cols; c++)
            {
                int block = c / t.BlockSize() + r;
                if (block % 7 == 3) data[r * cols + c] = 0;                 // d = 0
                else if (block % 7 == 5) data[r * cols + c] *= 1e-4f;      // |d| below the smallest normal half
            }
        return TestData.Matrix(t, data, rows, cols);
    }

    private static byte[] Packed(WeightMatrix w)
    {
        var bytes = new byte[Interleave.Groups(w.Rows) * Interleave.GroupBytes(w.Type, w.Cols)];
        fixed (byte* p = bytes) Interleave.Pack(w, p);
        return bytes;
    }

    private static (byte[] mem, nint acts) Quantized(DType type, float[] x, int cols, int tokens)
    {
        var mem = GC.AllocateArray<byte>((int)(tokens * (ActQ8.BytesFor(cols) + sizeof(ActQ8) + 64)) + 128, pinned: true);
        byte* p = (byte*)(((nint)Marshal.UnsafeAddrOfPinnedArrayElement(mem, 0) + 63) & ~63);
        var acts = (ActQ8*)p;
        p += (tokens * sizeof(ActQ8) + 63) & ~63;
        fixed (float* px = x)
            for (int tk = 0; tk < tokens; tk++)
            {
                acts[tk] = ActQ8.At(p, cols);
                p += ActQ8.BytesFor(cols);
                ActQ8.QuantizeFor(type, px + (long)tk * cols, acts + tk);
            }
        return (mem, (nint)acts);
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Reference_group_body_equals_DotReference_over_the_original_rows(DType t, int rows, int cols)
    {
        using var w = Weights(t, rows, cols, rows * 31 + cols);
        var packed = Packed(w);
        var (mem, acts) = Quantized(t, TestData.Gaussian(cols, cols + 1), cols, 1);
        var dot = Gemv.QuantDotReference(t);
        var group = Interleave.GroupDotReference(t);
        var y = new float[Interleave.Rows];
        fixed (byte* p = packed)
        fixed (float* py = y)
            for (int g = 0; g < Interleave.Groups(rows); g++)
            {
                group(p + g * Interleave.GroupBytes(t, cols), (ActQ8*)acts, py);
                for (int r = 0; r < Interleave.Rows; r++)
                {
                    int row = g * Interleave.Rows + r;
                    if (row < rows) Assert.Equal(dot(w.Row(row), (ActQ8*)acts), y[r]);   // same float operations, same order
                    else Assert.Equal(0f, y[r]);                                          // padding rows (d = 0)
                }
            }
        GC.KeepAlive(mem);
    }

    [Theory]
    [MemberData(nameof(Shapes))]
    public void Every_path_group_body_matches_the_reference(DType t, int rows, int cols)
    {
        using var w = Weights(t, rows, cols, rows * 17 + cols);
        var packed = Packed(w);
        var (mem, acts) = Quantized(t, TestData.Gaussian(cols, cols + 2), cols, 1);
        var reference = Interleave.GroupDotReference(t);
        var expect = new float[Interleave.Rows];
        var got = new float[Interleave.Rows];
        int bodies = 0;
        fixed (byte* p = packed)
        fixed (float* pe = expect, pg = got)
            foreach (var path in KernelInfo.Available)
            {
                var body = Interleave.GroupDot(t, path);
                if (body == null) continue;
                bodies++;
                for (int g = 0; g < Interleave.Groups(rows); g++)
                {
                    byte* group = p + g * Interleave.GroupBytes(t, cols);
                    reference(group, (ActQ8*)acts, pe);
                    got.AsSpan().Fill(float.NaN);
                    body(group, (ActQ8*)acts, pg);
                    for (int r = 0; r < Interleave.Rows; r++)
                    {
                        // Integer sums are exact in every body; only float accumulation order differs.
                        float tol = 1e-5f * (Math.Abs(expect[r]) + 1e-3f * cols);
                        Assert.True(Math.Abs(expect[r] - got[r]) <= tol, $"{t} {KernelInfo.Name(path)} rows {rows} cols {cols} row {g * 16 + r}: {got[r]} vs reference {expect[r]}");
                    }
                }
            }
        Assert.True(bodies > 0, $"no group body for {t} on {string.Join(", ", KernelInfo.Available)}");   // the scalar path always has one
        GC.KeepAlive(mem);
    }

    public static TheoryData<DType, int, int> MultiTokenShapes()
    {
        var d = new TheoryData<DType, int, int>();
        foreach (var t in Types)
            foreach (int n in new[] { 2, 3, 4, 5, 7, 8, 9 })
                d.Add(t, n, t.BlockSize() == 256 ? 256 * (n % 3 + 1) : 32 * (n + 2));
        return d;
    }

    /// <summary>
    /// The multi-token group bodies (batched decoding: each weight chunk unpacked once per pass over up to 4 tokens) give,
    /// for every token, exactly the one-token body's values (same operations per token in the same order), on every
    /// path that has one; and write nothing past y[n, 16). Over 2 groups with a partial one, and every token count
    /// that splits into passes of 1-4 differently.
    /// </summary>
    [Theory]
    [MemberData(nameof(MultiTokenShapes))]
    public void Multi_token_group_bodies_equal_the_one_token_body_per_token(DType t, int n, int cols)
    {
        using var w = Weights(t, 27, cols, n * 13 + cols);
        var packed = Packed(w);
        var (mem, acts) = Quantized(t, TestData.Gaussian(n * cols, n + cols), cols, n);
        var single = new float[Interleave.Rows];
        var multi = new float[Interleave.Rows * n + 1];
        fixed (byte* p = packed)
        fixed (float* ps = single, pm = multi)
            foreach (var path in KernelInfo.Available)
            {
                var dots = Interleave.GroupDots(t, path);
                if (dots == null) continue;
                var dot = Interleave.GroupDot(t, path);
                for (int g = 0; g < Interleave.Groups(w.Rows); g++)
                {
                    byte* group = p + g * Interleave.GroupBytes(t, cols);
                    multi.AsSpan().Fill(float.NaN);
                    multi[^1] = 12345f;
                    dots(group, (ActQ8*)acts, n, pm);
                    Assert.Equal(12345f, multi[^1]);
                    for (int tk = 0; tk < n; tk++)
                    {
                        dot(group, (ActQ8*)acts + tk, ps);
                        for (int r = 0; r < Interleave.Rows; r++)
                            Assert.True(single[r].Equals(multi[Interleave.Rows * tk + r]),
                                $"{t} {KernelInfo.Name(path)} n={n} group {g} token {tk} row {r}: {multi[Interleave.Rows * tk + r]} vs one-token body {single[r]}");
                    }
                }
            }
        GC.KeepAlive(mem);
    }

    /// <summary>DotReference of every row against every token: what a GEMV must produce (same quantized activations).</summary>
    private static float[] ReferenceGemv(WeightMatrix w, float[] x, int n)
    {
        var (mem, acts) = Quantized(w.Type, x, w.Cols, n);
        var dot = Gemv.QuantDotReference(w.Type);
        var y = new float[n * w.Rows];
        for (int t = 0; t < n; t++)
            for (int r = 0; r < w.Rows; r++) y[t * w.Rows + r] = dot(w.Row(r), (ActQ8*)acts + t);
        GC.KeepAlive(mem);
        return y;
    }

    private static void AssertClose(float[] expect, float[] got, int count, int cols, string what)
    {
        for (int i = 0; i < count; i++)
        {
            float tol = 1e-5f * (Math.Abs(expect[i]) + 1e-3f * cols);
            Assert.True(Math.Abs(expect[i] - got[i]) <= tol, $"{what} output {i}: {got[i]} vs reference {expect[i]}");
        }
    }

    /// <summary>
    /// A batch of interleaved and stored-layout products with row counts that are not multiples of 16 (so tasks start
    /// inside groups unless the GEMV aligns them), sharing and not sharing inputs, over 1 and 3 tokens (GEMV on every
    /// path): each output equals DotReference within float-order rounding, and nothing is written past an output.
    /// </summary>
    [Fact]
    public void Gemv_batch_over_interleaved_copies_matches_DotReference_on_every_path()
    {
        var specs = new (DType Type, int Rows, int Cols, int Input, bool Interleaved)[]
        {
            (DType.Q4_0, 37, 288, 0, true), (DType.Q8_0, 5, 288, 0, true), (DType.Q4_0, 21, 288, 0, false),
            (DType.Q4_0, 16, 96, 1, true), (DType.Q8_0, 50, 96, 1, true), (DType.Q4_K, 9, 256, 2, false), (DType.Q4_0, 3, 256, 2, true),
            (DType.Q4_K, 19, 256, 2, true), (DType.Q6_K, 7, 256, 2, false), (DType.Q6_K, 33, 256, 2, true), (DType.Q5_K, 4, 256, 2, false),
        };
        int[] inputCols = [288, 96, 256];
        var weights = specs.Select((s, i) => Weights(s.Type, s.Rows, s.Cols, 500 + i)).ToArray();
        try
        {
            foreach (int n in new[] { 1, 3, 5 })   // below every path's GEMM crossover (6 on AVX2)
            {
                var inputs = inputCols.Select((c, i) => { var a = GC.AllocateArray<float>(n * c, pinned: true); TestData.Gaussian(a.Length, 40 * n + i).CopyTo(a, 0); return a; }).ToArray();
                var expect = specs.Select((s, i) => ReferenceGemv(weights[i], inputs[s.Input], n)).ToArray();
                foreach (var path in KernelInfo.Available)
                {
                    foreach (var (w, i) in weights.Select((w, i) => (w, i)))
                        if (specs[i].Interleaved && w.Interleaved == null) Interleave.Attach(w, path);
                    var outputs = specs.Select(s => GC.AllocateArray<float>(n * s.Rows + 1, pinned: true)).ToArray();
                    foreach (var o in outputs) o[^1] = 12345f;
                    var batch = new MatMulBatch();
                    batch.Clear(n);
                    for (int i = 0; i < specs.Length; i++)
                        batch.Add(weights[i], (float*)Marshal.UnsafeAddrOfPinnedArrayElement(inputs[specs[i].Input], 0), (float*)Marshal.UnsafeAddrOfPinnedArrayElement(outputs[i], 0));
                    MatMul.Multiply(batch, path);
                    for (int i = 0; i < specs.Length; i++)
                    {
                        Assert.Equal(12345f, outputs[i][^1]);
                        AssertClose(expect[i], outputs[i], n * specs[i].Rows, specs[i].Cols, $"product {i} ({specs[i].Type}, interleaved copy: {weights[i].Interleaved != null}) {KernelInfo.Name(path)} n={n}");
                    }
                }
            }
        }
        finally { foreach (var w in weights) w.Dispose(); }
    }

    /// <summary>The entry for one matrix and the int8 GEMM beyond the crossover still read the stored layout correctly;
    /// 45 tokens take the GEMM over whole token steps and the multi-token GEMV over the tail (<see cref="MatMul.GemmTokens"/>:
    /// 32 + 13 with AVX-512, 40 + 5 with AVX2), the tail's tokens equal to DotReference as every GEMV token is.</summary>
    [Theory]
    [InlineData(DType.Q4_0, 67, 288)]
    [InlineData(DType.Q8_0, 33, 544)]
    [InlineData(DType.Q4_K, 21, 512)]
    [InlineData(DType.Q6_K, 18, 768)]
    public void Multiply_with_an_interleaved_copy_matches_DotReference_and_the_float_reference(DType t, int rows, int cols)
    {
        using var w = Weights(t, rows, cols, rows + cols);
        var deq = Dequantize.Matrix(w);
        Interleave.Attach(w, KernelInfo.Path);
        foreach (int n in new[] { 1, 2, 13, 45 })
        {
            var x = TestData.Gaussian(n * cols, n + 900);
            var expectDot = ReferenceGemv(w, x, n);
            var expectFloat = TestData.ReferenceMatMul(w, x, n);
            foreach (var path in KernelInfo.Available)
            {
                var y = new float[n * rows];
                MatMul.Multiply(w, x, y, n, path);
                int g = MatMul.GemmTokens(w, n, path);   // the tokens from g on went to the GEMV
                AssertClose(expectDot[(g * rows)..], y[(g * rows)..], (n - g) * rows, cols, $"{t} {KernelInfo.Name(path)} n={n} (GEMM {g})");
                for (int i = 0; i < n * rows; i++)
                {
                    double budget = 0.15 * TestData.TermNorm(w, deq, x, i / rows, i % rows) + 1e-5;
                    Assert.True(Math.Abs(y[i] - expectFloat[i]) <= budget, $"{t} {KernelInfo.Name(path)} n={n} output {i}: {y[i]} vs {expectFloat[i]}");
                }
            }
        }
    }

    [Fact]
    public void Attach_makes_a_copy_only_where_a_body_exists_and_dispose_frees_it()
    {
        using var q5k = TestData.Matrix(DType.Q5_K, TestData.Gaussian(4 * 256, 1, 0.05f), 4, 256);
        Assert.Equal(0, Interleave.Attach(q5k, KernelInfo.Path));
        Assert.True(q5k.Interleaved == null);
        var w = TestData.Matrix(DType.Q4_0, TestData.Gaussian(20 * 64, 2, 0.05f), 20, 64);
        long bytes = Interleave.Attach(w, KernelPath.Scalar);
        Assert.Equal(2 * 2 * 288, bytes);                       // 2 groups (20 rows padded to 32) x 2 blocks x 288 bytes
        Assert.Equal(bytes, w.InterleavedBytes);
        Assert.Equal(0, Interleave.Attach(w, KernelPath.Scalar)); // already has one
        w.Dispose();
        Assert.True(w.Interleaved == null);
        Assert.Equal(0, w.InterleavedBytes);
    }
}
