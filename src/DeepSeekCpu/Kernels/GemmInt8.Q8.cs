using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using DeepSeekCpu.Kernels.Repack;
using DeepSeekCpu.Threading;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels;

/// <summary>
/// The instructions of the Q8_0 micro-kernel (<see cref="GemmQ8{TOps, TX, TAcc, TF}"/>) on one instruction set: TX
/// holds 4 bytes of each of <see cref="Panel"/> tokens, TAcc their int32 sums, TF one float32 per token. Implemented
/// by X86/GemmQ8Vnni (vpdpbusd) and Arm/GemmQ8Neon (sdot).
/// </summary>
internal unsafe interface IQ8Ops<TX, TAcc, TF> where TX : unmanaged where TAcc : unmanaged where TF : unmanaged
{
    /// <summary>Tokens per packed panel (one register of int32 lanes).</summary>
    static abstract int Panel { get; }
    /// <summary>Tokens per micro-kernel call: one or two panels.</summary>
    static abstract int TokenStep { get; }
    /// <summary>
    /// Whether the product multiplies unsigned activations by signed weights (x86's vpdpbusd: the activations are
    /// stored + 128, and each block's integer sum starts at −128·Σq_w to take the excess back), or signed by signed
    /// (Arm's sdot, sums start at 0).
    /// </summary>
    static abstract bool UnsignedActs { get; }
    /// <summary>
    /// Added to every block's integer sum start value (in the tile) so that <see cref="Scale"/> can take the sum's float
    /// value from its bits instead of a convert instruction (x86: see <see cref="X86.GemmQ8Vnni.Scale"/>); 0 on Arm.
    /// </summary>
    static abstract int SumOffset { get; }
    /// <summary>An integer sum's start value in every lane.</summary>
    static abstract TAcc Start(int bias);
    /// <summary>4 signed weight bytes in every 32-bit lane.</summary>
    static abstract TX Broadcast(sbyte* w);
    /// <summary>acc += the 4 products w·x per token in int32 (exact: at most 32 · 255 · 128 per block).</summary>
    static abstract TAcc Dot(TAcc acc, TX w, TX x);
    /// <summary>f + float(acc − SumOffset)·(dx·d_w): one block of one row for one panel, in this order on every ISA.</summary>
    static abstract TF Scale(TF f, TAcc acc, float* dw, TF dx);
}

/// <summary>
/// Integer matrix-matrix product (prompt processing) of Q8_0 weights (ggml block_q8_0: w = d·q, q signed bytes) with
/// activations quantized to Q8_0 (<see cref="ActQ8.QuantizeQ8_0"/>), one int8 multiply-add instruction per 4 weight
/// bytes and token lane: vpdpbusd (AVX-VNNI) on x86, sdot on Arm64. The weights' signed bytes are read where they lie,
/// from the decode kernels' interleaved copy (<see cref="Interleave"/>: per block column of 16 rows, 64-byte chunks
/// holding 4 bytes of every row) when the matrix has one, else from a tile the stored rows are spread into in that same
/// layout. Per 64 rows × 256 columns only d_w and the integer sums' start values are prepared (<see cref="Q8Tile.Unpack"/>).
/// <para>
/// vpdpbusd multiplies unsigned by signed bytes, so on x86 the activations are stored + 128 (xor 0x80 of the packed
/// panels): Σ (q_x + 128)·q_w = Σ q_x·q_w + 128·Σ q_w, so each row's sum per block starts at −128·Σ q_w (exact in int32).
/// The same idea as ik_llama.cpp's Q8_0_R8 GEMM over rows interleaved by its run-time repack; the code and the layout
/// are this project's.
/// </para>
/// C[4 rows, TokenStep tokens] (+)= Σ_blocks d_x·d_w·Σ q_w·q_x, integer sums per 32-element block.
/// </summary>
internal static unsafe class GemmQ8<TOps, TX, TAcc, TF>
    where TOps : IQ8Ops<TX, TAcc, TF> where TX : unmanaged where TAcc : unmanaged where TF : unmanaged
{
    private const int RowBlock = TiledGemm<Q8Tile>.RowBlock, KBlock = Int8Tiles.KBlock, Slice = Int8Tiles.BlocksPerSlice;
    private const int Lanes = Interleave.Rows;
    /// <summary>Interleaved Q8_0 block column of 16 rows: 16 halves d, then 8 chunks of 64 bytes.</summary>
    private const int ColumnBytes = 32 + Lanes * 32;
    /// <summary>Tile layout: a header (the weights' base pointer and group stride), d_w (float) and the sums' start values (int) [8 blocks][64 rows], quants of stored rows.</summary>
    private const int ScalesAt = 64, QuantsAt = ScalesAt + 2 * RowBlock * Slice * sizeof(float);

    [ThreadStatic] private static FlipJob? _flip;

    public static void Run(WeightMatrix w, float* x, float* y, int n)
    {
        if (w.Type != DType.Q8_0) throw new ArgumentException($"{w.Name}: the Q8_0 GEMM got {w.Type}");
        int step = TOps.TokenStep, nPad = (n + step - 1) / step * step;
        TiledGemm<Q8Tile>.Run(w, Pack(x, n, w.Cols, nPad), y, n, nPad);
    }

    /// <summary>
    /// Tokens 0..n of x[n, cols] quantized and packed in panels for <paramref name="nPad"/> tokens (per-thread scratch,
    /// valid until the next call), stored + 128 where the product is unsigned × signed.
    /// </summary>
    internal static Q8Tile Pack(float* x, int n, int cols, int nPad) =>
        Flipped(Int8Panels.Pack(x, n, cols, TOps.Panel, nPad / TOps.Panel, halfSums: false), (long)nPad * cols);

    /// <summary>The activations stored + 128 where the product is unsigned × signed (<paramref name="bytes"/> packed quants).</summary>
    private static Q8Tile Flipped(Int8Acts acts, long bytes)
    {
        if (TOps.UnsignedActs)
        {
            var flip = _flip ??= new FlipJob();
            flip.Q = (byte*)acts.Q;
            flip.Bytes = bytes;
            WorkerPool.Shared.Run(flip, (int)((flip.Bytes + FlipJob.Chunk - 1) / FlipJob.Chunk), grain: 1);
        }
        return new Q8Tile(acts);
    }

    /// <summary>The activations' packing for callers that run several Q8_0 matrices over one input (<see cref="ExpertGemm"/>).</summary>
    internal readonly struct Packer : ITilePack<Q8Tile>
    {
        public static Q8Tile Pack(in ActQ8Rows rows, int* index, int n, DType t) =>
            Flipped(Int8Panels.Pack(rows, index, n, TOps.Panel, n / TOps.Panel, halfSums: false), (long)n * rows.Cols);
    }

    /// <summary>q_x + 128 for every packed activation byte (xor 0x80), in chunks of 64 KiB over the worker pool.</summary>
    private sealed class FlipJob : IRangeJob
    {
        public const int Chunk = 1 << 16;
        public byte* Q;
        public long Bytes;

        public void Run(int start, int end)
        {
            var top = Vector128.Create((byte)0x80);
            for (int c = start; c < end; c++)
            {
                byte* p = Q + (long)c * Chunk;
                long len = Math.Min(Chunk, Bytes - (long)c * Chunk);   // a multiple of 32 (whole blocks)
                for (long i = 0; i < len; i += 16) (Vector128.Load(p + i) ^ top).Store(p + i);
            }
        }
    }

    internal readonly struct Q8Tile(Int8Acts x) : ITileKernel
    {
        private readonly Int8Acts X = x;

        public static int RowStep => 4;
        public static int TokenStep => TOps.TokenStep;
        public static long TileBytes(DType t) => QuantsAt + (long)RowBlock / Lanes * Slice * ColumnBytes;

        /// <summary>
        /// Where rows [r0, r0 + nrPad) × blocks [k0/32, k0/32 + len/32) lie (the interleaved copy, or the stored rows
        /// spread into the tile in its layout), their d_w = d and their integer sums' start values −128·Σ q (x86) or 0 (Arm).
        /// </summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public static void Unpack(WeightMatrix w, int r0, int nr, int nrPad, int k0, int len, byte* tile)
        {
            int nb = len / 32, b0 = k0 / 32, groups = (nrPad + Lanes - 1) / Lanes;
            byte* quants;
            long stride;
            if (w.Interleaved != null)
            {
                stride = Interleave.GroupBytes(DType.Q8_0, w.Cols);
                quants = w.Interleaved + r0 / Lanes * stride + (long)b0 * ColumnBytes;
            }
            else
            {
                stride = Slice * ColumnBytes;
                quants = tile + QuantsAt;
                new Span<byte>(quants, (int)(groups * stride)).Clear();   // rows past nr: d = 0, q = 0
                for (int r = 0; r < nr; r++)
                {
                    var blocks = (BlockQ8_0*)w.Row(r0 + r) + b0;
                    for (int b = 0; b < nb; b++)
                    {
                        byte* col = quants + r / Lanes * stride + b * ColumnBytes;
                        ((Half*)col)[r % Lanes] = blocks[b].D;
                        for (int j = 0; j < 8; j++) *(int*)(col + 32 + 64 * j + 4 * (r % Lanes)) = ((int*)blocks[b].Qs)[j];
                    }
                }
            }
            *(byte**)tile = quants;
            *(long*)(tile + 8) = stride;
            float* wd = (float*)(tile + ScalesAt);   // [8 blocks][64 rows]
            int* bias = (int*)(wd + RowBlock * Slice);   // [8 blocks][64 rows]
            int panel = TOps.Panel, ones = 0x01010101;
            var one = TOps.Broadcast((sbyte*)&ones);
            for (int g = 0; g < groups; g++)
            for (int b = 0; b < nb; b++)
            {
                byte* col = quants + g * stride + b * ColumnBytes;
                int at = b * RowBlock + g * Lanes;   // rows g·16 .. g·16 + 15 of block b
                for (int i = 0; i < Lanes; i += 4)   // d as float (HalfBits.ToFloat on 4 lanes)
                    HalfBits.ToFloat(Vector128.WidenLower(Vector128.Load((ushort*)col + i).AsUInt16()).AsUInt32()).Store(wd + at + i);
                // Σ q per row: the rows' bytes (4 per int32 lane, Panel rows per register) dotted with ones, 8 chunks
                for (int i = 0; i < Lanes; i += panel)
                {
                    var sum = TOps.Start(0);
                    for (int j = 0; j < 8; j++) sum = TOps.Dot(sum, Unsafe.ReadUnaligned<TX>(col + 32 + 64 * j + 4 * i), one);
                    Unsafe.WriteUnaligned(bias + at + i, sum);
                }
            }
            // start value = −128·Σq (x86: see the class summary) or 0 (Arm), + SumOffset
            var factor = Vector128.Create(TOps.UnsignedActs ? -128 : 0);
            var offset = Vector128.Create(TOps.SumOffset);
            for (int i = 0; i < nb * RowBlock; i += 4) (Vector128.Load(bias + i) * factor + offset).Store(bias + i);
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Micro(WeightMatrix w, byte* tile, int r, int k0, int len, int t0, float* c, int ldc, bool first)
        {
            int panel = TOps.Panel, nb = X.Blocks;
            sbyte* wq = (sbyte*)(*(byte**)tile + r / Lanes * *(long*)(tile + 8) + 32 + 4 * (r % Lanes));   // rows r..r+3, chunk 0
            float* wd = (float*)(tile + ScalesAt) + r;
            long pb = (long)(t0 / panel) * nb + k0 / 32;   // (panel, block) index
            Micro4(wq, wd, (int*)(wd + RowBlock * Slice), len / 32, X.Q + pb * 32 * panel, X.D + pb * panel, (long)nb * panel, c, ldc, first);
        }
    }

    /// <summary>The int32 sums of 4 rows for one panel of tokens.</summary>
    private struct Quad
    {
        public TAcc R0, R1, R2, R3;
        public Quad(TAcc r0, TAcc r1, TAcc r2, TAcc r3) { R0 = r0; R1 = r1; R2 = r2; R3 = r3; }
    }

    /// <summary>
    /// C[4 rows, TokenStep tokens] (+)= the rows at <paramref name="wq"/> (4-byte lanes of consecutive rows in the
    /// interleaved layout: block b, chunk g at + ColumnBytes·b + 64·g) × one or two panels of activations (the second
    /// <paramref name="panelStride"/> blocks·Panel on; quants at 32× that). Per block and 4 k, each panel's bytes are
    /// loaded once and each row's 4 weight bytes broadcast against them (the 8 groups of 4 k written out: a loop over
    /// them cost a third of the instructions the front end issues); the int32 sums are scaled once per block.
    /// Other blockings measured no faster on x86 (see <see cref="X86.GemmQ8Vnni"/>: the scaling's multiply and FMA
    /// share vpdpbusd's ports, not its latency, bound the loop).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Micro4(sbyte* wq, float* wd, int* bias, int nBlocks, sbyte* xa, float* dxa, long panelStride, float* c, int ldc, bool first)
    {
        int panel = TOps.Panel;
        bool two = TOps.TokenStep != TOps.Panel;   // folded by the JIT
        sbyte* xb = xa + 32 * panelStride;
        float* dxb = dxa + panelStride;
        float* c0 = c, c1 = c + ldc, c2 = c + 2 * ldc, c3 = c + 3 * ldc;
        if (first)
            for (int i = 0; i < (two ? 2 : 1); i++)
            {
                Unsafe.WriteUnaligned(c0 + i * panel, default(TF)); Unsafe.WriteUnaligned(c1 + i * panel, default(TF));
                Unsafe.WriteUnaligned(c2 + i * panel, default(TF)); Unsafe.WriteUnaligned(c3 + i * panel, default(TF));
            }
        for (int b = 0; b < nBlocks; b++)
        {
            int* s = bias + RowBlock * b;
            var qa = new Quad(TOps.Start(s[0]), TOps.Start(s[1]), TOps.Start(s[2]), TOps.Start(s[3]));
            var qb = qa;
            sbyte* w = wq + ColumnBytes * b, pa = xa + 32 * panel * b, pb = xb + 32 * panel * b;
            Group(ref qa, ref qb, w, pa, pb);
            Group(ref qa, ref qb, w + 64, pa + 4 * panel, pb + 4 * panel);
            Group(ref qa, ref qb, w + 128, pa + 8 * panel, pb + 8 * panel);
            Group(ref qa, ref qb, w + 192, pa + 12 * panel, pb + 12 * panel);
            Group(ref qa, ref qb, w + 256, pa + 16 * panel, pb + 16 * panel);
            Group(ref qa, ref qb, w + 320, pa + 20 * panel, pb + 20 * panel);
            Group(ref qa, ref qb, w + 384, pa + 24 * panel, pb + 24 * panel);
            Group(ref qa, ref qb, w + 448, pa + 28 * panel, pb + 28 * panel);
            float* d0 = wd + RowBlock * b, d1 = d0 + 1, d2 = d0 + 2, d3 = d0 + 3;   // d_w of the 4 rows, broadcast from memory
            var da = Unsafe.ReadUnaligned<TF>(dxa + panel * b);
            Accumulate(c0, qa.R0, d0, da); Accumulate(c1, qa.R1, d1, da);
            Accumulate(c2, qa.R2, d2, da); Accumulate(c3, qa.R3, d3, da);
            if (two)
            {
                var db = Unsafe.ReadUnaligned<TF>(dxb + panel * b);
                Accumulate(c0 + panel, qb.R0, d0, db); Accumulate(c1 + panel, qb.R1, d1, db);
                Accumulate(c2 + panel, qb.R2, d2, db); Accumulate(c3 + panel, qb.R3, d3, db);
            }
        }
    }

    /// <summary>
    /// One float sum of C, kept in memory (L1 after the first block; its previous value reaches the FMA by store
    /// forwarding): held in registers, as before, the JIT's allocator spilled three of the eight across every block
    /// anyway and the float registers pressed the integer sums; in memory the same arithmetic, bit for bit.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Accumulate(float* c, TAcc acc, float* dw, TF dx) =>
        Unsafe.WriteUnaligned(c, TOps.Scale(Unsafe.ReadUnaligned<TF>(c), acc, dw, dx));

    /// <summary>One group of 4 k: each panel's 4 bytes per token loaded once, each row's 4 weight bytes broadcast once.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Group(ref Quad qa, ref Quad qb, sbyte* w, sbyte* pa, sbyte* pb)
    {
        bool two = TOps.TokenStep != TOps.Panel;
        var xa = Unsafe.ReadUnaligned<TX>(pa);
        var xb = two ? Unsafe.ReadUnaligned<TX>(pb) : default;
        var v = TOps.Broadcast(w);
        qa.R0 = TOps.Dot(qa.R0, v, xa); if (two) qb.R0 = TOps.Dot(qb.R0, v, xb);
        v = TOps.Broadcast(w + 4);
        qa.R1 = TOps.Dot(qa.R1, v, xa); if (two) qb.R1 = TOps.Dot(qb.R1, v, xb);
        v = TOps.Broadcast(w + 8);
        qa.R2 = TOps.Dot(qa.R2, v, xa); if (two) qb.R2 = TOps.Dot(qb.R2, v, xb);
        v = TOps.Broadcast(w + 12);
        qa.R3 = TOps.Dot(qa.R3, v, xa); if (two) qb.R3 = TOps.Dot(qb.R3, v, xb);
    }
}

/// <summary>The Q8_0 GEMM on each instruction set, as <see cref="MatMul.Plan"/> names it.</summary>
internal static unsafe class GemmQ8
{
    /// <summary>x86 with AVX-VNNI (vpdpbusd at 256 bits; also on AVX-512 machines).</summary>
    public static void Vnni(WeightMatrix w, float* x, float* y, int n) =>
        GemmQ8<X86.GemmQ8Vnni, Vector256<sbyte>, Vector256<int>, Vector256<float>>.Run(w, x, y, n);

    /// <summary>Arm64 with DotProd (sdot).</summary>
    public static void Neon(WeightMatrix w, float* x, float* y, int n) =>
        GemmQ8<Arm.GemmQ8Neon, Vector128<sbyte>, Vector128<int>, Vector128<float>>.Run(w, x, y, n);
}
