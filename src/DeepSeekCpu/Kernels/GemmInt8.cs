using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using DeepSeekCpu.Threading;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels;

/// <summary>
/// Rows of an unpacked weight tile from one row on, as its <see cref="ITileLayout"/> places them. Row tiles
/// (<see cref="RowTiles"/>, <see cref="Int8Tiles.Unpack"/>): q bytes (low plane) and the high nibble plane of 8-bit
/// formats at row stride <see cref="Int8Tiles.KBlock"/>, and per-block d and m at row stride <see cref="ScaleStride"/>
/// (<see cref="Int8Tiles.BlocksPerSlice"/>, or twice that for a scale per 16 elements). Lane tiles of Q4_0 and Q4_K
/// (<see cref="LaneTiles"/>, <see cref="Int8Tiles.UnpackLanes"/>): q bytes with 16 rows interleaved in 4-byte lanes, d
/// and m per block at D[<see cref="Int8Tiles.TileRows"/>·b], the next row's one float on; no high plane.
/// Q4_K against Q8_K activations (<see cref="Int8Tiles.UsesQ8K"/>) keeps its scales as integers in the same places
/// (<see cref="Int8Tiles.UnpackQ4_K"/>): D holds sc·0x10001 per sub-block as int32, M the mins in int16 pairs
/// (sub-blocks 2p, 2p + 1 in slot p), then d and −dmin as floats in slots 4 and 5.
/// </summary>
internal readonly unsafe struct Int8Rows(byte* q, byte* high, float* d, float* m, int scaleStride)
{
    public readonly byte* Q = q, High = high;
    public readonly float* D = d, M = m;
    public readonly int ScaleStride = scaleStride;
}

/// <summary>
/// Packed activations (<see cref="Int8Panels"/>) at one (panel, block): quants Q (32·Panel bytes per block), scales D
/// and d·Σq S (Panel floats per block), and d·Σq per half block SHalf (2·Panel floats per block; filled only for
/// formats with a scale per 16 elements). The next panel of a micro-kernel call starts <see cref="Blocks"/> blocks on.
/// Packed in Q8_K mode (<see cref="Int8Panels"/>) D holds the token's scale of its 256-element super-block in
/// every block, and S per super-block, in its first 4 blocks' slots, Σq over sub-blocks 2p and 2p + 1 (32 elements
/// each) as an int16 pair (p = 0..3); its last 4 are zero.
/// Q4_0's offset O (Panel int32 per block, Q8_0 mode only): per token the int16 pair (−8·Σq_x over k ≡ 0, 1 mod 4,
/// −8·Σq_x over k ≡ 2, 3 mod 4), the block's −8·Σq_x split as vpmaddubsw splits its sums into the two int16 lanes
/// of a token (<see cref="IInt8Ops{TX, TAcc, TF}.Offset"/>).
/// </summary>
internal readonly unsafe struct Int8Acts(sbyte* q, float* d, float* s, float* sHalf, int* o, int panel, int blocks)
{
    public readonly sbyte* Q = q;
    public readonly float* D = d, S = s, SHalf = sHalf;
    public readonly int* O = o;
    public readonly int Panel = panel, Blocks = blocks;

    /// <summary>The same arrays at (panel, block) index <paramref name="pb"/> = panel·Blocks + block.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public Int8Acts At(long pb) => new(Q + pb * 32 * Panel, D + pb * Panel, S + pb * Panel, SHalf + pb * 2 * Panel, O + pb * Panel, Panel, Blocks);
}

/// <summary>
/// The instruction-set part of the int8 GEMM: the formats it multiplies, how many tokens a packed panel holds, and the
/// micro-kernel over 4 unpacked weight rows × <see cref="TokenStep"/> tokens. Implemented by X86/GemmInt8Avx512,
/// X86/GemmInt8Avx2 and Arm/GemmInt8Neon.
/// </summary>
internal unsafe interface IInt8Micro
{
    /// <summary>Tokens per packed panel (one register of int32 lanes).</summary>
    static abstract int Panel { get; }
    /// <summary>Tokens per micro-kernel call: one or two panels.</summary>
    static abstract int TokenStep { get; }
    /// <summary>Weight formats this micro-kernel multiplies (all of them are unpacked by <see cref="Int8Tiles"/>).</summary>
    static abstract bool Supports(DType t);
    /// <summary>Whether this micro-kernel multiplies <paramref name="t"/> against Q8_K activations with integer
    /// sub-block scales (<see cref="Int8MicroK{TOps, TX, TAcc, TI, TF}"/>; only formats with
    /// <see cref="Int8Tiles.UsesQ8K"/>), else against Q8_0 activations.</summary>
    static abstract bool UsesQ8K(DType t);

    /// <summary>
    /// C[4 rows, TokenStep tokens] (+)= Σ over nBlocks blocks of d_w·d_x·Σq·qx + m_w·(d_x·Σqx), from the unpacked rows
    /// <paramref name="w"/> of format <paramref name="t"/> and the packed activations <paramref name="x"/>; C has row
    /// stride <paramref name="ldc"/> and is overwritten when <paramref name="first"/>.
    /// </summary>
    static abstract void Micro4<TL>(DType t, in Int8Rows w, int nBlocks, in Int8Acts x, float* c, int ldc, bool first) where TL : struct, ITileLayout;
}

/// <summary>
/// Where a tile of a 4-bit format keeps its rows' weight bytes and per-block d and m, as constants the JIT folds into
/// the micro-kernels' addresses: <see cref="RowTiles"/> (rows unpacked one after the other) or <see cref="LaneTiles"/>
/// (16 rows interleaved, as the decode kernels' copy holds them). The 8-bit formats' tiles are always row tiles.
/// </summary>
internal interface ITileLayout
{
    /// <summary>Bytes from a row's 4 weight bytes to the next row's.</summary>
    static abstract int Row { get; }
    /// <summary>Bytes from a row's 4 k to its next 4 k.</summary>
    static abstract int Group { get; }
    /// <summary>Bytes from a row's 32-element block to its next.</summary>
    static abstract int Block { get; }
    /// <summary>Floats from a row's d (and m) to the next row's.</summary>
    static abstract int ScaleRow { get; }
    /// <summary>Floats from a block's d (and m) to the next block's (Q8_K mode: from a slot to the next).</summary>
    static abstract int ScaleBlock { get; }
}

/// <summary>Rows one after the other (<see cref="Int8Tiles.Unpack"/>): q[row][256], d and m [row][8].</summary>
internal readonly struct RowTiles : ITileLayout
{
    public static int Row => Int8Tiles.KBlock;
    public static int Group => 4;
    public static int Block => 32;
    public static int ScaleRow => Int8Tiles.BlocksPerSlice;
    public static int ScaleBlock => 1;
}

/// <summary>Groups of 16 rows in lanes (<see cref="Int8Tiles.UnpackLanes"/>): per block 8 chunks of 64 bytes holding 4 k of each row, d and m [block][64 rows].</summary>
internal readonly struct LaneTiles : ITileLayout
{
    public static int Row => 4;
    public static int Group => 64;
    public static int Block => Int8Tiles.LaneBlockBytes;
    public static int ScaleRow => 1;
    public static int ScaleBlock => Int8Tiles.TileRows;
}

/// <summary>
/// The instructions of the 4-bit int8 micro-kernel (<see cref="Int8Micro4{TOps, TX, TAcc, TF}"/>) at one width, in the
/// manner of TensorPrimitives' operator structs: TX holds 4 bytes of each of <see cref="IInt8Micro.Panel"/> tokens,
/// TAcc the integer sums of one panel (int16 lanes summed pairwise by vpmaddubsw, or int32 lanes of sdot), TF one
/// float32 per token. Loads and stores are the width's plain vector loads (<see cref="Unsafe.ReadUnaligned{T}(void*)"/>).
/// </summary>
internal unsafe interface IInt8Ops<TX, TAcc, TF> where TX : unmanaged where TAcc : unmanaged where TF : unmanaged
{
    /// <summary>4 weight bytes (unsigned, 0..15 for the 4-bit formats) in every 32-bit lane.</summary>
    static abstract TX Broadcast(byte* w);
    /// <summary>acc += the 4 products w·x per token, exact (int16 headroom: 8 × 2·15·127 = 30480 per block).</summary>
    static abstract TAcc Dot(TAcc acc, TX w, TX x);
    /// <summary>f + sx·m_w + float(Σ acc)·(dx·d_w): one block of one row for one panel, in this order on every ISA.</summary>
    static abstract TF Scale(TF f, TAcc acc, float dw, float mw, TF dx, TF sx);
    /// <summary>
    /// Q4_0 (w = d·(q − 8)): the integer sums' start, −8·Σq_x of one panel's tokens from <see cref="Int8Acts.O"/>, so
    /// that the block's sums are Σ(q − 8)·q_x and the float step needs no m term. Exact: each int16 lane ends at a
    /// sum over 16 k of (q − 8)·q_x, |·| ≤ 16·8·128 (vpaddw wraps on the way, the end fits).
    /// </summary>
    static abstract TAcc Offset(int* o);
    /// <summary>f + float(Σ acc)·(dx·d_w): one block of one row for one panel (Q4_0, its m folded into
    /// <see cref="Offset"/>).</summary>
    static abstract TF Scale(TF f, TAcc acc, float dw, TF dx);
}

/// <summary>
/// The micro-kernel of the 4-bit formats on every instruction set: C[4 rows, TokenStep tokens] (+)= Σ over nBlocks
/// blocks of d_w·d_x·Σq·qx + m_w·(d_x·Σqx), with one or two panels per call (<see cref="IInt8Micro.TokenStep"/>; the
/// second panel's code is dropped by the JIT where TokenStep is one panel). Per block and 4 k, the tokens' bytes are
/// loaded once and each row's 4 weight bytes broadcast against them; the integer sums are scaled once per block.
/// Q4_0 (m_w = −8·d_w) starts its sums at −8·Σqx instead (<see cref="IInt8Ops{TX, TAcc, TF}.Offset"/>): one load per
/// panel and block in place of a broadcast and an FMA per row (5-8% of the kernel's time, `DeepSeekCpu.Bench quick
/// --formats Q4_0`), and the sums are then exactly ggml's Σ(q − 8)·q_x.
/// </summary>
internal static unsafe class Int8Micro4<TOps, TX, TAcc, TF>
    where TOps : IInt8Micro, IInt8Ops<TX, TAcc, TF> where TX : unmanaged where TAcc : unmanaged where TF : unmanaged
{
    /// <summary>Whether the block's m term is the −8 of Q4_0, folded into the integer sums (<see cref="Run{TL}"/>).</summary>
    private interface IMins { static abstract bool Folded { get; } }
    private readonly struct Q4_0Offset : IMins { public static bool Folded => true; }
    private readonly struct PerBlockMin : IMins { public static bool Folded => false; }

    /// <summary>C (+)= the rows of format <paramref name="t"/> (Q4_0, Q4_1 or Q4_K against Q8_0 activations) times the panels.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Run<TL>(DType t, in Int8Rows w, int nBlocks, in Int8Acts x, float* c, int ldc, bool first) where TL : struct, ITileLayout
    {
        if (t == DType.Q4_0) Run<TL, Q4_0Offset>(w, nBlocks, x, c, ldc, first);
        else Run<TL, PerBlockMin>(w, nBlocks, x, c, ldc, first);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Run<TL, TMins>(in Int8Rows w, int nBlocks, in Int8Acts x, float* c, int ldc, bool first) where TL : struct, ITileLayout where TMins : IMins
    {
        int panel = TOps.Panel;
        bool two = TOps.TokenStep != TOps.Panel;   // folded by the JIT
        sbyte* xa = x.Q, xb = x.Q + (long)x.Blocks * 32 * panel;     // the two panels
        float* dxa = x.D, dxb = x.D + (long)x.Blocks * panel, sxa = x.S, sxb = x.S + (long)x.Blocks * panel;
        int* oa = x.O, ob = x.O + (long)x.Blocks * panel;
        float* cb = c + panel;                                        // C of the second panel
        TF f0a = default, f0b = default, f1a = default, f1b = default, f2a = default, f2b = default, f3a = default, f3b = default;
        if (!first)
        {
            Load4(c, ldc, out f0a, out f1a, out f2a, out f3a);
            if (two) Load4(cb, ldc, out f0b, out f1b, out f2b, out f3b);
        }
        for (int b = 0; b < nBlocks; b++)
        {
            TAcc a0a = default, a0b = default, a1a = default, a1b = default, a2a = default, a2b = default, a3a = default, a3b = default;
            if (TMins.Folded)
            {
                a0a = a1a = a2a = a3a = TOps.Offset(oa + panel * b);
                if (two) a0b = a1b = a2b = a3b = TOps.Offset(ob + panel * b);
            }
            Dot4<TL>(w.Q + TL.Block * b, xa + 32 * panel * b, xb + 32 * panel * b, ref a0a, ref a0b, ref a1a, ref a1b, ref a2a, ref a2b, ref a3a, ref a3b);
            if (TMins.Folded)
            {
                Scale4<TL>(ref f0a, ref f1a, ref f2a, ref f3a, a0a, a1a, a2a, a3a, w.D + TL.ScaleBlock * b, dxa + panel * b);
                if (two) Scale4<TL>(ref f0b, ref f1b, ref f2b, ref f3b, a0b, a1b, a2b, a3b, w.D + TL.ScaleBlock * b, dxb + panel * b);
                continue;
            }
            Scale4<TL>(ref f0a, ref f1a, ref f2a, ref f3a, a0a, a1a, a2a, a3a, w.D + TL.ScaleBlock * b, w.M + TL.ScaleBlock * b, dxa + panel * b, sxa + panel * b);
            if (two) Scale4<TL>(ref f0b, ref f1b, ref f2b, ref f3b, a0b, a1b, a2b, a3b, w.D + TL.ScaleBlock * b, w.M + TL.ScaleBlock * b, dxb + panel * b, sxb + panel * b);
        }
        Store4(c, ldc, f0a, f1a, f2a, f3a);
        if (two) Store4(cb, ldc, f0b, f1b, f2b, f3b);
    }

    /// <summary>
    /// The integer sums of one 32-element block: 4 rows (laid out as <typeparamref name="TL"/> says from w0) × one or two
    /// panels (their quants of the block at pa, pb). Per 4 k, the tokens' bytes are loaded once and each row's 4 weight
    /// bytes broadcast against them.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Dot4<TL>(byte* w0, sbyte* pa, sbyte* pb, ref TAcc a0a, ref TAcc a0b, ref TAcc a1a, ref TAcc a1b,
        ref TAcc a2a, ref TAcc a2b, ref TAcc a3a, ref TAcc a3b, int groups = 8) where TL : struct, ITileLayout
    {
        int panel = TOps.Panel;
        bool two = TOps.TokenStep != TOps.Panel;
        for (int g = 0; g < groups; g++)
        {
            var x0 = Unsafe.ReadUnaligned<TX>(pa + 4 * panel * g);
            var x1 = two ? Unsafe.ReadUnaligned<TX>(pb + 4 * panel * g) : default;
            var v = TOps.Broadcast(w0 + TL.Group * g);
            a0a = TOps.Dot(a0a, v, x0); if (two) a0b = TOps.Dot(a0b, v, x1);
            v = TOps.Broadcast(w0 + TL.Group * g + TL.Row);
            a1a = TOps.Dot(a1a, v, x0); if (two) a1b = TOps.Dot(a1b, v, x1);
            v = TOps.Broadcast(w0 + TL.Group * g + 2 * TL.Row);
            a2a = TOps.Dot(a2a, v, x0); if (two) a2b = TOps.Dot(a2b, v, x1);
            v = TOps.Broadcast(w0 + TL.Group * g + 3 * TL.Row);
            a3a = TOps.Dot(a3a, v, x0); if (two) a3b = TOps.Dot(a3b, v, x1);
        }
    }

    /// <summary>One panel's 4 rows of C (row stride ldc).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Load4(float* c, int ldc, bool first, out TF f0, out TF f1, out TF f2, out TF f3)
    {
        if (first) { f0 = f1 = f2 = f3 = default; return; }
        Load4(c, ldc, out f0, out f1, out f2, out f3);
    }

    /// <summary>One panel's 4 rows of C (row stride ldc).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Load4(float* c, int ldc, out TF f0, out TF f1, out TF f2, out TF f3)
    {
        f0 = Unsafe.ReadUnaligned<TF>(c); f1 = Unsafe.ReadUnaligned<TF>(c + ldc);
        f2 = Unsafe.ReadUnaligned<TF>(c + 2 * ldc); f3 = Unsafe.ReadUnaligned<TF>(c + 3 * ldc);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    internal static void Store4(float* c, int ldc, TF f0, TF f1, TF f2, TF f3)
    {
        Unsafe.WriteUnaligned(c, f0); Unsafe.WriteUnaligned(c + ldc, f1);
        Unsafe.WriteUnaligned(c + 2 * ldc, f2); Unsafe.WriteUnaligned(c + 3 * ldc, f3);
    }

    /// <summary>One block of 4 rows (d, m at row stride <typeparamref name="TL"/>.ScaleRow) for one panel (its d and d·Σq at dx, sx).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Scale4<TL>(ref TF f0, ref TF f1, ref TF f2, ref TF f3, TAcc a0, TAcc a1, TAcc a2, TAcc a3, float* wd, float* wm, float* dx, float* sx)
        where TL : struct, ITileLayout
    {
        var d = Unsafe.ReadUnaligned<TF>(dx);
        var s = Unsafe.ReadUnaligned<TF>(sx);
        f0 = TOps.Scale(f0, a0, wd[0], wm[0], d, s);
        f1 = TOps.Scale(f1, a1, wd[TL.ScaleRow], wm[TL.ScaleRow], d, s);
        f2 = TOps.Scale(f2, a2, wd[2 * TL.ScaleRow], wm[2 * TL.ScaleRow], d, s);
        f3 = TOps.Scale(f3, a3, wd[3 * TL.ScaleRow], wm[3 * TL.ScaleRow], d, s);
    }

    /// <summary>As the other Scale4, for sums that carry their m term (Q4_0's offset).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Scale4<TL>(ref TF f0, ref TF f1, ref TF f2, ref TF f3, TAcc a0, TAcc a1, TAcc a2, TAcc a3, float* wd, float* dx)
        where TL : struct, ITileLayout
    {
        var d = Unsafe.ReadUnaligned<TF>(dx);
        f0 = TOps.Scale(f0, a0, wd[0], d);
        f1 = TOps.Scale(f1, a1, wd[TL.ScaleRow], d);
        f2 = TOps.Scale(f2, a2, wd[2 * TL.ScaleRow], d);
        f3 = TOps.Scale(f3, a3, wd[3 * TL.ScaleRow], d);
    }
}

/// <summary>
/// The instructions of the Q4_K × Q8_K micro-kernel (<see cref="Int8MicroK{TOps, TX, TAcc, TI, TF}"/>) beside those of
/// <see cref="IInt8Ops{TX, TAcc, TF}"/>: TI holds one int32 per token of a panel.
/// </summary>
internal unsafe interface IInt8KOps<TAcc, TI, TF> where TAcc : unmanaged where TI : unmanaged where TF : unmanaged
{
    /// <summary>
    /// isum + sc·(the block's sums in <paramref name="acc"/>) per token, exact: <paramref name="sc"/> points at the
    /// sub-block scale as sc·0x10001 (vpmaddwd multiplies both int16 halves; NEON reads the low one).
    /// Bound: 2·30480·63 per block, 8 blocks: 30.7M &lt; 2^31.
    /// </summary>
    static abstract TI AddScaled(TI isum, TAcc acc, int* sc);
    /// <summary>imin + the int16 pair per token at <paramref name="bs"/> (Σq_x of two sub-blocks) · the pair of mins in <paramref name="mins"/>.</summary>
    static abstract TI AddMins(TI imin, int* bs, int mins);
    /// <summary>f + float(isum)·(dx·d) + float(imin)·(dx·negDmin): one super-block of one row for one panel, in this order on every ISA.</summary>
    static abstract TF ScaleK(TF f, TI isum, TI imin, float d, float negDmin, TF dx);
}

/// <summary>
/// The micro-kernel of Q4_K against Q8_K activations (one scale per 256 per token) on every instruction set:
/// C[4 rows, TokenStep tokens] (+)= d_x·(d·Σ_j sc_j·Σq·q_x − dmin·Σ_j m_j·Σq_x) over one super-block (the tile's slice),
/// as ggml's vec_dot_q4_K_q8_K forms it. The block sums come from <see cref="Int8Micro4{TOps, TX, TAcc, TF}.Dot4"/>; each
/// is multiplied by its integer 6-bit scale into an int32 sum (one multiply-add per block instead of a convert, a
/// multiply and two FMAs of per-32 float scales), the mins term is an integer dot of the mins with the activations'
/// sums per 32, and only one float step per super-block remains.
/// </summary>
internal static unsafe class Int8MicroK<TOps, TX, TAcc, TI, TF>
    where TOps : IInt8Micro, IInt8Ops<TX, TAcc, TF>, IInt8KOps<TAcc, TI, TF>
    where TX : unmanaged where TAcc : unmanaged where TI : unmanaged where TF : unmanaged
{
    private const int S = Int8Tiles.BlocksPerSlice;

    /// <summary>How many 4-k groups one int16 (or int32) sum takes before its multiply-add by the sub-block scale:
    /// all 8 of a block for Q4_K's 4-bit q (8 × 2·15·128 fits int16), 4 for Q5_K's 5-bit q (2·31·128 per pair).</summary>
    internal interface ISums { static abstract int Groups { get; } }
    internal readonly struct WholeBlock : ISums { public static int Groups => 8; }
    internal readonly struct HalfBlocks : ISums { public static int Groups => 4; }

    /// <summary>C (+)= the rows (Q4_K, Q5_K or Q6_K) times the panels.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void Run<TL>(DType t, in Int8Rows w, in Int8Acts x, float* c, int ldc, bool first) where TL : struct, ITileLayout
    {
        if (t == DType.Q6_K) RunQ6_K(w, x, c, ldc, first);   // Q6_K's tiles are row tiles (no lane layout)
        else if (t == DType.Q5_K) Run<TL, HalfBlocks>(w, x, c, ldc, first);
        else Run<TL, WholeBlock>(w, x, c, ldc, first);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void Run<TL, TSums>(in Int8Rows w, in Int8Acts x, float* c, int ldc, bool first) where TL : struct, ITileLayout where TSums : ISums
    {
        int panel = TOps.Panel;
        bool two = TOps.TokenStep != TOps.Panel;   // folded by the JIT
        long next = (long)x.Blocks * panel;        // the second panel's offset in D and S (its quants: 32× that)
        sbyte* xa = x.Q, xb = x.Q + 32 * next;
        int* sc = (int*)w.D;                        // sc·0x10001 of sub-block b of row k at TL.ScaleBlock·b + TL.ScaleRow·k
        TI i0a = default, i0b = default, i1a = default, i1b = default, i2a = default, i2b = default, i3a = default, i3b = default;
        for (int b = 0; b < S; b++)
        for (int g0 = 0; g0 < 8; g0 += TSums.Groups)
        {
            TAcc a0a = default, a0b = default, a1a = default, a1b = default, a2a = default, a2b = default, a3a = default, a3b = default;
            Int8Micro4<TOps, TX, TAcc, TF>.Dot4<TL>(w.Q + TL.Block * b + TL.Group * g0, xa + 32 * panel * b + 4 * panel * g0, xb + 32 * panel * b + 4 * panel * g0,
                ref a0a, ref a0b, ref a1a, ref a1b, ref a2a, ref a2b, ref a3a, ref a3b, TSums.Groups);
            int* sb = sc + TL.ScaleBlock * b;
            i0a = TOps.AddScaled(i0a, a0a, sb); if (two) i0b = TOps.AddScaled(i0b, a0b, sb);
            i1a = TOps.AddScaled(i1a, a1a, sb + TL.ScaleRow); if (two) i1b = TOps.AddScaled(i1b, a1b, sb + TL.ScaleRow);
            i2a = TOps.AddScaled(i2a, a2a, sb + 2 * TL.ScaleRow); if (two) i2b = TOps.AddScaled(i2b, a2b, sb + 2 * TL.ScaleRow);
            i3a = TOps.AddScaled(i3a, a3a, sb + 3 * TL.ScaleRow); if (two) i3b = TOps.AddScaled(i3b, a3b, sb + 3 * TL.ScaleRow);
        }
        Finish<TL>(w.M, i0a, i1a, i2a, i3a, x.D, (int*)x.S, c, ldc, first);
        if (two) Finish<TL>(w.M, i0b, i1b, i2b, i3b, x.D + next, (int*)x.S + next, c + panel, ldc, first);
    }

    /// <summary>
    /// Q6_K against Q8_K activations over one super-block (row tiles from <see cref="Int8Tiles.UnpackQ6_K"/>): q (0..63)
    /// in one plane, so per 4 k one vpmaddubsw (sdot) per row and panel, as for the 4-bit formats; but 2·63·128 per int16
    /// pair leaves room for only two of them, so each 8 k go to int32 by one multiply-add against the sub-block's scale
    /// (sc·0x10001), and the super-block ends as ggml's vec_dot_q6_K_q8_K does: d_x·d·(Σ_j sc_j·Σ q·q_x −
    /// 32·Σ_j sc_j·Σq_x), the second sum one multiply-add per 32 of the scale pairs against the activations' int16 pairs
    /// of sums per 16 (<see cref="Int8Acts.SHalf"/>). Per 32 k and row and panel (AVX-512): 8 vpmaddubsw, 4 vpaddw, 4
    /// vpmaddwd and 4 vpaddd (the nibble-plane split it replaced did 16, 16 and a float step per 16).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void RunQ6_K(in Int8Rows w, in Int8Acts x, float* c, int ldc, bool first)
    {
        int panel = TOps.Panel, ss = w.ScaleStride;   // 16 scales per row in D, the 8 scale pairs and d in M
        bool two = TOps.TokenStep != TOps.Panel;
        long next = (long)x.Blocks * panel;           // the second panel's offset in D (SHalf: twice that, Q: 32×)
        sbyte* xa = x.Q, xb = x.Q + 32 * next;
        int* sc = (int*)w.D;
        TI i0a = default, i0b = default, i1a = default, i1b = default, i2a = default, i2b = default, i3a = default, i3b = default;
        for (int b = 0; b < S; b++)
        for (int e = 0; e < 4; e++)                   // 8 k: groups 2e, 2e + 1 of block b, in sub-block 2b + e/2
        {
            TAcc a0a = default, a0b = default, a1a = default, a1b = default, a2a = default, a2b = default, a3a = default, a3b = default;
            Int8Micro4<TOps, TX, TAcc, TF>.Dot4<RowTiles>(w.Q + 32 * b + 8 * e, xa + 32 * panel * b + 8 * panel * e, xb + 32 * panel * b + 8 * panel * e,
                ref a0a, ref a0b, ref a1a, ref a1b, ref a2a, ref a2b, ref a3a, ref a3b, groups: 2);
            int* sb = sc + 2 * b + e / 2;
            i0a = TOps.AddScaled(i0a, a0a, sb); if (two) i0b = TOps.AddScaled(i0b, a0b, sb);
            i1a = TOps.AddScaled(i1a, a1a, sb + ss); if (two) i1b = TOps.AddScaled(i1b, a1b, sb + ss);
            i2a = TOps.AddScaled(i2a, a2a, sb + 2 * ss); if (two) i2b = TOps.AddScaled(i2b, a2b, sb + 2 * ss);
            i3a = TOps.AddScaled(i3a, a3a, sb + 3 * ss); if (two) i3b = TOps.AddScaled(i3b, a3b, sb + 3 * ss);
        }
        FinishQ6_K(w.M, ss, i0a, i1a, i2a, i3a, x.D, (int*)x.SHalf, c, ldc, first);
        if (two) FinishQ6_K(w.M, ss, i0b, i1b, i2b, i3b, x.D + next, (int*)x.SHalf + 2 * next, c + panel, ldc, first);
    }

    /// <summary>One panel's 4 rows of Q6_K (row stride <paramref name="ss"/> in <paramref name="wm"/>): the −32 term
    /// (8 multiply-adds of the row's scale pairs against the int16 pairs of sums per 16 at <paramref name="bs"/>, block p
    /// at 2·Panel·p) and the float step, C (+)= d_x·d·isum − 32·d_x·d·ibias.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void FinishQ6_K(float* wm, int ss, TI i0, TI i1, TI i2, TI i3, float* dx, int* bs, float* c, int ldc, bool first)
    {
        var d = Unsafe.ReadUnaligned<TF>(dx);         // the super-block's d_x, repeated in each block's slot
        Int8Micro4<TOps, TX, TAcc, TF>.Load4(c, ldc, first, out var f0, out var f1, out var f2, out var f3);
        f0 = RowQ6_K(f0, i0, wm, bs, d);
        f1 = RowQ6_K(f1, i1, wm + ss, bs, d);
        f2 = RowQ6_K(f2, i2, wm + 2 * ss, bs, d);
        f3 = RowQ6_K(f3, i3, wm + 3 * ss, bs, d);
        Int8Micro4<TOps, TX, TAcc, TF>.Store4(c, ldc, f0, f1, f2, f3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TF RowQ6_K(TF f, TI isum, float* wm, int* bs, TF dx)
    {
        int* pairs = (int*)wm;
        TI ib = default;
        for (int p = 0; p < S; p++)
            ib = TOps.AddMins(ib, bs + 2 * TOps.Panel * p, pairs[p]);
        return TOps.ScaleK(f, isum, ib, wm[8], -32 * wm[8], dx);
    }

    /// <summary>One panel: the mins term and the float step of 4 rows (slots 0..5 of mins, d, −dmin in <paramref name="wm"/>,
    /// as <typeparamref name="TL"/> places them).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Finish<TL>(float* wm, TI i0, TI i1, TI i2, TI i3, float* dx, int* bs, float* c, int ldc, bool first) where TL : struct, ITileLayout
    {
        var d = Unsafe.ReadUnaligned<TF>(dx);
        Int8Micro4<TOps, TX, TAcc, TF>.Load4(c, ldc, first, out var f0, out var f1, out var f2, out var f3);
        f0 = Row<TL>(f0, i0, wm, bs, d);
        f1 = Row<TL>(f1, i1, wm + TL.ScaleRow, bs, d);
        f2 = Row<TL>(f2, i2, wm + 2 * TL.ScaleRow, bs, d);
        f3 = Row<TL>(f3, i3, wm + 3 * TL.ScaleRow, bs, d);
        Int8Micro4<TOps, TX, TAcc, TF>.Store4(c, ldc, f0, f1, f2, f3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static TF Row<TL>(TF f, TI isum, float* wm, int* bs, TF dx) where TL : struct, ITileLayout
    {
        int* mins = (int*)wm;
        int panel = TOps.Panel, slot = TL.ScaleBlock;
        var imin = TOps.AddMins(default, bs, mins[0]);
        imin = TOps.AddMins(imin, bs + panel, mins[slot]);
        imin = TOps.AddMins(imin, bs + 2 * panel, mins[2 * slot]);
        imin = TOps.AddMins(imin, bs + 3 * panel, mins[3 * slot]);
        return TOps.ScaleK(f, isum, imin, wm[4 * slot], wm[5 * slot], dx);
    }
}

/// <summary>
/// Integer matrix-matrix product (prompt processing) for the formats whose elements are d·q + m per 32 (or 16)
/// elements, on every instruction set with an <typeparamref name="TMicro"/>:
/// <list type="bullet">
/// <item>Weight tiles of 64 rows × 256 columns are unpacked once per call to bytes q with per-block d and m, and
/// reused for every token: from the decode kernels' interleaved copy where a 4-bit matrix has one, as lane tiles in
/// its own layout (<see cref="Int8Tiles.UnpackLanes"/>: nibble splits of whole chunks), else row by row
/// (<see cref="Int8Tiles.Unpack"/>).</item>
/// <item>Activations are quantized once per call exactly as <see cref="ActQ8.QuantizeQ8_0"/> (Q4_K where
/// <see cref="IInt8Micro.UsesQ8K"/>: as <see cref="ActQ8.QuantizeQ8_K"/>, the activations its matrix-vector kernels use) and packed into panels
/// (<see cref="Int8Panels"/>).</item>
/// <item>The tiled driver (<see cref="TiledGemm{TKernel}"/>, shared with the float GEMM) runs the ISA's
/// micro-kernel, which forms Σq·qx per block in integers and accumulates C += d_w·d_x·Σq·qx + m_w·(d_x·Σqx) in
/// float (Q4_K: sc·Σq·qx summed in int32 over the super-block, then one float step per 256,
/// <see cref="Int8MicroK{TOps, TX, TAcc, TI, TF}"/>).</item>
/// </list>
/// </summary>
internal static unsafe class GemmInt8<TMicro> where TMicro : IInt8Micro
{
    private const int RowBlock = TiledGemm<Int8Tile>.RowBlock, KBlock = Int8Tiles.KBlock, BlocksPerSlice = Int8Tiles.BlocksPerSlice;

    public static void Run(WeightMatrix w, float* x, float* y, int n)
    {
        int nPad = (n + TMicro.TokenStep - 1) / TMicro.TokenStep * TMicro.TokenStep;
        var acts = Int8Panels.Pack(x, n, w.Cols, TMicro.Panel, nPad / TMicro.Panel, Int8Tiles.ScalesPerBlock(w.Type) == 2, TMicro.UsesQ8K(w.Type));
        TiledGemm<Int8Tile>.Run(w, new Int8Tile(acts), y, n, nPad);
    }

    /// <summary>
    /// The int8 tile: q bytes [64][256] (low plane), the high nibble plane [64][256] (8-bit formats only), then d and m
    /// floats [64][ss] each, ss = scales per row of a slice (<see cref="RowTiles"/>); or, for a 4-bit matrix with an
    /// interleaved copy, its q bytes in lanes and d, m [8][64] (<see cref="LaneTiles"/>, <see cref="Int8Tiles.UnpackLanes"/>;
    /// which of the two: <see cref="InLanes"/> of the matrix). And the packed activations.
    /// </summary>
    internal readonly struct Int8Tile(Int8Acts x) : ITileKernel
    {
        private readonly Int8Acts X = x;

        public static int RowStep => 4;
        public static int TokenStep => TMicro.TokenStep;
        public static long TileBytes(DType t) => 2 * RowBlock * KBlock + 2 * RowBlock * 2 * BlocksPerSlice * sizeof(float);

        /// <summary>Whether <paramref name="w"/>'s tiles are lane tiles: where its interleaved copy holds the rows in
        /// lanes already; the stored rows unpack faster to row tiles.</summary>
        private static bool InLanes(WeightMatrix w) => w.Interleaved != null && Int8Tiles.InLanes(w.Type);

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public static void Unpack(WeightMatrix w, int r0, int nr, int nrPad, int k0, int len, byte* tile)
        {
            int ss = Int8Tiles.ScalesPerBlock(w.Type) * BlocksPerSlice, nBlocks = len / 32, b0 = k0 / 32;
            byte* high = tile + RowBlock * KBlock;
            float* wd = (float*)(tile + 2 * RowBlock * KBlock), wm = wd + RowBlock * ss;
            bool lanes = InLanes(w);
            if (lanes)
                Int8Tiles.UnpackLanes(w, r0, nrPad, b0, nBlocks, TMicro.UsesQ8K(w.Type), tile, wd, wm);
            else if (TMicro.UsesQ8K(w.Type))
                for (int r = 0; r < nr; r++)
                    Int8Tiles.UnpackQ8K(w, r0 + r, k0 / KBlock, tile + r * KBlock, (int*)(wd + r * ss), wm + r * ss);
            else
                for (int r = 0; r < nr; r++)
                    Int8Tiles.Unpack(w, r0 + r, b0, nBlocks, tile + r * KBlock, high + r * KBlock, wd + r * ss, wm + r * ss);
            if (lanes) return;   // the copy's padding rows are zero
            for (int r = nr; r < nrPad; r++)
            {
                new Span<byte>(tile + r * KBlock, KBlock).Clear();
                new Span<byte>(high + r * KBlock, KBlock).Clear();
                new Span<float>(wd + r * ss, ss).Clear();
                new Span<float>(wm + r * ss, ss).Clear();
            }
        }

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Micro(WeightMatrix w, byte* tile, int r, int k0, int len, int t0, float* c, int ldc, bool first)
        {
            var t = w.Type;
            int ss = Int8Tiles.ScalesPerBlock(t) * BlocksPerSlice, nb = X.Blocks;
            float* wd = (float*)(tile + 2 * RowBlock * KBlock);
            long pb = (long)(t0 / TMicro.Panel) * nb + k0 / 32;   // (panel, block) index
            // Both built per call from the fields and constant panel sizes: a struct kept across calls, or one built
            // from hoisted locals or by Int8Acts.At, measured 15 % slower on AVX-512 (JIT code generation; 256x1536,
            // n = 256, one thread).
            var xa = new Int8Acts(X.Q + pb * (32 * TMicro.Panel), X.D + pb * TMicro.Panel, X.S + pb * TMicro.Panel, X.SHalf + pb * (2 * TMicro.Panel), X.O + pb * TMicro.Panel, TMicro.Panel, nb);
            if (!InLanes(w))
            {
                var wr = new Int8Rows(tile + r * KBlock, tile + RowBlock * KBlock + r * KBlock, wd + r * ss, wd + RowBlock * ss + r * ss, ss);
                TMicro.Micro4<RowTiles>(t, wr, len / 32, xa, c, ldc, first);
            }
            else
            {
                var wr = new Int8Rows(tile + r / Int8Tiles.Lanes * Int8Tiles.LaneGroupBytes + 4 * (r % Int8Tiles.Lanes), null, wd + r, wd + RowBlock * ss + r, ss);
                TMicro.Micro4<LaneTiles>(t, wr, len / 32, xa, c, ldc, first);
            }
        }
    }
}

/// <summary>
/// Rows of activations quantized once each, for packings that take a row several times (<see cref="ExpertGemm"/>: a
/// token chosen by several routed experts and by the shared experts): per row <see cref="RowBytes"/> bytes holding
/// <see cref="ActQ8"/>'s arrays, Q [cols], then D [cols/32] and S [cols/32] in Q8_0 style, or in Q8_K style D
/// [cols/256] (in D's place) and BSums [cols/16] int16 (in S's place). Filled by <see cref="Int8Panels.Quantize"/>.
/// </summary>
internal readonly unsafe struct ActQ8Rows(byte* mem, int cols, bool q8k)
{
    public readonly byte* Mem = mem;
    public readonly int Cols = cols;
    /// <summary>Q8_K style (<see cref="ActQ8.QuantizeQ8_K"/>), else Q8_0 style (<see cref="ActQ8.QuantizeQ8_0"/>).</summary>
    public readonly bool Q8K = q8k;

    public static long RowBytes(int cols) => cols + 2L * (cols / 32) * sizeof(float);

    /// <summary>Row <paramref name="r"/>'s arrays (no nibble order).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public ActQ8 Row(long r)
    {
        byte* p = Mem + r * RowBytes(Cols);
        float* d = (float*)(p + Cols), s = d + Cols / 32;
        return new ActQ8 { Cols = Cols, Q = (sbyte*)p, D = d, S = s, BSums = (short*)s };
    }
}

/// <summary>
/// The activations of the int8 GEMMs: each token quantized by <see cref="ActQ8.QuantizeQ8_0"/> (the same bytes as its
/// scalar specification) and rearranged into panels of <c>panel</c> tokens so that one vector load holds 4 consecutive
/// k of every token of a panel: Xq[panel][block][k/4][token][k%4], with Dx[panel][block][token] = d,
/// Sx[panel][block][token] = d·Σq and, where asked, Sh[panel][block][half][token] = d·Σq over each 16. Padding tokens
/// are zero. In Q8_K mode (for Q4_K weights) each token is quantized by <see cref="ActQ8.QuantizeQ8_K"/> instead: the
/// same quant layout, Dx its scale per 256 repeated in each of the super-block's 8 blocks, and Sx per super-block the
/// int16 pairs (Σq over sub-block 2p, over 2p + 1) in the slots of its blocks p = 0..3 (<see cref="Int8Acts"/>), and,
/// where asked for sums per 16 (Q6_K), Sh's first slot of block b the int16 pair (Σq over elements 32b..32b + 15, over
/// 32b + 16..32b + 31).
/// The tokens are either quantized while packed (rows of one x), or quantized once beforehand (<see cref="Quantize"/>)
/// and only rearranged, so a row packed several times is quantized once.
/// </summary>
internal static unsafe class Int8Panels
{
    [ThreadStatic] private static byte[]? _mem, _rows;
    [ThreadStatic] private static PackJob? _job;
    [ThreadStatic] private static QuantizeJob? _quantize;

    /// <summary>Packs tokens 0..n of x[n, cols] into <paramref name="panels"/> panels (per-thread scratch, valid until the next call).</summary>
    public static Int8Acts Pack(float* x, int n, int cols, int panel, int panels, bool halfSums, bool q8k = false)
    {
        var job = _job ??= new PackJob();
        job.X = x; job.Rows = new ActQ8Rows(null, cols, q8k); job.Index = null;
        return Run(job, n, panel, panels, halfSums);
    }

    /// <summary>
    /// Packs token t = 0..n as the quantized row <paramref name="index"/>[t] of <paramref name="rows"/> (a padding token
    /// where it is negative) into <paramref name="panels"/> panels: the bytes <see cref="Pack(float*, int, int, int, int, bool, bool)"/>
    /// gives for those rows gathered as floats (per-thread scratch, valid until the next call).
    /// </summary>
    public static Int8Acts Pack(in ActQ8Rows rows, int* index, int n, int panel, int panels, bool halfSums)
    {
        var job = _job ??= new PackJob();
        job.X = null; job.Rows = rows; job.Index = index;
        return Run(job, n, panel, panels, halfSums);
    }

    private static Int8Acts Run(PackJob job, int n, int panel, int panels, bool halfSums)
    {
        int nb = job.Rows.Cols / 32;
        long qBytes = (long)panels * nb * 32 * panel, floats = (long)panels * nb * panel;
        byte* mem = Scratch.Get(ref _mem, qBytes + 5 * floats * sizeof(float));
        float* d = (float*)(mem + qBytes);
        job.Acts = new Int8Acts((sbyte*)mem, d, d + floats, d + 2 * floats, (int*)(d + 4 * floats), panel, nb);
        job.N = n; job.HalfSums = halfSums;
        try { WorkerPool.Shared.Run(job, panels, grain: 1); }
        finally { job.X = null; job.Index = null; }
        return job.Acts;
    }

    /// <summary>
    /// Quantizes the rows <paramref name="src"/>[0..n) (each <paramref name="cols"/> floats) once each, Q8_K style where
    /// <paramref name="q8k"/>, else Q8_0 style, over the worker pool (per-thread scratch, valid until the next call).
    /// </summary>
    public static ActQ8Rows Quantize(float** src, int n, int cols, bool q8k)
    {
        var rows = new ActQ8Rows(Scratch.Get(ref _rows, n * ActQ8Rows.RowBytes(cols)), cols, q8k);
        var job = _quantize ??= new QuantizeJob();
        job.Src = src; job.Rows = rows;
        try { WorkerPool.Shared.Run(job, n, grain: 4); }
        finally { job.Src = null; }
        return rows;
    }

    private sealed class QuantizeJob : IRangeJob
    {
        public float** Src;
        public ActQ8Rows Rows;

        public void Run(int start, int end)
        {
            for (int r = start; r < end; r++)
            {
                var a = Rows.Row(r);
                if (Rows.Q8K) ActQ8.QuantizeQ8_K(Src[r], &a);
                else ActQ8.QuantizeQ8_0(Src[r], &a);
            }
        }
    }

    /// <summary>
    /// <see cref="Int8Acts.O"/> of one block of 32 quants: (−8·Σ q[k] over k ≡ 0, 1 mod 4) in the low int16 and (−8·Σ
    /// over k ≡ 2, 3 mod 4) in the high one, each within ±8·16·128.
    /// </summary>
    internal static int Q4_0Offset(sbyte* q)
    {
        int lo = 0, hi = 0;
        if (Vector128.IsHardwareAccelerated)
        {
            // per k mod 8 (|·| ≤ 4·128), then the lanes 0, 1, 4, 5 (k ≡ 0, 1 mod 4) apart from the rest: 4% of a Q4_0
            // GEMM's time went to the scalar loop (perf, 1.5B shapes, one thread)
            var a = Vector128.Load(q);
            var b = Vector128.Load(q + 16);
            var byMod8 = Vector128.WidenLower(a) + Vector128.WidenUpper(a) + Vector128.WidenLower(b) + Vector128.WidenUpper(b);
            int all = Vector128.Sum(byMod8);
            lo = Vector128.Sum(byMod8 & Vector128.Create((short)-1, -1, 0, 0, -1, -1, 0, 0));
            hi = all - lo;
        }
        else
            for (int k = 0; k < 32; k += 4) { lo += q[k] + q[k + 1]; hi += q[k + 2] + q[k + 3]; }
        return (ushort)(short)(-8 * lo) | -8 * hi << 16;
    }

    /// <summary>Tokens from x[N, cols], each quantized here, or (X null) the quantized rows Rows[Index[t]].</summary>
    private sealed class PackJob : IRangeJob
    {
        [ThreadStatic] private static byte[]? _token;
        public float* X;
        public ActQ8Rows Rows;   // Cols and Q8K; Mem only where Index is set
        public int* Index;
        public int N;
        public Int8Acts Acts;
        public bool HalfSums;

        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Run(int start, int end)
        {
            int cols = Rows.Cols, nb = cols / 32, panel = Acts.Panel, group = 4 * panel;   // bytes per 4 k of a panel
            bool q8k = Rows.Q8K;
            var a = ActQ8.At(Scratch.Get(ref _token, ActQ8.BytesFor(cols)), cols);
            a.Nib = null;   // no nibble order: only the GEMV's VBMI Q4_0 body reads it
            for (int p = start; p < end; p++)
            for (int j = 0; j < panel; j++)
            {
                int t = p * panel + j;
                var at = Acts.At((long)p * nb);
                sbyte* dst = at.Q + 4 * j;                   // block b, group g (4 k) of this token at dst + 32·panel·b + group·g
                float* d = at.D + j, s = at.S + j, sh = at.SHalf + j;   // block b at + panel·b (SHalf: + 2·panel·b, + panel for the second half)
                int* o = at.O + j;                                       // block b at + panel·b
                if (t >= N || Index != null && Index[t] < 0)
                {
                    for (int b = 0; b < nb; b++, dst += 32 * panel, d += panel, s += panel, sh += 2 * panel, o += panel)
                    {
                        for (int g = 0; g < 8; g++) *(int*)(dst + group * g) = 0;
                        *d = *s = sh[0] = sh[panel] = 0;
                        *o = 0;
                    }
                    continue;
                }
                if (Index != null) a = Rows.Row(Index[t]);
                else if (q8k) ActQ8.QuantizeQ8_K(X + (long)t * cols, &a);
                else ActQ8.QuantizeQ8_0(X + (long)t * cols, &a);
                sbyte* q = a.Q;
                for (int b = 0; b < nb; b++, q += 32, dst += 32 * panel, d += panel, s += panel, sh += 2 * panel, o += panel)
                {
                    for (int g = 0; g < 8; g++) *(int*)(dst + group * g) = *(int*)(q + 4 * g);
                    if (q8k)
                    {
                        *d = a.D[b / 8];
                        int pair = b % 8;   // pair p (sub-blocks 2p, 2p + 1): the super-block's sums per 16 at 4p..4p + 3
                        short* bs = a.BSums + 16 * (b / 8) + 4 * pair;
                        *(int*)s = pair < 4 ? (ushort)(bs[0] + bs[1]) | (bs[2] + bs[3]) << 16 : 0;
                        *o = 0;
                        // formats with a scale per 16 (Q6_K): block b's two sums per 16, an int16 pair, in its first
                        // SHalf slot (S keeps Q4_K's pairs per 32, so one packing serves both in a fused expert batch)
                        if (HalfSums)
                        {
                            short* b16 = a.BSums + 2 * b;
                            *(int*)sh = (ushort)b16[0] | b16[1] << 16;
                            sh[panel] = 0;
                        }
                        continue;
                    }
                    *d = a.D[b];
                    *s = a.S[b];
                    *o = Q4_0Offset(q);
                    if (HalfSums)
                    {
                        var v = Vector128.Load(q);
                        var u = Vector128.Load(q + 16);
                        int s0 = Vector128.Sum(Vector128.WidenLower(v) + Vector128.WidenUpper(v));
                        int s1 = Vector128.Sum(Vector128.WidenLower(u) + Vector128.WidenUpper(u));
                        sh[0] = a.D[b] * s0;
                        sh[panel] = a.D[b] * s1;
                    }
                }
            }
        }
    }
}
