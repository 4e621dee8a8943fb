using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels.X86;

// x86 bodies of Q2_K, Q3_K, Q5_1, IQ4_NL, MXFP4 and IQ4_XS (maths: Reference/DotReference.KQuants.cs). Q2_K and Q3_K share
// one layout of 2-bit runs (see BlockQ2_K): per half of 128 elements, run j (32 elements) is bits 2j of 32 bytes, and
// its two sub-blocks of 16 fall in the two 128-bit lanes of a 256-bit register, so one vpshufb spreads the two
// sub-block scales over the int16 lanes that vpmaddwd multiplies. The IQ4 types look their 16 int8 levels up with
// vpshufb and take the signed × signed products with the sign trick; MXFP4 is IQ4_NL with another grid and scale
// (INibbleGrid), one body.
internal static unsafe partial class DotX86
{
    // ---------- shared helpers ----------

    /// <summary>A nibble grid's 16 levels in each 128-bit lane (vpshufb looks up within lanes).</summary>
    private static Vector256<sbyte> Table256<TGrid>() where TGrid : INibbleGrid => Vector256.Create(Vector128.Create(TGrid.Values));

    private static Vector256<sbyte> IQ4Table256 => Table256<IQ4_NLGrid>();

    /// <summary>
    /// The int16 scales of run <paramref name="r"/> (= 4·half + j): sub-block 2r in the low lane, 2r+1 in the high lane,
    /// from 16 signed byte scales repeated in both lanes. vpshufb puts the byte in both halves of each int16; the
    /// arithmetic shift sign-extends it.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<short> RunScales(Vector256<sbyte> scales, int r)
    {
        var idx = Vector256.Create(Vector128.Create((ushort)(0x0101 * 2 * r)), Vector128.Create((ushort)(0x0101 * (2 * r + 1))));
        return Vector256.ShiftRightArithmetic(Avx2.Shuffle(scales, idx.AsSByte()).AsInt16(), 8);
    }

    /// <summary>
    /// Σ over the 8 runs of 32 of a Q2_K/Q3_K super-block of scale·Σ q·y in 8 int32 lanes, q = the 2-bit field, plus
    /// 4 where the run's bit of <paramref name="hmask"/> is set (Q3_K; null for Q2_K). |pair| ≤ 2·7·127 fits int16.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> TwoBitRuns(byte* qs, byte* hmask, sbyte* x, Vector256<sbyte> scales)
    {
        var three = Vector256.Create((byte)3);
        var one = Vector256.Create((byte)1);
        var hm = hmask == null ? default : Vector256.Load(hmask).AsUInt16();
        var sumi = Vector256<int>.Zero;
        for (int h = 0; h < 2; h++)
        {
            var q = Vector256.Load(qs + 32 * h).AsUInt16();
            for (int j = 0; j < 4; j++)
            {
                int r = 4 * h + j;
                var v = Vector256.ShiftRightLogical(q, 2 * j).AsByte() & three;
                if (hmask != null) v |= Vector256.ShiftLeft((Vector256.ShiftRightLogical(hm, r).AsByte() & one).AsUInt16(), 2).AsByte();
                sumi += Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(v, Vector256.Load(x + 32 * r)), RunScales(scales, r));
            }
        }
        return sumi;
    }

    /// <summary>Byte j = 0x10 where bit j of <paramref name="qh"/> is set (the fifth bits of Q5_0/Q5_1).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<byte> FifthBits(uint qh)
    {
        var spread = Vector256.Create((byte)0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3);
        var bitOf = Vector256.Create(0x8040201008040201ul).AsByte();
        var bytes = Avx2.Shuffle(Vector256.Create(qh).AsByte(), spread);
        return Vector256.Equals(bytes & bitOf, bitOf) & Vector256.Create((byte)0x10);
    }

    /// <summary>The 32 levels of an IQ4 run (16 bytes of indices, low nibbles first).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<sbyte> IQ4Levels(byte* qs, Vector256<sbyte> table) => Avx2.Shuffle(table, Nibbles32(qs).AsSByte());

    /// <summary>Signed levels × signed activations in pairs (sign trick), then × an int16 scale per lane (vpmaddwd).
    /// |pair| ≤ 2·127·127 fits int16.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> ScaledDotS8S8(Vector256<sbyte> w, Vector256<sbyte> x, Vector256<short> scale) =>
        Avx2.MultiplyAddAdjacent(Avx2.MultiplyAddAdjacent(Avx2.Abs(w), Avx2.Sign(x, w)), scale);

    /// <summary>Q2_K at 256 (<see cref="Runs256"/>) or 512 bits (<see cref="Runs512"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Q2_K<TWidth>(byte* w, ActQ8* a) where TWidth : IRunWidth => TwoBitK(w, a, q3: false, wide: TWidth.Wide);

    /// <summary>Q3_K: unsigned levels 0..7 (2 low bits + 4·high bit), then Σ (q − 4)·y = Σ q·y − 4·Σ y per sub-block.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Q3_K<TWidth>(byte* w, ActQ8* a) where TWidth : IRunWidth => TwoBitK(w, a, q3: true, wide: TWidth.Wide);

    /// <summary>Which run body the Q2_K/Q3_K entries use: <see cref="TwoBitRuns"/> (256 bits) or <see cref="TwoBitRuns512"/>.</summary>
    internal interface IRunWidth { static abstract bool Wide { get; } }
    internal readonly struct Runs256 : IRunWidth { public static bool Wide => false; }
    internal readonly struct Runs512 : IRunWidth { public static bool Wide => true; }

    /// <summary>
    /// Q2_K (<paramref name="q3"/> false) and Q3_K: per super-block the runs at 256 or 512 bits (<paramref name="wide"/>),
    /// summed to an exact int, then the format's scales and offsets (<see cref="TwoBitSuperBlock"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float TwoBitK(byte* w, ActQ8* a, bool q3, bool wide)
    {
        sbyte* scales = stackalloc sbyte[16];
        int stride = q3 ? sizeof(BlockQ3_K) : sizeof(BlockQ2_K);
        float sum = 0;
        for (int b = 0; b < a->Cols / 256; b++)
        {
            PrefetchAhead(w + b * stride, 2);             // 84 / 110-byte super-blocks
            var k = new TwoBitSuperBlock(w, b, q3, a->BSums + 16 * b, scales);
            var sc = Vector128.Load(scales);
            sbyte* x = a->Q + 256 * b;
            int isum = wide ? Vector512.Sum(TwoBitRuns512(k.Qs, k.HMask, x, sc)) : Vector256.Sum(TwoBitRuns(k.Qs, k.HMask, x, Vector256.Create(sc, sc)));
            sum += a->D[b] * (k.D * (isum - k.Offset) - k.Min);
        }
        return sum;
    }

    // ---------- 256-bit bodies ----------

    /// <summary>Q5_1: unsigned 5-bit q straight into the u8×s8 dot; the min through the activations' d·Σq.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Q5_1<TDot>(byte* w, ActQ8* a) where TDot : IU8S8Dot => WithMin<TDot, Q5_1Quants>(w, a);

    private readonly struct Q5_1Quants : IMinQuants32
    {
        public static int BlockBytes => sizeof(BlockQ5_1);

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector256<byte> Quants(byte* blk) =>
            Nibbles32(((BlockQ5_1*)blk)->Qs) | FifthBits(*(uint*)((BlockQ5_1*)blk)->Qh);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float IQ4_NL<TDot>(byte* w, ActQ8* a) where TDot : IU8S8Dot => NibbleGrid<IQ4_NLGrid, TDot>(w, a);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float MXFP4<TDot>(byte* w, ActQ8* a) where TDot : IU8S8Dot => NibbleGrid<MXFP4Grid, TDot>(w, a);

    /// <summary>One block per step: its levels by one vpshufb, the signed dot, × scale·dy (<see cref="INibbleGrid"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float NibbleGrid<TGrid, TDot>(byte* w, ActQ8* a) where TGrid : INibbleGrid where TDot : IU8S8Dot
    {
        var table = Table256<TGrid>();
        var acc = Vector256<float>.Zero;
        for (int b = 0; b < a->Cols / 32; b++, w += TGrid.BlockBytes)
        {
            PrefetchAhead(w, 1);
            var p = DotS8S8<TDot>(IQ4Levels(w + TGrid.BlockBytes - 16, table), Vector256.Load(a->Q + 32 * b));
            acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(p), Vector256.Create(TGrid.Scale(w) * a->D[b]), acc);
        }
        return HSum(acc);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float IQ4_XS(byte* w, ActQ8* a)
    {
        var blk = (BlockIQ4_XS*)w;
        var table = IQ4Table256;
        var acc = Vector256<float>.Zero;
        for (int b = 0; b < a->Cols / 256; b++, blk++)
        {
            PrefetchAhead(blk, 3);                        // 136-byte super-block
            sbyte* x = a->Q + 256 * b;
            var sumi = Vector256<int>.Zero;
            for (int ib = 0; ib < 8; ib++)
                sumi += ScaledDotS8S8(IQ4Levels(blk->Qs + 16 * ib, table), Vector256.Load(x + 32 * ib), Vector256.Create((short)IQ4NL.Scale(blk, ib)));
            acc = Fma.MultiplyAdd(Avx.ConvertToVector256Single(sumi), Vector256.Create(HalfBits.ToFloat(blk->D) * a->D[b]), acc);
        }
        return HSum(acc);
    }

    // ---------- 512-bit bodies ----------

    /// <summary>
    /// The Q2_K/Q3_K runs 512 bits at a time: one 64-byte load holds both halves' 2-bit fields, so shift j gives run j
    /// of half 0 (low 256 bits) and of half 1 (high 256 bits), matched by two joined activation runs; the four
    /// sub-block scales of those runs are spread over the four 128-bit lanes by one vpshufb. For Q3_K the high bits
    /// come from hmask and hmask >> 4 (bit j of half 0, bit 4 + j of half 1).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> TwoBitRuns512(byte* qs, byte* hmask, sbyte* x, Vector128<sbyte> scales)
    {
        var three = Vector512.Create((byte)3);
        var one = Vector512.Create((byte)1);
        var sc = Join(Vector256.Create(scales, scales), Vector256.Create(scales, scales));
        var q = Vector512.Load(qs).AsUInt16();
        var hm = Vector512<ushort>.Zero;
        if (hmask != null)
        {
            var h = Vector256.Load(hmask).AsUInt16();
            hm = Join(h, Vector256.ShiftRightLogical(h, 4));
        }
        var sumi = Vector512<int>.Zero;
        for (int j = 0; j < 4; j++)
        {
            var v = Vector512.ShiftRightLogical(q, 2 * j).AsByte() & three;
            if (hmask != null) v |= Vector512.ShiftLeft((Vector512.ShiftRightLogical(hm, j).AsByte() & one).AsUInt16(), 2).AsByte();
            // int16 lanes: sub-blocks 2j | 2j+1 | 8+2j | 9+2j, one per 128-bit lane
            var idx = Join(Vector256.Create(Vector128.Create((ushort)(0x0101 * 2 * j)), Vector128.Create((ushort)(0x0101 * (2 * j + 1)))),
                Vector256.Create(Vector128.Create((ushort)(0x0101 * (8 + 2 * j))), Vector128.Create((ushort)(0x0101 * (9 + 2 * j)))));
            var s16 = Vector512.ShiftRightArithmetic(Avx512BW.Shuffle(sc, idx.AsSByte()).AsInt16(), 8);
            sumi += ScaledDot(v, Join(x + 32 * j, x + 128 + 32 * j), s16);
        }
        return sumi;
    }

    /// <summary>Q5_1, two blocks per register (<see cref="NibblePair"/> order, fifth bits joined), one-block tail at 256 bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float Q5_1Avx512(byte* w, ActQ8* a) => Pairs512<Q5_1Pair>(w, a);

    /// <summary>IQ4_NL, two blocks per register: the nibbles index the grid with one vpshufb, then a signed dot.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float IQ4_NLAvx512(byte* w, ActQ8* a) => Pairs512<GridPair<IQ4_NLGrid>>(w, a);

    /// <summary>MXFP4, two blocks per register, as IQ4_NL.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float MXFP4Avx512(byte* w, ActQ8* a) => Pairs512<GridPair<MXFP4Grid>>(w, a);

    /// <summary>
    /// A 32-element block format (one scale d per block) whose 512-bit body takes two blocks per register
    /// (<see cref="Pairs512{TPair}"/>): the integer dot of the pair, the min where the format has one, the 256-bit body
    /// for an odd last block.
    /// </summary>
    private interface IBlockPair
    {
        static abstract int BlockBytes { get; }
        /// <summary>Whether x = d·q + m (the m·(dy·Σqy) terms are added once at the end), or x = d·q.</summary>
        static abstract bool HasMin { get; }
        /// <summary>The block's scale d.</summary>
        static abstract float Scale(byte* blk);
        /// <summary>The grid the format's nibbles index (or zero).</summary>
        static abstract Vector512<sbyte> Table { get; }
        static abstract Vector512<int> Dot(byte* b0, byte* b1, sbyte* x, Vector512<ushort> shifts, Vector512<sbyte> table);
        static abstract float Min(byte* blk);
        static abstract float Tail(byte* blk, ActQ8* a);
    }

    private readonly struct Q5_1Pair : IBlockPair
    {
        public static int BlockBytes => sizeof(BlockQ5_1);
        public static bool HasMin => true;
        public static Vector512<sbyte> Table => default;
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<int> Dot(byte* b0, byte* b1, sbyte* x, Vector512<ushort> shifts, Vector512<sbyte> table)
        {
            BlockQ5_1* p = (BlockQ5_1*)b0, q = (BlockQ5_1*)b1;
            return DotU8S8x64(NibblePair(p->Qs, q->Qs, shifts) | Join(FifthBits(*(uint*)p->Qh), FifthBits(*(uint*)q->Qh)), Vector512.Load(x));
        }
        public static float Scale(byte* blk) => HalfBits.ToFloat(((BlockQ5_1*)blk)->D);
        public static float Min(byte* blk) => HalfBits.ToFloat(((BlockQ5_1*)blk)->M);
        public static float Tail(byte* blk, ActQ8* a) => Q5_1<MaddDot>(blk, a);
    }

    /// <summary>A nibble grid format (IQ4_NL, MXFP4): the nibbles index the grid with one vpshufb, then a signed dot.</summary>
    private readonly struct GridPair<TGrid> : IBlockPair where TGrid : INibbleGrid
    {
        public static int BlockBytes => TGrid.BlockBytes;
        public static bool HasMin => false;
        public static Vector512<sbyte> Table => Join(Table256<TGrid>(), Table256<TGrid>());
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static Vector512<int> Dot(byte* b0, byte* b1, sbyte* x, Vector512<ushort> shifts, Vector512<sbyte> table) =>
            DotS8S8x64(Avx512BW.Shuffle(table, NibblePair(b0 + TGrid.BlockBytes - 16, b1 + TGrid.BlockBytes - 16, shifts).AsSByte()), Vector512.Load(x));
        public static float Scale(byte* blk) => TGrid.Scale(blk);
        public static float Min(byte* blk) => 0;
        public static float Tail(byte* blk, ActQ8* a) => NibbleGrid<TGrid, MaddDot>(blk, a);
    }

    /// <summary>Two blocks of <typeparamref name="TPair"/> per step, each block's d·dy in its half of the register.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float Pairs512<TPair>(byte* w, ActQ8* a) where TPair : IBlockPair
    {
        int nb = a->Cols / 32, b = 0, size = TPair.BlockBytes;
        var shifts = NibbleShifts;
        var table = TPair.Table;
        var acc = Vector512<float>.Zero;
        float offset = 0;
        for (; b + 2 <= nb; b += 2)
        {
            byte* b0 = w + b * size, b1 = b0 + size;
            PrefetchAhead(b0, 1);
            var prod = TPair.Dot(b0, b1, a->Q + 32 * b, shifts, table);
            acc = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(prod), TwoScales(TPair.Scale(b0) * a->D[b], TPair.Scale(b1) * a->D[b + 1]), acc);
            if (TPair.HasMin) offset += TPair.Min(b0) * a->S[b] + TPair.Min(b1) * a->S[b + 1];
        }
        float sum = TPair.HasMin ? Vector512.Sum(acc) + offset : Vector512.Sum(acc);
        if (b == nb) return sum;
        var tail = From(a, b, 32);
        return sum + TPair.Tail(w + b * size, &tail);
    }

    /// <summary>IQ4_XS, two sub-blocks per register; each sub-block's scale on its 16 int16 lanes inside vpmaddwd.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float IQ4_XSAvx512(byte* w, ActQ8* a)
    {
        var blk = (BlockIQ4_XS*)w;
        var shifts = NibbleShifts;
        var table = IQ4Table512;
        var acc = Vector512<float>.Zero;
        for (int b = 0; b < a->Cols / 256; b++, blk++)
        {
            PrefetchAhead(blk, 3);
            sbyte* x = a->Q + 256 * b;
            var sumi = Vector512<int>.Zero;
            for (int p = 0; p < 8; p += 2)
            {
                var levels = Avx512BW.Shuffle(table, NibblePair(blk->Qs + 16 * p, blk->Qs + 16 * p + 16, shifts).AsSByte());
                var scale = Join(Vector256.Create((short)IQ4NL.Scale(blk, p)), Vector256.Create((short)IQ4NL.Scale(blk, p + 1)));
                var x64 = Vector512.Load(x + 32 * p);
                var signedX = Vector512.ConditionalSelect(Vector512.LessThan(levels, Vector512<sbyte>.Zero), Vector512<sbyte>.Zero - x64, x64);
                sumi += ScaledDot(Avx512BW.Abs(levels), signedX, scale);
            }
            acc = Avx512F.FusedMultiplyAdd(Avx512F.ConvertToVector512Single(sumi), Vector512.Create(HalfBits.ToFloat(blk->D) * a->D[b]), acc);
        }
        return Vector512.Sum(acc);
    }

    private static Vector512<sbyte> IQ4Table512 => GridPair<IQ4_NLGrid>.Table;

    /// <summary>Per-16-bit shifts of <see cref="NibblePair"/>: lanes 1 and 3 take the high nibbles.</summary>
    private static Vector512<ushort> NibbleShifts =>
        Join(Vector256.Create(Vector128<ushort>.Zero, Vector128.Create((ushort)4)), Vector256.Create(Vector128<ushort>.Zero, Vector128.Create((ushort)4)));

    /// <summary>The activations from block <paramref name="b"/> on (blocks of <paramref name="per"/> elements), for a one-block tail.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ActQ8 From(ActQ8* a, int b, int per) => new()
    {
        Q = a->Q + per * b, D = a->D + b, S = a->S + b, BSums = a->BSums + per / 16 * b, Cols = a->Cols - per * b,
    };
}
