using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels.Reference;

// Dot products of Q2_K, Q3_K, Q5_1, IQ4_NL, IQ4_XS rows with the activations ggml pairs them with
// (ggml-cpu/quants.c ggml_vec_dot_*_generic, llama.cpp 3f545be): Q8_K style for the 256-element types (Q2_K, Q3_K,
// IQ4_XS), Q8_0 style for IQ4_NL, and for Q5_1 the Q8_0 style too, because ggml's partner block_q8_1 is block_q8_0
// plus s = d·Σq, which our Q8_0-style activations already carry (ActQ8.S) for Q4_1.
internal static unsafe partial class DotReference
{
    // x = d q + m:  Σ x·y = d·dy·Σ q qy + m·(dy Σ qy); q of element e: nibble e % 16 of qs (low for e < 16), bit e of qh
    public static float Q5_1(byte* w, ActQ8* a)
    {
        var blk = (BlockQ5_1*)w;
        float sum = 0;
        for (int b = 0; b < a->Cols / 32; b++, blk++)
        {
            uint qh = *(uint*)blk->Qh;
            int isum = 0;
            for (int e = 0; e < 32; e++)
                isum += (((blk->Qs[e % 16] >> (e / 16 * 4)) & 0xF) | (int)((qh >> e) & 1) << 4) * a->Q[32 * b + e];
            sum += (float)blk->D * a->D[b] * isum + (float)blk->M * a->S[b];
        }
        return sum;
    }

    // Σ over sub-blocks s of d·sc_s·Σ q·qy − dmin·m_s·Σ qy, with Σ qy from the Q8_K block sums (one per 16, as the sub-blocks).
    public static float Q2_K(byte* w, ActQ8* a)
    {
        var blk = (BlockQ2_K*)w;
        float sum = 0;
        for (int b = 0; b < a->Cols / 256; b++, blk++)
        {
            sbyte* x = a->Q + 256 * b;
            int sumi = 0, summ = 0;
            for (int s = 0; s < 16; s++)
            {
                int h = s / 8, j = s % 8 / 2, k = s % 2;
                byte* q = blk->Qs + 32 * h + 16 * k;
                int isum = 0;
                for (int l = 0; l < 16; l++) isum += ((q[l] >> (2 * j)) & 3) * x[16 * s + l];
                sumi += (blk->Scales[s] & 0xF) * isum;
                summ += (blk->Scales[s] >> 4) * a->BSums[16 * b + s];
            }
            sum += (float)blk->D * a->D[b] * sumi - (float)blk->DMin * a->D[b] * summ;
        }
        return sum;
    }

    public static float Q3_K(byte* w, ActQ8* a)
    {
        var blk = (BlockQ3_K*)w;
        sbyte* scales = stackalloc sbyte[16];
        float sum = 0;
        for (int b = 0; b < a->Cols / 256; b++, blk++)
        {
            sbyte* x = a->Q + 256 * b;
            Q3KScales.Unpack(blk->Scales, scales);
            int sumi = 0;
            for (int s = 0; s < 16; s++)
            {
                int h = s / 8, j = s % 8 / 2, k = s % 2, bit = 1 << (4 * h + j);
                byte* q = blk->Qs + 32 * h + 16 * k;
                byte* hm = blk->HMask + 16 * k;
                int isum = 0;
                for (int l = 0; l < 16; l++) isum += (((q[l] >> (2 * j)) & 3) - ((hm[l] & bit) != 0 ? 0 : 4)) * x[16 * s + l];
                sumi += scales[s] * isum;
            }
            sum += (float)blk->D * a->D[b] * sumi;
        }
        return sum;
    }

    public static float IQ4_NL(byte* w, ActQ8* a) => NibbleGrid<IQ4_NLGrid>(w, a);

    /// <summary>ggml_vec_dot_mxfp4_q8_0_generic: the doubled e2m1 levels, scale 2^(e − 128).</summary>
    public static float MXFP4(byte* w, ActQ8* a) => NibbleGrid<MXFP4Grid>(w, a);

    /// <summary>Σ over 32-element blocks of scale·dy·Σ level·qy, levels looked up by the nibbles (<see cref="INibbleGrid"/>).</summary>
    internal static float NibbleGrid<TGrid>(byte* w, ActQ8* a) where TGrid : INibbleGrid
    {
        var values = TGrid.Values;
        float sum = 0;
        for (int b = 0; b < a->Cols / 32; b++, w += TGrid.BlockBytes)
        {
            byte* qs = w + TGrid.BlockBytes - 16;
            sbyte* x = a->Q + 32 * b;
            int isum = 0;
            for (int j = 0; j < 16; j++) isum += values[qs[j] & 0xF] * x[j] + values[qs[j] >> 4] * x[j + 16];
            sum += TGrid.Scale(w) * a->D[b] * isum;
        }
        return sum;
    }

    public static float IQ4_XS(byte* w, ActQ8* a) => Blocks256<IQ4_XSQuant>(w, a);

    // x = d·(ls_{i/32} − 32)·kvalues_iq4nl[index]; sub-block i/32 holds its 32 indices as one IQ4_NL block's qs
    private readonly struct IQ4_XSQuant : IScaledQuant256
    {
        public static int BlockBytes => sizeof(BlockIQ4_XS);
        public static float D(byte* blk) => (float)((BlockIQ4_XS*)blk)->D;

        public static int Quant(byte* blk, int i)
        {
            byte* qs = ((BlockIQ4_XS*)blk)->Qs + 16 * (i / 32);
            int j = i % 32, index = j < 16 ? qs[j] & 0xF : qs[j - 16] >> 4;
            return IQ4NL.Scale((BlockIQ4_XS*)blk, i / 32) * IQ4NL.Values[index];
        }
    }
}
