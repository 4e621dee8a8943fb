using System.Runtime.InteropServices;
using DeepSeekCpu.Kernels;
using DeepSeekCpu.Weights;
using Xunit;

namespace DeepSeekCpu.Kernels.Tests;

/// <summary>The block structs match ggml-common.h byte for byte, and the reference dequantizers read them as llama.cpp does.</summary>
public unsafe class BlockLayoutTests
{
    [Fact]
    public void Sizes_match_ggml_static_asserts()
    {
        Assert.Equal(34, sizeof(BlockQ8_0)); Assert.Equal(DType.Q8_0.BlockBytes(), sizeof(BlockQ8_0));
        Assert.Equal(18, sizeof(BlockQ4_0)); Assert.Equal(DType.Q4_0.BlockBytes(), sizeof(BlockQ4_0));
        Assert.Equal(20, sizeof(BlockQ4_1)); Assert.Equal(DType.Q4_1.BlockBytes(), sizeof(BlockQ4_1));
        Assert.Equal(22, sizeof(BlockQ5_0)); Assert.Equal(DType.Q5_0.BlockBytes(), sizeof(BlockQ5_0));
        Assert.Equal(292, sizeof(BlockQ8_K)); Assert.Equal(DType.Q8_K.BlockBytes(), sizeof(BlockQ8_K));
        Assert.Equal(144, sizeof(BlockQ4_K)); Assert.Equal(DType.Q4_K.BlockBytes(), sizeof(BlockQ4_K));
        Assert.Equal(176, sizeof(BlockQ5_K)); Assert.Equal(DType.Q5_K.BlockBytes(), sizeof(BlockQ5_K));
        Assert.Equal(210, sizeof(BlockQ6_K)); Assert.Equal(DType.Q6_K.BlockBytes(), sizeof(BlockQ6_K));
    }

    [Fact]
    public void Field_offsets_match_ggml()
    {
        Assert.Equal(2, (int)Marshal.OffsetOf<BlockQ5_0>(nameof(BlockQ5_0.Qh)));
        Assert.Equal(6, (int)Marshal.OffsetOf<BlockQ5_0>(nameof(BlockQ5_0.Qs)));
        Assert.Equal(4, (int)Marshal.OffsetOf<BlockQ8_K>(nameof(BlockQ8_K.Qs)));
        Assert.Equal(260, (int)Marshal.OffsetOf<BlockQ8_K>(nameof(BlockQ8_K.BSums)));
        Assert.Equal(4, (int)Marshal.OffsetOf<BlockQ4_K>(nameof(BlockQ4_K.Scales)));
        Assert.Equal(16, (int)Marshal.OffsetOf<BlockQ4_K>(nameof(BlockQ4_K.Qs)));
        Assert.Equal(16, (int)Marshal.OffsetOf<BlockQ5_K>(nameof(BlockQ5_K.Qh)));
        Assert.Equal(48, (int)Marshal.OffsetOf<BlockQ5_K>(nameof(BlockQ5_K.Qs)));
        Assert.Equal(128, (int)Marshal.OffsetOf<BlockQ6_K>(nameof(BlockQ6_K.Qh)));
        Assert.Equal(192, (int)Marshal.OffsetOf<BlockQ6_K>(nameof(BlockQ6_K.Scales)));
        Assert.Equal(208, (int)Marshal.OffsetOf<BlockQ6_K>(nameof(BlockQ6_K.D)));
    }

    [Fact]
    public void Q4_0_hand_built_block()
    {
        // d = 0.5 (half 0x3800); byte j = (hi << 4) | lo with lo = j % 16, hi = 15 - j % 16
        var bytes = new byte[18];
        bytes[0] = 0x00; bytes[1] = 0x38;
        for (int j = 0; j < 16; j++) bytes[2 + j] = (byte)(((15 - j) << 4) | j);
        var y = new float[32];
        fixed (byte* p = bytes) Dequantize.Row(DType.Q4_0, p, y);
        for (int j = 0; j < 16; j++)
        {
            Assert.Equal(0.5f * (j - 8), y[j]);
            Assert.Equal(0.5f * (15 - j - 8), y[j + 16]);
        }
    }

    [Fact]
    public void Q5_0_fifth_bits_come_from_qh()
    {
        var bytes = new byte[22];
        bytes[0] = 0x00; bytes[1] = 0x3C;                 // d = 1
        uint qh = 0x8000_0001;                            // element 0 and element 31 get bit 4
        BitConverter.TryWriteBytes(bytes.AsSpan(2), qh);
        bytes[6 + 0] = 0x00; bytes[6 + 15] = 0xF0;        // element 0 low = 0, element 31 low = 15
        var y = new float[32];
        fixed (byte* p = bytes) Dequantize.Row(DType.Q5_0, p, y);
        Assert.Equal(16 - 16, y[0]);                      // 0 | 16
        Assert.Equal(31 - 16, y[31]);                     // 15 | 16
        Assert.Equal(0 - 16, y[1]);
        Assert.Equal(0 - 16, y[16]);
    }

    [Fact]
    public void Q4_K_scales_and_mins_unpack_as_get_scale_min_k4()
    {
        BlockQ4_K b = default;
        b.D = (Half)1f; b.DMin = (Half)0.5f;
        // Sub-block j gets scale j + 1 + 8·(j ≥ 4 ? 5 : 0) and min 2j + 1 (6-bit values using the top bits for j ≥ 4).
        int[] sc = new int[8], mn = new int[8];
        for (int j = 0; j < 8; j++) { sc[j] = j < 4 ? j + 1 : 40 + j; mn[j] = j < 4 ? 2 * j + 1 : 50 + j; }
        for (int j = 0; j < 4; j++) { b.Scales[j] = (byte)sc[j]; b.Scales[j + 4] = (byte)mn[j]; }
        for (int j = 4; j < 8; j++)
        {
            b.Scales[j + 4] = (byte)((sc[j] & 0xF) | ((mn[j] & 0xF) << 4));
            b.Scales[j - 4] |= (byte)((sc[j] >> 4) << 6);
            b.Scales[j] |= (byte)((mn[j] >> 4) << 6);
        }
        for (int l = 0; l < 128; l++) b.Qs[l] = (byte)(((l % 16) << 4) | (15 - l % 16));
        uint* packed = stackalloc uint[4];
        KQuant.UnpackScalesMins(b.Scales, packed);
        for (int j = 0; j < 8; j++)
        {
            KQuant.ScaleMin(j, b.Scales, out int s, out int m);
            Assert.Equal(sc[j], s);
            Assert.Equal(mn[j], m);
            Assert.Equal(sc[j], ((byte*)packed)[j]);
            Assert.Equal(mn[j], ((byte*)packed)[8 + j]);
        }
        var y = new float[256];
        Dequantize.Row(DType.Q4_K, (byte*)&b, y);
        for (int g = 0; g < 4; g++)
        for (int l = 0; l < 32; l++)
        {
            Assert.Equal(1f * sc[2 * g] * (15 - l % 16) - 0.5f * mn[2 * g], y[64 * g + l]);
            Assert.Equal(1f * sc[2 * g + 1] * (l % 16) - 0.5f * mn[2 * g + 1], y[64 * g + 32 + l]);
        }
    }

    [Fact]
    public void Q6_K_hand_built_block()
    {
        BlockQ6_K b = default;
        b.D = (Half)0.25f;
        for (int s = 0; s < 16; s++) b.Scales[s] = (sbyte)(s - 8);
        // Element e gets q = e % 64: write it through the documented bit positions.
        for (int e = 0; e < 256; e++)
        {
            int q = e % 64, half = e / 128, i = e % 128, l = i % 32, quarter = i / 32;
            int qlIndex = 64 * half + l + (quarter % 2 == 1 ? 32 : 0);
            if (quarter < 2) b.Ql[qlIndex] |= (byte)(q & 0xF); else b.Ql[qlIndex] |= (byte)((q & 0xF) << 4);
            b.Qh[32 * half + l] |= (byte)((q >> 4) << (2 * quarter));
        }
        var y = new float[256];
        Dequantize.Row(DType.Q6_K, (byte*)&b, y);
        for (int e = 0; e < 256; e++) Assert.Equal(0.25f * (e / 16 - 8) * (e % 64 - 32), y[e]);
    }

    [Fact]
    public void Q8_0_and_Q8_K_hand_built()
    {
        BlockQ8_0 a = default;
        a.D = (Half)0.125f;
        for (int j = 0; j < 32; j++) a.Qs[j] = (sbyte)(j * 8 - 128);
        var y = new float[32];
        Dequantize.Row(DType.Q8_0, (byte*)&a, y);
        for (int j = 0; j < 32; j++) Assert.Equal(0.125f * (j * 8 - 128), y[j]);

        BlockQ8_K k = default;
        k.D = 0.5f;
        for (int j = 0; j < 256; j++) k.Qs[j] = (sbyte)(j - 128);
        var z = new float[256];
        Dequantize.Row(DType.Q8_K, (byte*)&k, z);
        for (int j = 0; j < 256; j++) Assert.Equal(0.5f * (j - 128), z[j]);
    }

    [Fact]
    public void Bf16_is_the_upper_half_of_f32()
    {
        ushort[] v = [0x3F80, 0xC000, 0x7F80, 0x0001, 0x4049];
        float[] expect = [1f, -2f, float.PositiveInfinity, BitConverter.Int32BitsToSingle(0x10000), BitConverter.Int32BitsToSingle(0x40490000)];
        var y = new float[5];
        fixed (ushort* p = v) Dequantize.Row(DType.BF16, (byte*)p, y);
        Assert.Equal(expect, y);
    }
}
