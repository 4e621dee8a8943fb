using System.Numerics.Tensors;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using DeepSeekCpu.Threading;
using DeepSeekCpu.Weights;
using Q8Vnni = DeepSeekCpu.Kernels.GemmQ8<DeepSeekCpu.Kernels.X86.GemmQ8Vnni, System.Runtime.Intrinsics.Vector256<sbyte>,
    System.Runtime.Intrinsics.Vector256<int>, System.Runtime.Intrinsics.Vector256<float>>;
using Q8Neon = DeepSeekCpu.Kernels.GemmQ8<DeepSeekCpu.Kernels.Arm.GemmQ8Neon, System.Runtime.Intrinsics.Vector128<sbyte>,
    System.Runtime.Intrinsics.Vector128<int>, System.Runtime.Intrinsics.Vector128<float>>;
using Avx512Tail = DeepSeekCpu.Kernels.ExpertGemm.Int8Tail<DeepSeekCpu.Kernels.X86.GemmInt8Avx512, System.Runtime.Intrinsics.Vector512<sbyte>,
    System.Runtime.Intrinsics.Vector512<short>, System.Runtime.Intrinsics.Vector512<float>>;
using Avx512OnePanel = DeepSeekCpu.Kernels.GemmInt8<DeepSeekCpu.Kernels.ExpertGemm.OnePanel<DeepSeekCpu.Kernels.X86.GemmInt8Avx512,
    System.Runtime.Intrinsics.Vector512<sbyte>, System.Runtime.Intrinsics.Vector512<short>, System.Runtime.Intrinsics.Vector512<float>>>.Int8Tile;
using NeonTail = DeepSeekCpu.Kernels.ExpertGemm.Int8Tail<DeepSeekCpu.Kernels.Arm.GemmInt8Neon, System.Runtime.Intrinsics.Vector128<sbyte>,
    System.Runtime.Intrinsics.Vector128<int>, System.Runtime.Intrinsics.Vector128<float>>;
using NeonOnePanel = DeepSeekCpu.Kernels.GemmInt8<DeepSeekCpu.Kernels.ExpertGemm.OnePanel<DeepSeekCpu.Kernels.Arm.GemmInt8Neon,
    System.Runtime.Intrinsics.Vector128<sbyte>, System.Runtime.Intrinsics.Vector128<int>, System.Runtime.Intrinsics.Vector128<float>>>.Int8Tile;

namespace DeepSeekCpu.Kernels;

/// <summary>
/// Several MLP halves over their own tokens, run by <see cref="ExpertGemm.Run(ExpertBatch)"/>: either the first half of
/// a SwiGLU MLP, h_i[m_i, inter_i] = silu(x_i W1_iᵀ) ⊙ (x_i W3_iᵀ) (model.py Expert.forward before w2), where x_i is
/// the rows <c>rows_i</c> of one input x[*, dim] (an MoE layer's routed experts over the tokens that chose them; the
/// shared experts or a dense MLP over every token), or a plain product y_i[m_i, rows_i] = x_i W_iᵀ (the second half,
/// w2, of those MLPs over their hidden rows; attention's projections of one input, which then quantize it once). Like <see cref="MatMulBatch"/>, the batch holds only the addresses of x,
/// the row list, h and u: the caller keeps them alive and pinned until the call returns (the models' pass buffers); a
/// pinned array that nothing references is still collected, and its memory handed to the next allocation.
/// </summary>
internal sealed unsafe class ExpertBatch
{
    internal WeightMatrix[] W1 = new WeightMatrix[16];
    internal WeightMatrix?[] W3 = new WeightMatrix?[16];   // null: a plain product (H = x W1ᵀ, no U)
    internal nint[] X = new nint[16], Rows = new nint[16], H = new nint[16], U = new nint[16];
    internal int[] M = new int[16];

    /// <summary>MLPs added since <see cref="Clear"/>.</summary>
    public int Count { get; private set; }

    public void Clear()
    {
        Array.Clear(W1, 0, Count); Array.Clear(W3, 0, Count);
        Count = 0;
    }

    /// <summary>
    /// Adds the plain product y[m, w.Rows] = x[m, w.Cols] · wᵀ over the first m rows of <paramref name="x"/> (an MLP's
    /// down projection over its hidden rows); both must stay alive and pinned until the call returns.
    /// </summary>
    public void Add(WeightMatrix w, ReadOnlySpan<float> x, int m, Span<float> y)
    {
        if (x.Length < (long)m * w.Cols) throw new ArgumentException($"{w.Name}: input has {x.Length} values, expected {m} x {w.Cols}");
        if (y.Length < (long)m * w.Rows) throw new ArgumentException($"{w.Name}: output has {y.Length} values, expected {m} x {w.Rows}");
        Append(w, null, x, [], m, y, []);
    }

    /// <summary>
    /// Adds h[m, w1.Rows] = silu(x_r W1ᵀ) ⊙ (x_r W3ᵀ) over the rows r = <paramref name="rows"/>[0..m) of
    /// <paramref name="x"/> (the first m rows when <paramref name="rows"/> is empty). <paramref name="u"/> ([m, w1.Rows])
    /// is scratch where the products run unfused. All of them must stay alive and pinned until the call returns.
    /// </summary>
    public void Add(WeightMatrix w1, WeightMatrix w3, ReadOnlySpan<float> x, ReadOnlySpan<int> rows, int m, Span<float> h, Span<float> u)
    {
        if (w3.Rows != w1.Rows || w3.Cols != w1.Cols) throw new ArgumentException($"{w3.Name}: shape differs from {w1.Name}");
        if (!rows.IsEmpty && rows.Length < m) throw new ArgumentException($"{w1.Name}: {rows.Length} row indices for {m} rows");
        if (rows.IsEmpty && x.Length < (long)m * w1.Cols) throw new ArgumentException($"{w1.Name}: input has {x.Length} values, expected {m} x {w1.Cols}");
        if (h.Length < (long)m * w1.Rows || u.Length < (long)m * w1.Rows) throw new ArgumentException($"{w1.Name}: output is smaller than {m} x {w1.Rows}");
        foreach (int r in rows[..(rows.IsEmpty ? 0 : m)])
            if (r < 0 || (long)(r + 1) * w1.Cols > x.Length) throw new ArgumentException($"{w1.Name}: row {r} is outside the input");
        Append(w1, w3, x, rows, m, h, u);
    }

    private void Append(WeightMatrix w1, WeightMatrix? w3, ReadOnlySpan<float> x, ReadOnlySpan<int> rows, int m, Span<float> h, Span<float> u)
    {
        if (Count == W1.Length)
        {
            int c = Count * 2;
            Array.Resize(ref W1, c); Array.Resize(ref W3, c); Array.Resize(ref X, c); Array.Resize(ref Rows, c);
            Array.Resize(ref H, c); Array.Resize(ref U, c); Array.Resize(ref M, c);
        }
        W1[Count] = w1; W3[Count] = w3; M[Count] = m;
        X[Count] = (nint)Unsafe.AsPointer(ref MemoryMarshal.GetReference(x));
        Rows[Count] = rows.IsEmpty ? 0 : (nint)Unsafe.AsPointer(ref MemoryMarshal.GetReference(rows));
        H[Count] = (nint)Unsafe.AsPointer(ref MemoryMarshal.GetReference(h));
        U[Count] = u.IsEmpty ? 0 : (nint)Unsafe.AsPointer(ref MemoryMarshal.GetReference(u));
        Count++;
    }
}

/// <summary>
/// The entries of an <see cref="ExpertBatch"/>: SwiGLU hidden rows, or the down products over them (MoE prefill: each
/// routed expert over the tokens that chose it, the shared experts over all of them). Where <see cref="MatMul.Plan"/>
/// picks the int8 GEMM for an entry, its products (gate and up, or the down product alone) are fused with the others':
/// <list type="bullet">
/// <item>each input row is quantized once (<see cref="Int8Panels.Quantize"/>: a token chosen by k routed experts and
/// taken by the shared experts is one row, the same bytes for every expert), then the rows of every fused MLP are
/// packed from those into one buffer, each MLP's rows padded to whole micro-kernel token steps
/// (<see cref="Int8Panels"/>), so gate and up share one packing;</item>
/// <item>one pool dispatch runs every (MLP, block of 64 hidden rows) item: per item the W1 rows and then the W3 rows
/// are unpacked tile by tile and multiplied with that MLP's tokens (the int8 GEMM's own tile and micro-kernel,
/// <see cref="GemmInt8{TMicro}.Int8Tile"/>, or the Q8_0 GEMM's, <see cref="GemmQ8{TOps, TX, TAcc, TF}.Q8Tile"/>, as
/// <see cref="TiledGemm{TKernel}"/> runs them), and silu(g)·u is formed
/// while the two accumulators are written back, so g and u never go to memory (a down product's accumulator is
/// transposed into its output). Items of all MLPs share the dispatch, so the threads finish together instead of once
/// per expert.</item>
/// </list>
/// The others (few tokens: the matrix-vector kernels; formats without an int8 GEMM on the path), and the tokens past
/// a fused entry's whole micro-kernel steps where its matrices have a multi-token GEMV body
/// (<see cref="MatMul.GemmTokens(WeightMatrix, int, KernelPath)"/>, as a plain product splits them), run as one <see cref="MatMulBatch"/> followed
/// by <see cref="Ops.SwiGlu"/>. Both give the values of
/// <see cref="MatMul.Multiply(WeightMatrix, ReadOnlySpan{float}, Span{float}, int)"/> then <see cref="Ops.SwiGlu"/>.
/// </summary>
internal static unsafe class ExpertGemm
{
    private const int RowBlock = TiledGemm<GemmInt8<X86.GemmInt8Avx512>.Int8Tile>.RowBlock;
    private const int KBlock = TiledGemm<GemmInt8<X86.GemmInt8Avx512>.Int8Tile>.KBlock;
    private const int CtPad = TiledGemm<GemmInt8<X86.GemmInt8Avx512>.Int8Tile>.CtPad;

    [ThreadStatic] private static byte[]? _rest;
    [ThreadStatic] private static MatMulBatch? _batch;
    [ThreadStatic] private static int[]? _fused, _tokens;

    public static void Run(ExpertBatch b) => Run(b, KernelInfo.Path);

    /// <summary>As <see cref="Run(ExpertBatch)"/> on a chosen path (one of <see cref="KernelInfo.Available"/>).</summary>
    internal static void Run(ExpertBatch b, KernelPath path)
    {
        if (b.Count == 0) return;
        if (_fused is not { } fused || fused.Length < b.Count) { _fused = fused = new int[Math.Max(16, 2 * b.Count)]; _tokens = new int[fused.Length]; }
        int[] tokens = _tokens!;   // per entry: its first tokens taken by the fused GEMM (the rest go to the unfused batch)
        int nFused = 0;
        MatMulKernel kind = MatMulKernel.Gemv;
        for (int i = 0; i < b.Count; i++)
        {
            tokens[i] = 0;
            int m = b.M[i];
            if (m == 0) continue;
            // the kernel MatMul.Multiply would run for each product (Q8_0 where VNNI or DotProd exist its own GEMM,
            // GemmQ8; float32-activation matrices the float GEMM, unfused), over the tokens it would give the GEMM
            // (whole micro-kernel steps where the matrix has a multi-token GEMV body: a routed expert's few dozen
            // tokens would otherwise pad a step, 48 -> 64); one packing serves one input width (the shared experts'
            // down product, twice as wide as a routed expert's, runs alone)
            var k = MatMul.Plan(b.W1[i], m, path);
            int gemm = MatMul.GemmTokens(b.W1[i], m, k, path);
            if (k is MatMulKernel.GemmInt8Avx512 or MatMulKernel.GemmInt8Avx2 or MatMulKernel.GemmInt8Neon
                    or MatMulKernel.GemmQ8Vnni or MatMulKernel.GemmQ8Neon
                && gemm > 0
                && (b.W3[i] is not { } w3 || MatMul.Plan(w3, m, path) == k && w3.Type == b.W1[i].Type && MatMul.GemmTokens(w3, m, k, path) == gemm)
                && (nFused == 0 || k == kind && b.W1[i].Cols == b.W1[fused[0]].Cols))
            {
                kind = k;
                fused[nFused++] = i;
                tokens[i] = gemm;
            }
        }
        // the fused GEMM keeps the candidates its one packing serves (Q8_K or Q8_0 style, by its micro-kernel's
        // IInt8Micro.UsesQ8K) and leaves the others to the unfused batch
        switch (nFused > 0 ? kind : MatMulKernel.Gemv)
        {
            case MatMulKernel.Gemv: break;
            case MatMulKernel.GemmInt8Avx512: Fused<GemmInt8<X86.GemmInt8Avx512>.Int8Tile, Avx512OnePanel, Avx512Tail>.Run(b, fused, nFused, tokens); break;
            case MatMulKernel.GemmInt8Avx2: Fused<GemmInt8<X86.GemmInt8Avx2>.Int8Tile, GemmInt8<X86.GemmInt8Avx2>.Int8Tile, NoTail<GemmInt8<X86.GemmInt8Avx2>.Int8Tile, Int8Pack<X86.GemmInt8Avx2>>>.Run(b, fused, nFused, tokens); break;
            case MatMulKernel.GemmInt8Neon: Fused<GemmInt8<Arm.GemmInt8Neon>.Int8Tile, NeonOnePanel, NeonTail>.Run(b, fused, nFused, tokens); break;
            case MatMulKernel.GemmQ8Vnni: Fused<Q8Vnni.Q8Tile, Q8Vnni.Q8Tile, NoTail<Q8Vnni.Q8Tile, Q8Vnni.Packer>>.Run(b, fused, nFused, tokens); break;
            default: Fused<Q8Neon.Q8Tile, Q8Neon.Q8Tile, NoTail<Q8Neon.Q8Tile, Q8Neon.Packer>>.Run(b, fused, nFused, tokens); break;
        }
        // the unfused batch takes each entry's tokens from tokens[i] on: a fused entry's GEMV tail, all of the others'
        RunUnfused(b, tokens, path);
    }

    /// <summary>
    /// Every entry's tokens from <paramref name="from"/>[i] on (all of an unfused entry's, the GEMV's tail of a fused
    /// one) as one batch of products (gate and up, then SwiGLU), each run as
    /// <see cref="MatMul.Multiply(WeightMatrix, ReadOnlySpan{float}, Span{float}, int)"/> runs it.
    /// </summary>
    private static void RunUnfused(ExpertBatch b, int[] from, KernelPath path)
    {
        // rows to gather first (one row is read in place: decoding one token, every expert reads x itself, and the
        // matrix-vector batch quantizes an input shared by several products once)
        long floats = 0;
        for (int i = 0; i < b.Count; i++)
            if (b.Rows[i] != 0 && b.M[i] - from[i] > 1) floats += (long)(b.M[i] - from[i]) * b.W1[i].Cols;
        float* gather = (float*)Scratch.Get(ref _rest, floats * sizeof(float));
        var batch = _batch ??= new MatMulBatch();
        batch.Clear(0);
        bool any = false;
        for (int i = 0; i < b.Count; i++)
        {
            int t0 = from[i], m = b.M[i] - t0, cols = b.W1[i].Cols, inter = b.W1[i].Rows;
            if (m == 0) continue;
            float* x = (float*)b.X[i];
            int* rows = (int*)b.Rows[i];
            if (rows == null) x += (long)t0 * cols;
            else if (m == 1) x += (long)rows[t0] * cols;
            else
            {
                Gather(x, rows + t0, m, cols, gather);
                x = gather;
                gather += (long)m * cols;
            }
            batch.Add(b.W1[i], x, (float*)b.H[i] + (long)t0 * inter, m);
            if (b.W3[i] is { } w3) batch.Add(w3, x, (float*)b.U[i] + (long)t0 * inter, m);
            any = true;
        }
        if (!any) return;
        MatMul.Multiply(batch, path);
        batch.Clear(0);
        for (int i = 0; i < b.Count; i++)
        {
            int t0 = from[i];
            if (b.W3[i] == null || b.M[i] == t0) continue;
            int inter = b.W1[i].Rows;
            long len = (long)(b.M[i] - t0) * inter;
            Ops.SwiGlu(new Span<float>((float*)b.H[i] + (long)t0 * inter, checked((int)len)), new ReadOnlySpan<float>((float*)b.U[i] + (long)t0 * inter, (int)len));
        }
    }

    /// <summary>dst[i, :] = x[rows[i], :] for i &lt; m.</summary>
    private static void Gather(float* x, int* rows, int m, int cols, float* dst)
    {
        for (int i = 0; i < m; i++)
            new ReadOnlySpan<float>(x + (long)rows[i] * cols, cols).CopyTo(new Span<float>(dst + (long)i * cols, cols));
    }

    /// <summary>The activations' packing of the int8 GEMM's tile (<see cref="GemmInt8{TMicro}.Run"/>'s).</summary>
    private readonly struct Int8Pack<TMicro> : ITilePack<GemmInt8<TMicro>.Int8Tile> where TMicro : IInt8Micro
    {
        public static GemmInt8<TMicro>.Int8Tile Pack(in ActQ8Rows rows, int* index, int n, DType t) =>
            new(Int8Panels.Pack(rows, index, n, TMicro.Panel, n / TMicro.Panel, Int8Tiles.ScalesPerBlock(t) == 2));
        public static bool UsesQ8K(DType t) => TMicro.UsesQ8K(t);
    }

    /// <summary>
    /// A tile kernel <typeparamref name="TTile"/> and a narrower one <typeparamref name="TTail"/> over the same packed
    /// activations, for an entry's last tokens where its matrices have no multi-token GEMV body to take them (no
    /// interleaved copy: --repack off, or memory short; Q4_1): a routed expert has a few dozen tokens, so padding them
    /// to the 32 tokens of a two-panel AVX-512 micro-kernel call wastes a quarter of its products on average
    /// (48 → 64); one panel of 16 at the end halves that. Every token's values are the same either way (the panels are independent lanes).
    /// </summary>
    internal interface ITail<TTile, TTail> where TTile : struct, ITileKernel where TTail : struct, ITileKernel
    {
        /// <summary>The rows <paramref name="index"/>[0..n) of <paramref name="rows"/> packed once for both kernels, as
        /// <see cref="ITilePack{TTile}.Pack"/> (n a multiple of TTail.TokenStep).</summary>
        static abstract (TTile Body, TTail Tail) Pack(in ActQ8Rows rows, int* index, int n, DType t);
        /// <summary>Whether <typeparamref name="TTail"/> multiplies weights of type <paramref name="t"/> (else entries pad to TTile.TokenStep).</summary>
        static abstract bool Covers(DType t);
        /// <summary>Whether weights of type <paramref name="t"/> take Q8_K-style activations (<see cref="ITilePack{TTile}.UsesQ8K"/>).</summary>
        static abstract bool UsesQ8K(DType t);
    }

    /// <summary>No narrower kernel: the tile kernel alone, packed by <typeparamref name="TPack"/>.</summary>
    private readonly struct NoTail<TTile, TPack> : ITail<TTile, TTile> where TTile : struct, ITileKernel where TPack : ITilePack<TTile>
    {
        public static (TTile Body, TTile Tail) Pack(in ActQ8Rows rows, int* index, int n, DType t) { var k = TPack.Pack(rows, index, n, t); return (k, k); }
        public static bool Covers(DType t) => false;
        public static bool UsesQ8K(DType t) => TPack.UsesQ8K(t);
    }

    /// <summary>
    /// The int8 GEMM's tile over two panels per call and over one (<see cref="OnePanel{TMicro, TX, TAcc, TF}"/>), from one
    /// packing. Only for Q4_0 and Q4_1, which every micro-kernel runs through <see cref="Int8Micro4{TOps, TX, TAcc, TF}"/>
    /// (AVX-512's 8-bit formats and Q5_K take its two-panel split kernel).
    /// </summary>
    internal readonly struct Int8Tail<TMicro, TX, TAcc, TF> : ITail<GemmInt8<TMicro>.Int8Tile, GemmInt8<OnePanel<TMicro, TX, TAcc, TF>>.Int8Tile>
        where TMicro : IInt8Micro, IInt8Ops<TX, TAcc, TF> where TX : unmanaged where TAcc : unmanaged where TF : unmanaged
    {
        public static (GemmInt8<TMicro>.Int8Tile Body, GemmInt8<OnePanel<TMicro, TX, TAcc, TF>>.Int8Tile Tail) Pack(in ActQ8Rows rows, int* index, int n, DType t)
        {
            var acts = Int8Panels.Pack(rows, index, n, TMicro.Panel, n / TMicro.Panel, Int8Tiles.ScalesPerBlock(t) == 2);
            return (new(acts), new(acts));
        }

        public static bool Covers(DType t) => t is DType.Q4_0 or DType.Q4_1;
        public static bool UsesQ8K(DType t) => TMicro.UsesQ8K(t);
    }

    /// <summary><typeparamref name="TMicro"/>'s 4-bit micro-kernel with one panel per call (its operators, TokenStep = Panel).</summary>
    internal readonly struct OnePanel<TMicro, TX, TAcc, TF> : IInt8Micro, IInt8Ops<TX, TAcc, TF>
        where TMicro : IInt8Micro, IInt8Ops<TX, TAcc, TF> where TX : unmanaged where TAcc : unmanaged where TF : unmanaged
    {
        public static int Panel => TMicro.Panel;
        public static int TokenStep => TMicro.Panel;
        public static bool Supports(DType t) => t is DType.Q4_0 or DType.Q4_1 && TMicro.Supports(t);
        /// <summary>Q4_0 and Q4_1 take per-32 (Q8_0/Q8_1 style) activations on every instruction set.</summary>
        public static bool UsesQ8K(DType t) => false;

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Micro4<TL>(DType t, in Int8Rows w, int nBlocks, in Int8Acts x, float* c, int ldc, bool first) where TL : struct, ITileLayout =>
            Int8Micro4<OnePanel<TMicro, TX, TAcc, TF>, TX, TAcc, TF>.Run<TL>(t, w, nBlocks, x, c, ldc, first);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static TX Broadcast(byte* w) => TMicro.Broadcast(w);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static TAcc Dot(TAcc acc, TX w, TX x) => TMicro.Dot(acc, w, x);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static TF Scale(TF f, TAcc acc, float dw, float mw, TF dx, TF sx) => TMicro.Scale(f, acc, dw, mw, dx, sx);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static TAcc Offset(int* o) => TMicro.Offset(o);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static TF Scale(TF f, TAcc acc, float dw, TF dx) => TMicro.Scale(f, acc, dw, dx);
    }

    /// <summary>
    /// The fused GEMM with the tile kernel <typeparamref name="TTile"/> (and <typeparamref name="TTail"/> for the last
    /// tokens of entries whose format it covers), its activations packed by <typeparamref name="TPack"/>.
    /// </summary>
    private static class Fused<TTile, TTail, TPack> where TTile : struct, ITileKernel where TTail : struct, ITileKernel where TPack : ITail<TTile, TTail>
    {
        [ThreadStatic] private static Job? _job;
        [ThreadStatic] private static int[]? _rowBase, _rowEnd;
        [ThreadStatic] private static byte[]? _index;

        /// <summary>Runs the first <paramref name="tokens"/>[i] tokens of the entries i = <paramref name="fused"/>[0..nFused)
        /// that take the first one's activation packing (moved to the front in their order); the rest are left to the
        /// caller, their <paramref name="tokens"/>[i] set to 0.</summary>
        public static void Run(ExpertBatch b, int[] fused, int nFused, int[] tokens)
        {
            bool q8k = TPack.UsesQ8K(b.W1[fused[0]].Type);
            int kept = 0;
            for (int j = 0; j < nFused; j++)
                if (TPack.UsesQ8K(b.W1[fused[j]].Type) == q8k) fused[kept++] = fused[j];
                else tokens[fused[j]] = 0;   // left to the caller whole
            nFused = kept;
            int step = TTile.TokenStep, cols = b.W1[fused[0]].Cols;
            var job = _job ??= new Job();
            if (job.Start.Length < nFused + 1) { job.Start = new int[2 * nFused + 1]; job.FirstItem = new int[2 * nFused + 1]; }
            if (_rowBase is not { } rowBase || rowBase.Length < nFused) { _rowBase = rowBase = new int[2 * nFused]; _rowEnd = new int[2 * nFused]; }
            int[] rowEnd = _rowEnd!;
            // Each MLP's tokens from a multiple of the (tail's) token step on, so its tokens fill whole micro-kernel
            // steps. The input rows it reads (its first m, or up to its largest row index) are quantized once into
            // [rowBase, rowEnd) of one list of rows: MLPs over the same x that follow each other in the batch (an MoE
            // layer's routed experts and shared experts) share them, so a token chosen by k experts is quantized once.
            int total = 0, items = 0, maxPad = 0, nRows = 0;
            var packType = b.W1[fused[0]].Type;   // packed for this type (Q6_K's sums per 16 elements, if any, serve the others too)
            for (int j = 0; j < nFused; j++)
            {
                int i = fused[j], m = tokens[i], last = TPack.Covers(b.W1[i].Type) ? TTail.TokenStep : step, pad = (m + last - 1) / last * last;
                job.Start[j] = total; job.FirstItem[j] = items;
                total += pad; items += (b.W1[i].Rows + RowBlock - 1) / RowBlock;
                maxPad = Math.Max(maxPad, pad);
                if (Int8Tiles.ScalesPerBlock(b.W1[i].Type) == 2) packType = b.W1[i].Type;
                int read = m;
                if (b.Rows[i] != 0)
                {
                    read = 0;
                    foreach (int r in new ReadOnlySpan<int>((int*)b.Rows[i], m)) read = Math.Max(read, r + 1);
                }
                rowBase[j] = j > 0 && b.X[i] == b.X[fused[j - 1]] ? rowBase[j - 1] : nRows;
                rowEnd[j] = rowBase[j] + read;
                nRows = Math.Max(nRows, rowEnd[j]);
            }
            job.Start[nFused] = total; job.FirstItem[nFused] = items;

            // src[nRows]: where each quantized row is read; index[total]: the quantized row of each packed token (−1: padding)
            byte* mem = Scratch.Get(ref _index, (long)nRows * sizeof(nint) + (long)total * sizeof(int));
            float** src = (float**)mem;
            int* index = (int*)(src + nRows);
            for (int j = 0, filled = 0; j < nFused; j++)
            {
                int i = fused[j], m = tokens[i];
                for (; filled < rowEnd[j]; filled++) src[filled] = (float*)b.X[i] + (long)(filled - rowBase[j]) * cols;
                int* rows = (int*)b.Rows[i], dst = index + job.Start[j];
                for (int t = 0; t < m; t++) dst[t] = rowBase[j] + (rows != null ? rows[t] : t);
                new Span<int>(dst + m, job.Start[j + 1] - job.Start[j] - m).Fill(-1);
            }
            var quantized = Int8Panels.Quantize(src, nRows, cols, q8k);
            job.B = b; job.Fused = fused; job.Tokens = tokens; job.Count = nFused; (job.Tile, job.Tail) = TPack.Pack(quantized, index, total, packType); job.MaxPad = maxPad;
            try { WorkerPool.Shared.Run(job, items, grain: 1); }
            finally { job.B = null!; job.Fused = null!; job.Tokens = null!; }
        }

        private sealed class Job : IRangeJob
        {
            [ThreadStatic] private static byte[]? _tile, _ct;
            public ExpertBatch B = null!;
            public int[] Fused = null!, Tokens = null!;
            public int[] Start = new int[17], FirstItem = new int[17];   // per fused MLP: first packed token, first item
            public int Count, MaxPad;
            public TTile Tile;
            public TTail Tail;

            [MethodImpl(MethodImplOptions.AggressiveOptimization)]
            public void Run(int first, int end)
            {
                var kernel = Tile;
                var tail = Tail;
                int rowStep = TTile.RowStep, tokenStep = TTile.TokenStep;
                byte* tile = Scratch.Get(ref _tile, TTile.TileBytes(B.W1[Fused[0]].Type));
                // g, u: [64][pad + CtPad] each (TiledGemm's padded stride: rows 2 KiB apart would share two L1 sets)
                float* ct = (float*)Scratch.Get(ref _ct, 2L * RowBlock * (MaxPad + CtPad) * sizeof(float));
                int j = 0;
                for (int item = first; item < end; item++)
                {
                    while (FirstItem[j + 1] <= item) j++;
                    int i = Fused[j], t0 = Start[j], pad = Start[j + 1] - t0, m = Tokens[i];
                    var w1 = B.W1[i];
                    int inter = w1.Rows, cols = w1.Cols;
                    int r0 = (item - FirstItem[j]) * RowBlock, nr = Math.Min(RowBlock, inter - r0);
                    int nrPad = (nr + rowStep - 1) / rowStep * rowStep;
                    int ldc = pad + CtPad;
                    float* cg = ct, cu = ct + (long)RowBlock * ldc;   // [64][ldc] each
                    var w3 = B.W3[i];
                    for (int half = 0; half < (w3 == null ? 1 : 2); half++)
                    {
                        var w = half == 0 ? w1 : w3!;
                        float* c = half == 0 ? cg : cu;
                        for (int k0 = 0; k0 < cols; k0 += KBlock)
                        {
                            int len = Math.Min(KBlock, cols - k0);
                            TTile.Unpack(w, r0, nr, nrPad, k0, len, tile);
                            int t = 0;
                            for (; t + tokenStep <= pad; t += tokenStep)
                            for (int r = 0; r < nrPad; r += rowStep)
                                kernel.Micro(w, tile, r, k0, len, t0 + t, c + (long)r * ldc + t, ldc, k0 == 0);
                            if (t < pad)   // one narrower step (pad is a multiple of TTail.TokenStep for the formats it covers)
                                for (int r = 0; r < nrPad; r += rowStep)
                                    tail.Micro(w, tile, r, k0, len, t0 + t, c + (long)r * ldc + t, ldc, k0 == 0);
                        }
                    }
                    if (w3 == null) TiledGemm<TTile>.Transpose(cg, ldc, nr, m, (float*)B.H[i] + r0, inter);
                    else WriteBack(cg, cu, ldc, nr, m, (float*)B.H[i] + r0, inter);
                }
            }
        }

        /// <summary>
        /// h[t, r] = silu(G[r, t]) · U[r, t] for r &lt; nr, t &lt; m (G and U with row stride ldc, h with ldh): 8 tokens at a
        /// time, their nr values of G and of U transposed into token rows of 64 (<see cref="TiledGemm{TKernel}.Transpose"/>),
        /// then the element-wise operations of <see cref="Ops.SwiGlu"/> (g·sigmoid(g)·u), the arithmetic of the unfused path.
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        private static void WriteBack(float* g, float* u, int ldc, int nr, int m, float* h, int ldh)
        {
            // The sigmoid always runs over whole rows of 64 (zeros past nr): TensorPrimitives takes another, scalar, exp
            // for spans shorter than a vector, which rounds differently from the vector one the unfused path uses.
            const int Tokens = 8;
            float* gt = stackalloc float[Tokens * RowBlock], ut = stackalloc float[Tokens * RowBlock], sig = stackalloc float[Tokens * RowBlock];
            for (int t0 = 0; t0 < m; t0 += Tokens)
            {
                // rows past nr: g = 0 for the sigmoid; the products there are written over but never stored
                int k = Math.Min(Tokens, m - t0);
                for (int t = 0; t < k; t++) new Span<float>(gt + t * RowBlock + nr, RowBlock - nr).Clear();
                TiledGemm<TTile>.Transpose(g + t0, ldc, nr, k, gt, RowBlock);   // gt[k][64], ut[k][64]
                TiledGemm<TTile>.Transpose(u + t0, ldc, nr, k, ut, RowBlock);
                var gs = new Span<float>(gt, k * RowBlock);
                TensorPrimitives.Sigmoid(gs, new Span<float>(sig, k * RowBlock));
                TensorPrimitives.Multiply(gs, new ReadOnlySpan<float>(sig, k * RowBlock), gs);
                TensorPrimitives.Multiply(gs, new ReadOnlySpan<float>(ut, k * RowBlock), gs);
                for (int t = 0; t < k; t++)
                    new ReadOnlySpan<float>(gt + t * RowBlock, nr).CopyTo(new Span<float>(h + (long)(t0 + t) * ldh, nr));
            }
        }
    }
}
