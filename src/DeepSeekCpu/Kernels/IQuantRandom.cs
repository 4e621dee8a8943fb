using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Kernels;

/// <summary>
/// Random valid i-quant blocks, for tests and synthetic models (there is no quantizer for these types: ggml's needs an
/// importance matrix). Every bit pattern of an i-quant block is valid except the super-block scale, so the blocks are
/// random bytes with a finite f16 scale chosen to give the elements the requested root mean square.
/// </summary>
internal static unsafe class IQuantRandom
{
    /// <summary>Whether <paramref name="t"/> is an i-quant (IQ1_S … IQ3_S) this engine reads.</summary>
    public static bool Handles(DType t) => IQuantDecode.Handles(t);

    /// <summary>Fills <paramref name="dst"/> (whole blocks of <paramref name="t"/>) from the xorshift state
    /// <paramref name="state"/> (nonzero), the elements' RMS about <paramref name="rms"/>.</summary>
    public static void Fill(DType t, Span<byte> dst, ref ulong state, float rms)
    {
        if (!IQuantDecode.Handles(t)) throw new ArgumentException($"{t} is not an i-quant");
        int size = t.BlockBytes();
        if (dst.Length % size != 0) throw new ArgumentException($"{dst.Length} bytes is not a whole number of {t} blocks");
        float d = rms / UnitRms(t);
        fixed (byte* p = dst)
        {
            for (int i = 0; i + 8 <= dst.Length; i += 8) *(ulong*)(p + i) = Next(ref state);
            for (int i = dst.Length & ~7; i < dst.Length; i++) p[i] = (byte)Next(ref state);
            for (int b = 0; b < dst.Length / size; b++) SetScale(t, p + b * size, (Half)(d * (0.75f + (Next(ref state) & 255) / 512f)));
        }
    }

    /// <summary>Writes the super-block scale d (IQ1_M spreads it over the top nibbles of its four u16 scales).</summary>
    public static void SetScale(DType t, byte* blk, Half d)
    {
        ushort bits = BitConverter.HalfToUInt16Bits(d);
        if (t != DType.IQ1_M) { *(ushort*)blk = bits; return; }
        var sc = (ushort*)((BlockIQ1_M*)blk)->Scales;
        for (int k = 0; k < 4; k++) sc[k] = (ushort)((sc[k] & 0x0FFF) | (((bits >> (4 * k)) & 0xF) << 12));
    }

    private static ulong Next(ref ulong x)
    {
        x ^= x >> 12; x ^= x << 25; x ^= x >> 27;
        return x * 0x2545F4914F6CDD1DUL;
    }

    /// <summary>The RMS of elements of random blocks with d = 1 (measured once over 64 blocks).</summary>
    private static float UnitRms(DType t)
    {
        int size = t.BlockBytes();
        var blocks = new byte[64 * size];
        var y = new float[64 * 256];
        ulong s = 0x9E3779B97F4A7C15UL;
        fixed (byte* p = blocks)
        {
            for (int i = 0; i < blocks.Length; i++) p[i] = (byte)Next(ref s);
            for (int b = 0; b < 64; b++) SetScale(t, p + b * size, (Half)1f);
            Dequantize.Row(t, p, y);
        }
        double sum = 0;
        foreach (float v in y) sum += (double)v * v;
        return (float)Math.Sqrt(sum / y.Length);
    }
}
