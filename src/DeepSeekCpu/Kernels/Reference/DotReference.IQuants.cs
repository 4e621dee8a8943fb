namespace DeepSeekCpu.Kernels.Reference;

// ggml-cpu/quants.c ggml_vec_dot_iq{2_xxs,2_xs,2_s,3_xxs,3_s,1_s,1_m}_q8_K_generic in one integer form: per
// super-block Factor · d_y · Σ_g ScaleInt(g) · Σ_j v_j · q8_j (IQuantLayouts.cs). For the IQ2/IQ3 types that is
// ggml's sum term for term; for IQ1, ggml's sumi + 1/8·sumi1 times 8 (v = 8·grid ± 1), exact in integers.
internal static unsafe partial class DotReference
{
    public static float IQuant<T>(byte* w, ActQ8* a) where T : IIQuant
    {
        int size = Kernels.IQuant.BlockBytes<T>();
        float sum = 0;
        for (int b = 0; b < a->Cols / 256; b++, w += size)
        {
            sbyte* x = a->Q + 256 * b;
            int sumi = 0;
            for (int g = 0; g < 32; g++)
            {
                ulong grid = T.Grid(w, g, out int signs);
                int s = 0;
                for (int j = 0; j < 8; j++) s += Kernels.IQuant.Value(grid, signs, j, T.Shifted) * x[8 * g + j];
                sumi += T.ScaleInt(w, g) * s;
            }
            sum += Kernels.IQuant.Factor<T>(w) * a->D[b] * sumi;
        }
        return sum;
    }
}
