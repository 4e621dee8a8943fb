using DeepSeekCpu.Kernels.Repack;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels.Reference;

/// <summary>
/// Scalar dot products of one interleaved group of 16 rows (layout: <see cref="Interleave"/>) with one token's
/// activations: the specification of the interleaved SIMD bodies. Each row's sum is formed with the float operations
/// of <see cref="DotReference"/> in the same order, so the result equals DotReference over the original rows exactly.
/// </summary>
internal static unsafe class InterleavedReference
{
    /// <summary>One format's contribution of one block of row r: what DotReference adds to its sum per block.</summary>
    private interface IBlockTerm
    {
        static abstract DType Type { get; }
        /// <param name="x">the block's quantized activations</param><param name="bs">Q8_K style: its 16 sums of 16</param>
        static abstract float Term(byte* blk, int r, sbyte* x, short* bs, float dx);
    }

    /// <summary>y[r] = Σ over blocks of the format's term, row by row, blocks in order (DotReference's order).</summary>
    private static void Rows<T>(byte* group, ActQ8* a, float* y) where T : IBlockTerm
    {
        int size = T.Type.BlockSize(), nb = a->Cols / size, blockBytes = Interleave.BlockBytes(T.Type);
        for (int r = 0; r < Interleave.Rows; r++)
        {
            float sum = 0;
            for (int b = 0; b < nb; b++) sum += T.Term(group + b * blockBytes, r, a->Q + size * b, a->BSums + 16 * b, a->D[b]);
            y[r] = sum;
        }
    }

    /// <summary>Quant byte k of row r's block in the interleaved block at <paramref name="blk"/>, chunks from <paramref name="quants"/>.</summary>
    private static byte QuantByte(byte* blk, int r, int k, int quants = 32) => blk[quants + 64 * (k / 4) + 4 * r + k % 4];

    private static float Scale(byte* blk, int r) => (float)((Half*)blk)[r];

    public static void Q4_0(byte* group, ActQ8* a, float* y) => Rows<Q4_0Term>(group, a, y);
    public static void Q8_0(byte* group, ActQ8* a, float* y) => Rows<Q8_0Term>(group, a, y);
    public static void Q4_K(byte* group, ActQ8* a, float* y) => Rows<Q4_KTerm>(group, a, y);
    public static void Q6_K(byte* group, ActQ8* a, float* y) => Rows<Q6_KTerm>(group, a, y);

    private readonly struct Q4_0Term : IBlockTerm
    {
        public static DType Type => DType.Q4_0;
        public static float Term(byte* blk, int r, sbyte* x, short* bs, float dx)
        {
            int isum = 0;
            for (int k = 0; k < 16; k++)
            {
                byte q = QuantByte(blk, r, k);
                isum += ((q & 0xF) - 8) * x[k] + ((q >> 4) - 8) * x[k + 16];
            }
            return Scale(blk, r) * dx * isum;
        }
    }

    private readonly struct Q8_0Term : IBlockTerm
    {
        public static DType Type => DType.Q8_0;
        public static float Term(byte* blk, int r, sbyte* x, short* bs, float dx)
        {
            int isum = 0;
            for (int k = 0; k < 32; k++) isum += (sbyte)QuantByte(blk, r, k) * x[k];
            return Scale(blk, r) * dx * isum;
        }
    }

    /// <summary>Q4_K against Q8_K activations: ggml_vec_dot_q4_K_q8_K_generic's sums.</summary>
    private readonly struct Q4_KTerm : IBlockTerm
    {
        public static DType Type => DType.Q4_K;
        public static float Term(byte* blk, int r, sbyte* x, short* bs, float dx)
        {
            int sumi = 0, summ = 0;
            for (int s = 0; s < 8; s++)
            {
                int scale = blk[Interleave.Q4_KScales + 16 * s + r], min = blk[Interleave.Q4_KMins + 32 * (s / 2) + 2 * r + s % 2];
                int isum = 0;
                for (int l = 0; l < 32; l++)
                {
                    // element 64g + l (s = 2g, low nibble) or 64g + 32 + l (s = 2g + 1, high) sits in byte 32g + l
                    byte q = QuantByte(blk, r, 32 * (s / 2) + l, Interleave.Q4_KQuants);
                    isum += (s % 2 == 0 ? q & 0xF : q >> 4) * x[32 * s + l];
                }
                sumi += scale * isum;
                summ += min * (bs[2 * s] + bs[2 * s + 1]);
            }
            return Scale(blk, r) * dx * sumi - Scale(blk + Interleave.Q4_KDMin, r) * dx * summ;
        }
    }

    /// <summary>Q6_K against Q8_K activations (bit positions: BlockQ6_K).</summary>
    private readonly struct Q6_KTerm : IBlockTerm
    {
        public static DType Type => DType.Q6_K;
        public static float Term(byte* blk, int r, sbyte* x, short* bs, float dx)
        {
            int sumi = 0;
            for (int half = 0; half < 2; half++)
            {
                sbyte* xh = x + 128 * half;
                for (int l = 0; l < 32; l++)
                {
                    int s = 8 * half + l / 16;                               // scales[s], [s+2], [s+4], [s+6]
                    byte ql0 = QuantByte(blk, r, 64 * half + l, Interleave.Q6_KLow), ql1 = QuantByte(blk, r, 64 * half + l + 32, Interleave.Q6_KLow);
                    byte qh = QuantByte(blk, r, 32 * half + l, Interleave.Q6_KHigh);
                    int q1 = ((ql0 & 0xF) | (((qh >> 0) & 3) << 4)) - 32;
                    int q2 = ((ql1 & 0xF) | (((qh >> 2) & 3) << 4)) - 32;
                    int q3 = ((ql0 >> 4) | (((qh >> 4) & 3) << 4)) - 32;
                    int q4 = ((ql1 >> 4) | (((qh >> 6) & 3) << 4)) - 32;
                    sumi += Q6Scale(blk, r, s) * q1 * xh[l] + Q6Scale(blk, r, s + 2) * q2 * xh[l + 32]
                          + Q6Scale(blk, r, s + 4) * q3 * xh[l + 64] + Q6Scale(blk, r, s + 6) * q4 * xh[l + 96];
                }
            }
            return Scale(blk, r) * dx * sumi;
        }

        /// <summary>Scale s (0..15) of row r: pair s/2, element s % 2.</summary>
        private static int Q6Scale(byte* blk, int r, int s) => (sbyte)blk[Interleave.Q6_KScales + 32 * (s / 2) + 2 * r + s % 2];
    }
}
