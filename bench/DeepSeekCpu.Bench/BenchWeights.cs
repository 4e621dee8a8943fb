using DeepSeekCpu.Kernels;
using DeepSeekCpu.Weights;

namespace DeepSeekCpu.Bench;

/// <summary>Weight matrices with random contents (valid scales, no NaN or subnormal scales) for timing.</summary>
internal static unsafe class BenchWeights
{
    public static readonly (string Name, int Rows, int Cols)[] Qwen15BShapes =
    [
        ("attn_q/o 1536x1536", 1536, 1536),
        ("attn_k/v 256x1536", 256, 1536),
        ("ffn_gate/up 8960x1536", 8960, 1536),
        ("ffn_down 1536x8960", 1536, 8960),
        ("output 151936x1536", 151936, 1536),
    ];

    public static WeightMatrix Make(DType type, int rows, int cols, int seed = 1)
    {
        long rowBytes = type.ByteCount(cols);
        var buf = new NativeBuffer(rowBytes * rows + rows * ((cols + 127) / 128) * 4 + 64);
        var rng = new Random(seed);
        var all = new Span<byte>(buf.Pointer, checked((int)Math.Min(int.MaxValue, rowBytes * rows)));
        for (long off = 0; off < rowBytes * rows; off += int.MaxValue)
            rng.NextBytes(new Span<byte>(buf.Pointer + off, (int)Math.Min(int.MaxValue, rowBytes * rows - off)));
        float* scales = null;
        long blocks = rowBytes * rows / type.BlockBytes();
        byte* p = buf.Pointer;
        var d = (Half)0.01f;
        switch (type)
        {
            case DType.Q8_0: for (long i = 0; i < blocks; i++) ((BlockQ8_0*)p)[i].D = d; break;
            case DType.Q4_0: for (long i = 0; i < blocks; i++) ((BlockQ4_0*)p)[i].D = d; break;
            case DType.Q4_1: for (long i = 0; i < blocks; i++) { ((BlockQ4_1*)p)[i].D = d; ((BlockQ4_1*)p)[i].M = d; } break;
            case DType.Q5_0: for (long i = 0; i < blocks; i++) ((BlockQ5_0*)p)[i].D = d; break;
            case DType.Q4_K: for (long i = 0; i < blocks; i++) { ((BlockQ4_K*)p)[i].D = d; ((BlockQ4_K*)p)[i].DMin = d; } break;
            case DType.Q5_K: for (long i = 0; i < blocks; i++) { ((BlockQ5_K*)p)[i].D = d; ((BlockQ5_K*)p)[i].DMin = d; } break;
            case DType.Q6_K: for (long i = 0; i < blocks; i++) ((BlockQ6_K*)p)[i].D = d; break;
            case DType.IQ4_NL: for (long i = 0; i < blocks; i++) ((BlockIQ4_NL*)p)[i].D = d; break;
            case DType.MXFP4: for (long i = 0; i < blocks; i++) ((BlockMXFP4*)p)[i].E = 120; break;   // 2^-7, as 0.01
            case DType.BF16:
                // keep exponents near 1.0 (no NaN/Inf/subnormals): 0x3C00..0x3FFF with a random sign
                for (long i = 0; i < blocks; i++) ((ushort*)p)[i] = (ushort)((((ushort*)p)[i] & 0x83FF) | 0x3C00);
                break;
            case DType.F16:
                for (long i = 0; i < blocks; i++) ((ushort*)p)[i] = (ushort)((((ushort*)p)[i] & 0x83FF) | 0x3800);
                break;
            case DType.F32:
                for (long i = 0; i < blocks; i++) ((float*)p)[i] = (float)(rng.NextDouble() - 0.5);
                break;
            case DType.F8_E4M3:
                for (long i = 0; i < blocks; i++) if ((p[i] & 0x7F) == 0x7F) p[i] = 0x7E;
                scales = (float*)(p + ((rowBytes * rows + 63) & ~63L));
                for (int i = 0; i < ((rows + 127) / 128) * ((cols + 127) / 128); i++) scales[i] = 0.001f;
                break;
        }
        return new WeightMatrix($"bench {type} {rows}x{cols}", type, rows, cols, p, scales, buf);
    }

    public static float[] Activations(int count, int seed = 2)
    {
        var rng = new Random(seed);
        var x = new float[count];
        for (int i = 0; i < count; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        return x;
    }
}
