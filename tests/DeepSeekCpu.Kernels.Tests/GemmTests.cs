using DeepSeekCpu.Kernels;
using DeepSeekCpu.Kernels.Reference;
using DeepSeekCpu.Kernels.Repack;
using DeepSeekCpu.Weights;
using Xunit;

namespace DeepSeekCpu.Kernels.Tests;

/// <summary>
/// The tiled GEMMs and their parts against the scalar specifications on identical inputs, in ggml's
/// test-quantize-fns manner: the weight-tile decoders equal <see cref="Dequantize"/> bit for bit (the int8 tiles up to
/// the sign of zero), the int8 activation
/// packer equals <see cref="ActQ8.QuantizeQ8_0Scalar"/> byte for byte, every int8 micro-kernel this machine runs
/// equals the naive integer GEMM (<see cref="GemmReference.Int8"/>: int32 block sums on the same quantized
/// activations) up to float rounding of the per-block scaling, and the float GEMM equals the naive float GEMM up to
/// float rounding of its sums.
/// </summary>
public unsafe class GemmTests
{
    private static readonly DType[] Int8Types = [DType.Q4_0, DType.Q4_1, DType.Q4_K, DType.Q8_0, DType.Q6_K, DType.Q5_K];

    public static TheoryData<DType> Int8Formats() => new(Int8Types);

    public static TheoryData<DType> FloatGemmFormats() =>
        new(DType.F32, DType.F16, DType.BF16, DType.F8_E4M3, DType.Q8_0, DType.Q4_0, DType.Q4_1, DType.Q5_0, DType.Q8_K, DType.Q4_K, DType.Q5_K, DType.Q6_K);

    /// <summary>Rows and columns that leave tails: a partial row block and a partial 256-column slice (32-element formats).</summary>
    private static (int Rows, int Cols) Shape(DType t) => t.BlockSize() == 256 ? (67, 768) : t == DType.F8_E4M3 ? (67, 200) : (67, 544);

    [Theory]
    [MemberData(nameof(Int8Formats))]
    public void Int8_tile_unpack_equals_Dequantize_bit_for_bit(DType t)
    {
        var (rows, cols) = Shape(t);
        using var w = TestData.Matrix(t, TestData.Gaussian(rows * cols, 11 + (int)t, 0.05f), rows, cols);
        int nb = cols / 32, perBlock = Int8Tiles.ScalesPerBlock(t), size = 32 / perBlock;
        var q = new byte[cols];
        var high = new byte[cols];
        var d = new float[nb * perBlock];
        var m = new float[nb * perBlock];
        var expect = new float[cols];
        fixed (byte* pq = q, ph = high)
        fixed (float* pd = d, pm = m)
        // from the stored rows, then from the interleaved copy of the decode kernels (Repack/Interleave), which the
        // unpacker reads instead wherever a matrix has one
        foreach (bool interleaved in Interleave.Supports(t) ? new[] { false, true } : [false])
        {
            if (interleaved) Assert.True(Interleave.Attach(w, KernelPath.Scalar) > 0);
            for (int r = 0; r < rows; r++)
            {
                Dequantize.RowOf(w, r, expect);
                // In slices, as the GEMM unpacks them.
                for (int b0 = 0; b0 < nb; b0 += Int8Tiles.BlocksPerSlice)
                {
                    int count = Math.Min(Int8Tiles.BlocksPerSlice, nb - b0);
                    Int8Tiles.Unpack(w, r, b0, count, pq + 32 * b0, ph + 32 * b0, pd + perBlock * b0, pm + perBlock * b0);
                }
                for (int k = 0; k < cols; k++)
                {
                    int g = k / size;
                    // d·q + m rounded once: what the specification's float expression rounds to (d·(q − 8) may be −0
                    // where d·q + m is +0, the same value).
                    float got = (float)((double)d[g] * (q[k] + 16 * high[k]) + m[g]);
                    Assert.True(expect[k] == got,
                        $"{t} {(interleaved ? "interleaved" : "stored")} row {r} col {k}: unpacked {got} vs Dequantize {expect[k]}");
                }
            }
        }
    }

    /// <summary>
    /// The Q8_0 GEMM where its int32 block sums are largest: weights at the format's extremes (q = −128 and 127, d = 1)
    /// times activations that quantize to ±127, so every block sum is ±32·128·127 or a cancellation of such terms
    /// (the x86 body reads the sums' float value from their bits, valid while |sum| &lt; 2²²), over a partial row
    /// block and slice, from the stored rows and from the interleaved copy, equal to the integer reference.
    /// </summary>
    [Fact]
    public void Q8_0_gemm_is_exact_at_the_largest_block_sums()
    {
        const int rows = 67, cols = 544, nb = cols / 32;
        var buf = new NativeBuffer((long)rows * nb * 34);
        for (int r = 0; r < rows; r++)
        for (int b = 0; b < nb; b++)
        {
            byte* block = buf.Pointer + ((long)r * nb + b) * 34;   // ggml block_q8_0: half d, 32 signed q
            *(Half*)block = (Half)1f;
            for (int k = 0; k < 32; k++)
                ((sbyte*)(block + 2))[k] = (r % 3) switch { 0 => (sbyte)-128, 1 => (sbyte)127, _ => (k + b + r) % 2 == 0 ? (sbyte)-128 : (sbyte)127 };
        }
        using var w = new WeightMatrix("q8-extremes", DType.Q8_0, rows, cols, buf.Pointer, null, buf);
        const int n = 19;
        var x = new float[n * cols];
        for (int t = 0; t < n; t++)
        for (int k = 0; k < cols; k++) x[t * cols + k] = ((k / 32 + t) % 2 == 0 ? 127f : -127f) / (1 << t % 4);   // q = ±127, d = 2^-(t%4)
        var expect = new double[n * rows];
        GemmReference.Int8(w, x, expect, n);
        // d_x, d_w powers of two and |Σ over the row| ≤ 17·32·128·127 < 2²⁴: every float step is exact, so equal
        GemmQ8Tests.ForEachQ8Gemm(w, x, n, (name, interleaved, y) =>
        {
            for (int i = 0; i < y.Length; i++)
                Assert.True(y[i] == expect[i], $"{name} interleaved={interleaved} token {i / rows} row {i % rows}: {y[i]} vs integer reference {expect[i]}");
        });
        // and the nibble-plane split of the int8 GEMM (AVX-512 without VNNI), whose high plane starts at −8·Σq_x
        foreach (var (name, run, _) in Int8Kernels(DType.Q8_0))
        {
            var y = new float[n * rows];
            fixed (float* px = x, py = y) ((delegate*<WeightMatrix, float*, float*, int, void>)run)(w, px, py, n);
            for (int i = 0; i < y.Length; i++)
                Assert.True(y[i] == expect[i], $"{name} token {i / rows} row {i % rows}: {y[i]} vs integer reference {expect[i]}");
        }
    }

    [Theory]
    [MemberData(nameof(FloatGemmFormats))]
    public void Float_tile_decode_equals_Dequantize_bit_for_bit(DType t)
    {
        var (rows, cols) = Shape(t);
        using var w = TestData.Matrix(t, TestData.Gaussian(rows * cols, 17 + (int)t, 0.05f), rows, cols);
        var expect = new float[cols];
        var got = new float[cols];
        fixed (float* pg = got)
        {
            for (int r = 0; r < rows; r++)
            {
                Dequantize.RowOf(w, r, expect);
                Array.Fill(got, float.NaN);
                for (int k0 = 0; k0 < cols; k0 += Gemm.KBlock) WeightDecode.Segment(w, r, k0, Math.Min(Gemm.KBlock, cols - k0), pg + k0);
                for (int k = 0; k < cols; k++)
                    Assert.True(BitConverter.SingleToInt32Bits(expect[k]) == BitConverter.SingleToInt32Bits(got[k]),
                        $"{t} row {r} col {k}: decoded {got[k]} vs Dequantize {expect[k]}");
            }
        }
    }

    [Theory]
    [InlineData(4, false)]
    [InlineData(8, false)]
    [InlineData(16, true)]
    public void Int8_activation_panels_hold_the_bytes_of_the_scalar_quantizer(int panel, bool halfSums)
    {
        int cols = 544, n = 2 * panel + 3, panels = (n + panel - 1) / panel + 1;   // one all-padding panel
        var x = TestData.Gaussian(n * cols, panel);
        for (int k = 0; k < 32; k++) x[cols + 64 + k] = 0;   // an all-zero block (d = 0)
        for (int k = 0; k < 32; k++) x[2 * cols + k] = (k - 16) * 0.5f;   // exact halves: ties round to even
        ForEachPackedBlock(x, n, cols, panel, panels, halfSums, q8k: false, (t, j, b, at, a) =>
        {
            float d = a != null ? a->D[b] : 0, s = a != null ? a->S[b] : 0;
            Assert.Equal(d, at.D[j]);
            Assert.Equal(s, at.S[j]);
            // Q4_0's offset: −8·Σq over the k that vpmaddubsw sums into a token's low int16 lane (k mod 4 = 0, 1), then its high one
            int lo = 0, hi = 0;
            for (int k = 0; a != null && k < 32; k++) if (k % 4 < 2) lo += a->Q[32 * b + k]; else hi += a->Q[32 * b + k];
            Assert.Equal(-8 * lo, (int)(short)at.O[j]);
            Assert.Equal(-8 * hi, at.O[j] >> 16);
            if (halfSums)
            {
                int s0 = 0, s1 = 0;
                for (int k = 0; a != null && k < 32; k++) if (k < 16) s0 += a->Q[32 * b + k]; else s1 += a->Q[32 * b + k];
                Assert.Equal(d * s0, at.SHalf[j]);
                Assert.Equal(d * s1, at.SHalf[panel + j]);
            }
        });
    }

    private delegate void PackedBlockCheck(int token, int lane, int block, Int8Acts packed, ActQ8* quantized);

    /// <summary>
    /// Packs <paramref name="n"/> tokens into int8 activation panels (the last panels padding) and checks every block's
    /// 32 quants against the scalar quantizer of its token (Q8_0, or Q8_K when <paramref name="q8k"/>), zeros for
    /// padding; <paramref name="check"/> then checks the block's scales and sums (<c>quantized</c> is null for padding).
    /// Twice: tokens quantized while packed (x's rows), then from x's rows quantized once (<see cref="Int8Panels.Quantize"/>)
    /// packed through an index that takes rows out of order, some twice, with a padding token (−1) among them, as
    /// <see cref="ExpertGemm"/> packs an MoE layer's experts.
    /// </summary>
    private static void ForEachPackedBlock(float[] x, int n, int cols, int panel, int panels, bool halfSums, bool q8k, PackedBlockCheck check)
    {
        int nb = cols / 32, tokens = n + 3;   // from rows: three more tokens than rows (panels * panel ≥ n + panel)
        var mem = new byte[ActQ8.BytesFor(cols) + 64];
        var index = new int[panels * panel];
        for (int t = 0; t < index.Length; t++) index[t] = t == 1 || t >= tokens ? -1 : (3 * t + 2) % n;
        var src = new nint[n];
        fixed (float* px = x)
        fixed (byte* am = mem)
        fixed (int* pi = index)
        {
            for (int r = 0; r < n; r++) src[r] = (nint)(px + (long)r * cols);
            foreach (bool fromRows in new[] { false, true })
            {
                Int8Acts packed;
                if (!fromRows) packed = Int8Panels.Pack(px, n, cols, panel, panels, halfSums, q8k);
                else fixed (nint* ps = src) packed = Int8Panels.Pack(Int8Panels.Quantize((float**)ps, n, cols, q8k), pi, panels * panel, panel, panels, halfSums);
                var a = ActQ8.At((byte*)(((nint)am + 63) & ~63), cols);
                a.Nib = null;
                for (int t = 0; t < panels * panel; t++)
                {
                    int row = fromRows ? index[t] : t < n ? t : -1;   // the token's row of x, −1 for padding
                    if (row >= 0 && q8k) ActQ8.QuantizeQ8_KScalar(px + (long)row * cols, &a);
                    else if (row >= 0) ActQ8.QuantizeQ8_0Scalar(px + (long)row * cols, &a);
                    int p = t / panel, j = t % panel;
                    for (int b = 0; b < nb; b++)
                    {
                        var at = packed.At((long)p * nb + b);
                        for (int k = 0; k < 32; k++)
                        {
                            sbyte expect = row >= 0 ? a.Q[32 * b + k] : (sbyte)0;
                            sbyte got = at.Q[4 * panel * (k / 4) + 4 * j + k % 4];
                            Assert.True(expect == got, $"panel {panel} token {t} (row {row}, from rows: {fromRows}) block {b} k {k}: {got} vs {expect}");
                        }
                        check(t, j, b, at, row >= 0 ? &a : null);
                    }
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(Int8Formats))]
    public void Every_int8_micro_kernel_matches_the_integer_reference(DType t)
    {
        var (rows, cols) = Shape(t);
        using var w = TestData.Matrix(t, TestData.Gaussian(rows * cols, 23 + (int)t, 0.05f), rows, cols);
        var deq = Dequantize.Matrix(w);
        var kernels = Int8Kernels(t);
        // Q8_0's own GEMM (signed weights read in the interleaved layout, one vpdpbusd / sdot per 4 bytes)
        if (t == DType.Q8_0 && System.Runtime.Intrinsics.X86.AvxVnni.IsSupported) kernels.Add(("q8-vnni", (nint)(delegate*<WeightMatrix, float*, float*, int, void>)&GemmQ8.Vnni, false));
        if (t == DType.Q8_0 && KernelInfo.Available.Contains(KernelPath.NeonDp)) kernels.Add(("q8-neon-dp", (nint)(delegate*<WeightMatrix, float*, float*, int, void>)&GemmQ8.Neon, false));
        // n = 37 once more from the interleaved copy of the decode kernels, which the tiles read where it exists
        foreach (int n in Interleave.Supports(t) ? new[] { 1, 13, 37, -37 } : [1, 13, 37])
        {
            if (n < 0) Assert.True(Interleave.Attach(w, KernelPath.Scalar) > 0);
            int nt = Math.Abs(n);
            var x = TestData.Gaussian(nt * cols, nt + (int)t);
            var expect = new double[nt * rows];
            GemmReference.Int8(w, x, expect, nt);
            var expectQ8K = new double[nt * rows];   // Q4_K or Q6_K against Q8_K activations, where a kernel takes that path
            if (kernels.Exists(k => k.Q8K)) GemmReference.KQ8_K(w, x, expectQ8K, nt);
            foreach (var (name, run, q8k) in kernels)
            {
                var y = new float[nt * rows + 1];
                y[^1] = 12345f;
                fixed (float* px = x, py = y) ((delegate*<WeightMatrix, float*, float*, int, void>)run)(w, px, py, nt);
                Assert.Equal(12345f, y[^1]);
                for (int tk = 0; tk < nt; tk++)
                for (int r = 0; r < rows; r++)
                {
                    // Integer block sums are exact in both; only the float scaling and accumulation order differ.
                    double scale = 0;
                    for (int k = 0; k < cols; k++) scale += Math.Abs((double)deq[r * cols + k] * x[tk * cols + k]);
                    double got = y[tk * rows + r], exp = (q8k ? expectQ8K : expect)[tk * rows + r], tol = 2e-6 * scale + 1e-7;
                    Assert.True(Math.Abs(got - exp) <= tol, $"{t} {name} n={n} token {tk} row {r}: {got} vs integer reference {exp} (tolerance {tol:G3})");
                }
            }
        }
    }

    /// <summary>The int8 GEMMs of <paramref name="t"/> this machine (or instruction-set configuration) runs.</summary>
    /// <remarks>Q8K: whether the kernel multiplies <paramref name="t"/> against Q8_K activations (<see cref="IInt8Micro.UsesQ8K"/>).</remarks>
    private static List<(string Name, nint Run, bool Q8K)> Int8Kernels(DType t)
    {
        var kernels = new List<(string Name, nint Run, bool Q8K)>();
        if (KernelInfo.Available.Contains(KernelPath.Avx512) && X86.GemmInt8Avx512.Supports(t)) kernels.Add(("avx512", (nint)(delegate*<WeightMatrix, float*, float*, int, void>)&GemmInt8<X86.GemmInt8Avx512>.Run, X86.GemmInt8Avx512.UsesQ8K(t)));
        if (KernelInfo.Available.Contains(KernelPath.Avx2) && X86.GemmInt8Avx2.Supports(t)) kernels.Add(("avx2", (nint)(delegate*<WeightMatrix, float*, float*, int, void>)&GemmInt8<X86.GemmInt8Avx2>.Run, X86.GemmInt8Avx2.UsesQ8K(t)));
        if (KernelInfo.Available.Contains(KernelPath.NeonDp) && Arm.GemmInt8Neon.Supports(t)) kernels.Add(("neon-dp", (nint)(delegate*<WeightMatrix, float*, float*, int, void>)&GemmInt8<Arm.GemmInt8Neon>.Run, Arm.GemmInt8Neon.UsesQ8K(t)));
        return kernels;
    }

    /// <summary>
    /// Q4_K's integer tile (the Q8_K path: 6-bit scales and mins kept as integers) against <see cref="Dequantize"/>:
    /// (d·sc)·q − dmin·m rebuilt from it in Dequantize's float operations equals its values bit for bit, from the
    /// stored rows and from the interleaved copy; random block bytes, so every 6-bit scale and min value occurs.
    /// </summary>
    [Fact]
    public void Q4_K_integer_tile_unpack_equals_Dequantize_bit_for_bit()
    {
        const int rows = 37, cols = 768;
        using var w = KQuantsTests.RandomBlocks(DType.Q4_K, rows, cols, 41);
        var q = new byte[256];
        var scales = new int[8];
        var mins = new float[8];
        var expect = new float[cols];
        fixed (byte* pq = q)
        fixed (int* ps = scales)
        fixed (float* pm = mins)
        foreach (bool interleaved in new[] { false, true })
        {
            if (interleaved) Assert.True(Interleave.Attach(w, KernelPath.Scalar) > 0);
            for (int r = 0; r < rows; r++)
            {
                Dequantize.RowOf(w, r, expect);
                for (int sb = 0; sb < cols / 256; sb++)
                {
                    Array.Clear(mins);
                    Int8Tiles.UnpackQ4_K(w, r, sb, pq, ps, pm);
                    float d = mins[4], dmin = -mins[5];
                    for (int k = 0; k < 256; k++)
                    {
                        int j = k / 32, sc = scales[j] & 0xFFFF, mn = (BitConverter.SingleToInt32Bits(mins[j / 2]) >> (16 * (j % 2))) & 0xFFFF;
                        Assert.Equal(sc * 0x10001, scales[j]);
                        Assert.InRange(sc, 0, 63); Assert.InRange(mn, 0, 63); Assert.InRange(q[k], (byte)0, (byte)15);
                        float dj = d * sc, mj = dmin * mn, got = dj * q[k] - mj;
                        Assert.True(expect[256 * sb + k] == got,
                            $"{(interleaved ? "interleaved" : "stored")} row {r} col {256 * sb + k}: unpacked {got} vs Dequantize {expect[256 * sb + k]}");
                    }
                }
            }
        }
    }

    /// <summary>
    /// The Q8_K mode of the activation packer (Q4_K's int8 GEMM) against <see cref="ActQ8.QuantizeQ8_KScalar"/>
    /// (ggml's quantize_row_q8_K_ref): the same quant bytes in panel order, the scale per 256 in each of its blocks, and
    /// Σq per sub-block of 32 (two of the reference's sums per 16) in int16 pairs in the first 4 blocks' slots.
    /// </summary>
    [Theory]
    [InlineData(4)]
    [InlineData(8)]
    [InlineData(16)]
    public void Q8_K_activation_panels_hold_the_bytes_of_the_scalar_Q8_K_quantizer(int panel)
    {
        int cols = 768, n = 2 * panel + 3, panels = (n + panel - 1) / panel + 1;   // one all-padding panel
        var x = TestData.Gaussian(n * cols, 7 * panel);
        for (int k = 0; k < 256; k++) x[cols + 256 + k] = 0;   // an all-zero super-block (d = 0)
        for (int k = 0; k < 256; k++) x[2 * cols + k] = k % 2 == 0 ? 1 : -1;   // ±127: the extreme sums
        ForEachPackedBlock(x, n, cols, panel, panels, halfSums: false, q8k: true, (t, j, b, at, a) =>
        {
            Assert.Equal(a != null ? a->D[b / 8] : 0f, at.D[j]);
            int sub = b % 8, pair = ((int*)at.S)[j];
            if (sub >= 4) { Assert.Equal(0, pair); return; }
            short* bs = a != null ? a->BSums + 16 * (b / 8) + 4 * sub : null;
            Assert.Equal(a != null ? bs[0] + bs[1] : 0, (short)pair);
            Assert.Equal(a != null ? bs[2] + bs[3] : 0, pair >> 16);
        });
    }

    /// <summary>
    /// Q4_0's sums start at −8·Σq_x (<see cref="IInt8Ops{TX, TAcc, TF}.Offset"/>) and end at Σ(q − 8)·q_x in int16 lanes:
    /// at q = 0 or 15 and q_x = ±127 every lane meets its largest magnitude (16·8·127), and with powers of two for
    /// d_w and d_x every float step is exact, so every int8 GEMM equals the integer reference, from the stored rows
    /// and from the interleaved copy.
    /// </summary>
    [Fact]
    public void Q4_0_gemm_is_exact_at_the_bounds_of_its_integer_sums()
    {
        const int rows = 67, cols = 544, nb = cols / 32;
        var buf = new NativeBuffer((long)rows * nb * 18);
        for (int r = 0; r < rows; r++)
        for (int b = 0; b < nb; b++)
        {
            byte* block = buf.Pointer + ((long)r * nb + b) * 18;   // ggml block_q4_0: half d, 16 bytes (k in the low nibble, k + 16 in the high)
            *(Half*)block = (Half)(1f / (1 << r % 3));
            for (int k = 0; k < 16; k++)
                block[2 + k] = (r % 3) switch { 0 => 0x00, 1 => 0xFF, _ => (k + b) % 2 == 0 ? (byte)0x0F : (byte)0xF0 };
        }
        using var w = new WeightMatrix("q4_0-extremes", DType.Q4_0, rows, cols, buf.Pointer, null, buf);
        const int n = 37;
        var x = new float[n * cols];
        for (int t = 0; t < n; t++)
        for (int k = 0; k < cols; k++) x[t * cols + k] = ((k / 32 + t) % 2 == 0 ? 127f : -127f) / (1 << t % 4);   // q = ±127, d = 2^-(t%4)
        var expect = new double[n * rows];
        GemmReference.Int8(w, x, expect, n);
        foreach (bool interleaved in new[] { false, true })
        {
            if (interleaved) Assert.True(Interleave.Attach(w, KernelPath.Scalar) > 0);
            foreach (var (name, run, _) in Int8Kernels(DType.Q4_0))
            {
                var y = new float[n * rows];
                fixed (float* px = x, py = y) ((delegate*<WeightMatrix, float*, float*, int, void>)run)(w, px, py, n);
                for (int i = 0; i < y.Length; i++)
                    Assert.True(y[i] == expect[i], $"{name} interleaved={interleaved} token {i / rows} row {i % rows}: {y[i]} vs integer reference {expect[i]}");
            }
        }
    }

    /// <summary>
    /// Q4_K's (and Q5_K's, 4 groups per int16 sum) int8 GEMM at the bounds of its integer sums (the design's overflow budget: 8 × 2·15·127 per int16 lane,
    /// 8 sub-blocks × 63 × 32·15·127 per int32): every q = 15, every scale and min 63, activations all ±1 (quantized to
    /// ±127) or one sign per sub-block, on every int8 GEMM of this configuration that takes the Q8_K path. The products are then known
    /// exactly: each weight is d·63·15 − dmin·63, and each Q8_K quant is exactly ∓127·x/max.
    /// </summary>
    [Theory]
    [InlineData(DType.Q4_K)]
    [InlineData(DType.Q5_K)]
    public void Q4_K_gemm_is_exact_at_the_bounds_of_its_integer_sums(DType type)
    {
        const int rows = 12, cols = 512, n = 37;
        long bytes = type.ByteCount((long)rows * cols);
        int blockBytes = type.BlockBytes();
        var buf = new NativeBuffer(bytes);
        for (int i = 0; i < bytes / blockBytes; i++)
        {
            // every 6-bit scale and min 63 (get_scale_min_k4), every nibble 15 (Q5_K: every fifth bit set, q = 31:
            // 4 groups' pairs of 2·31·127 fill its int16 sums to 31,496); d and dmin first in both layouts
            byte* b = buf.Pointer + (long)i * blockBytes;
            new Span<byte>(b, blockBytes).Fill(0xFF);
            int r = i / (cols / 256);
            ((Half*)b)[0] = (Half)(r % 3 == 0 ? 1.0 : 0.25 * (r + 1));
            ((Half*)b)[1] = (Half)(r % 4 == 1 ? 0.0 : 0.5 * (r % 5));   // a row without mins, and rows with both terms
        }
        using var w = new WeightMatrix("k-bounds", type, rows, cols, buf.Pointer, null, buf);
        var x = new float[n * cols];
        for (int t = 0; t < n; t++)
        for (int k = 0; k < cols; k++)
            x[t * cols + k] = (t % 3) switch { 0 => 1f, 1 => -1f, _ => (k / 32 + t) % 2 == 0 ? 0.5f : -0.5f };
        var reference = new double[n * rows];
        GemmReference.Q4_KQ8_K(w, x, reference, n);
        Assert.True(type != DType.Q5_K || !KernelInfo.Available.Contains(KernelPath.Avx512) || Int8Kernels(type).Exists(k => k.Q8K), "AVX-512 takes Q5_K on the Q8_K path");
        AssertQ8KProducts(w, x, n, reference, interleavedToo: Interleave.Supports(type));   // Q4_K: the lane tiles too
    }

    /// <summary>
    /// Q6_K's int8 GEMM against Q8_K activations (AVX-512) at the bounds of its integer sums: every q = 63 (w = d·sc·31)
    /// and activations all ±1 (quantized to ∓127), so each int16 lane of two vpmaddubsw meets 4·63·127 = 32004 of its
    /// 32767, and the scales at the int8 extremes (127, −128, or alternating per sub-block): each row's int32 sums are then
    /// 63·127 times a sum of ±127·(±128 or 127) per element. Against the exact products of the dequantized weights, on
    /// every int8 GEMM of this configuration that takes the Q8_K path, from the stored rows and from the interleaved copy.
    /// </summary>
    [Fact]
    public void Q6_K_gemm_is_exact_at_the_bounds_of_its_integer_sums()
    {
        const int rows = 12, cols = 512, n = 37;
        long bytes = DType.Q6_K.ByteCount((long)rows * cols);
        var buf = new NativeBuffer(bytes);
        var blocks = new Span<BlockQ6_K>(buf.Pointer, (int)(bytes / sizeof(BlockQ6_K)));
        for (int i = 0; i < blocks.Length; i++)
        {
            fixed (BlockQ6_K* b = &blocks[i])
            {
                new Span<byte>(b, sizeof(BlockQ6_K)).Fill(0xFF);   // every 6-bit q = 63
                int r = i / (cols / 256);
                for (int j = 0; j < 16; j++) b->Scales[j] = (r % 3) switch { 0 => 127, 1 => -128, _ => j % 2 == 0 ? (sbyte)127 : (sbyte)-128 };
                b->D = (Half)(r % 2 == 0 ? 1.0 / 64 : 0.125 * (r + 1));
            }
        }
        using var w = new WeightMatrix("q6_k-bounds", DType.Q6_K, rows, cols, buf.Pointer, null, buf);
        var x = new float[n * cols];
        for (int t = 0; t < n; t++)
        for (int k = 0; k < cols; k++)
            x[t * cols + k] = (t % 3) switch { 0 => 1f, 1 => -1f, _ => (k / 16 + t) % 2 == 0 ? 0.5f : -0.5f };
        var reference = new double[n * w.Rows];
        GemmReference.Q6_KQ8_K(w, x, reference, n);
        AssertQ8KProducts(w, x, n, reference, interleavedToo: true);
    }

    /// <summary>
    /// Every int8 GEMM of this configuration that takes <paramref name="w"/>'s type on the Q8_K path equals the exact
    /// products of the dequantized weights with x (within 1e-6 of Σ|w·x|), and so does the integer reference (within
    /// 1e-7: it differs from them only by d_x = 1/iscale rounded to float); from the stored rows, and from the
    /// interleaved copy too where <paramref name="interleavedToo"/>.
    /// </summary>
    private static void AssertQ8KProducts(WeightMatrix w, float[] x, int n, double[] reference, bool interleavedToo)
    {
        int rows = w.Rows, cols = w.Cols;
        var deq = Dequantize.Matrix(w);
        var kernels = Int8Kernels(w.Type).Where(k => k.Q8K).ToList();
        foreach (bool interleaved in interleavedToo ? new[] { false, true } : [false])
        {
            if (interleaved) Assert.True(Interleave.Attach(w, KernelPath.Scalar) > 0);
            foreach (var (name, run, _) in kernels)
            {
                var y = new float[n * rows];
                fixed (float* px = x, py = y) ((delegate*<WeightMatrix, float*, float*, int, void>)run)(w, px, py, n);
                for (int t = 0; t < n; t++)
                for (int r = 0; r < rows; r++)
                {
                    double exact = 0, scale = 0;
                    for (int k = 0; k < cols; k++) { exact += (double)deq[r * cols + k] * x[t * cols + k]; scale += Math.Abs((double)deq[r * cols + k] * x[t * cols + k]); }
                    double got = y[t * rows + r], tol = 1e-6 * scale;
                    Assert.True(Math.Abs(reference[t * rows + r] - exact) <= 1e-7 * scale, $"reference token {t} row {r}: {reference[t * rows + r]} vs exact {exact}");
                    Assert.True(Math.Abs(got - exact) <= tol, $"{name} interleaved={interleaved} token {t} row {r}: {got} vs exact {exact} (tolerance {tol:G3})");
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(FloatGemmFormats))]
    public void Float_gemm_matches_the_naive_gemm_on_every_path(DType t)
    {
        var (rows, cols) = Shape(t);
        using var w = TestData.Matrix(t, TestData.Gaussian(rows * cols, 29 + (int)t, 0.05f), rows, cols);
        var deq = Dequantize.Matrix(w);
        foreach (int n in new[] { 1, 17, 37 })
        {
            var x = TestData.Gaussian(n * cols, 31 * n + (int)t);
            var expect = new float[n * rows];
            GemmReference.Float(w, x, expect, n);
            foreach (var path in KernelInfo.Available)
            {
                if (path == KernelPath.Scalar) continue;   // no tiled GEMM on the scalar path
                var y = new float[n * rows + 1];
                y[^1] = 12345f;
                fixed (float* px = x, py = y) Gemm.Run(w, px, py, n, path);
                Assert.Equal(12345f, y[^1]);
                for (int tk = 0; tk < n; tk++)
                for (int r = 0; r < rows; r++)
                {
                    double scale = 0;
                    for (int k = 0; k < cols; k++) scale += Math.Abs((double)deq[r * cols + k] * x[tk * cols + k]);
                    // Two float32 sums of the same products in different orders.
                    double got = y[tk * rows + r], exp = expect[tk * rows + r], tol = 4e-7 * Math.Sqrt(cols) * scale + 1e-7;
                    Assert.True(Math.Abs(got - exp) <= tol, $"{t} {KernelInfo.Name(path)} n={n} token {tk} row {r}: {got} vs naive {exp} (tolerance {tol:G3})");
                }
            }
        }
    }
}
