namespace DeepSeekCpu.Weights;

// DeepSeek-V4's FP4 routed experts as MXFP4 matrices. The checkpoint (HF deepseek-ai/DeepSeek-V4-Flash, inference/
// model.py and convert.py; ../shared/fixtures/deepseek-v4-tiny/README.md) stores `experts.E.{w1,w2,w3}.weight` as I8
// [out, in/2], two e2m1 codes per byte (element 2j the low nibble, 2j+1 the high nibble), and `.scale` as F8_E8M0
// [out, in/32], one power of two 2^(e − 127) per 32 inputs. MXFP4 holds the same numbers: the same 4-bit e2m1 codes
// (bit 3 the sign; value table 0, .5, 1, 1.5, 2, 3, 4, 6) and the same E8M0 byte per 32; its grid is the doubled
// values with the halved scale 2^(e − 128), which is the identical product. Only the nibble order differs (MXFP4:
// element j low, j + 16 high in byte j of a block), so the conversion is exact and the kernels never expand FP4.
internal sealed unsafe partial class WeightMatrix
{
    /// <summary>
    /// An MXFP4 copy (owned native memory, 4.25 bits per weight) of a V4 FP4 weight: <paramref name="codes"/> I8 [out, in/2]
    /// and <paramref name="e8m0Scales"/> F8_E8M0 [out, in/32]; wrong types or shapes and NaN scales (0xFF) are refused
    /// with one line naming the file and tensor.
    /// </summary>
    public static WeightMatrix FromE2M1(TensorView codes, TensorView e8m0Scales)
    {
        var s = e8m0Scales;
        if (codes.Type != DType.I8 || codes.Rank != 2 || codes.Shape[1] % 16 != 0 || codes.Shape[0] > int.MaxValue || codes.Shape[1] > int.MaxValue / 2)
            throw new ModelFormatException($"{codes.File}: tensor {codes.Name} is {codes.Type} {codes.ShapeText}, expected I8 [out, in/2] FP4 codes with in a multiple of 32");
        int rows = (int)codes.Shape[0], cols = (int)codes.Shape[1] * 2, blocks = cols / 32;
        if (s.Type != DType.F8_E8M0 || s.Rank != 2 || s.Shape[0] != rows || s.Shape[1] != blocks)
            throw new ModelFormatException($"{s.File}: tensor {s.Name} is {s.Type} {s.ShapeText}, expected F8_E8M0 [{rows}, {blocks}] scales for {codes.Name}");
        var buffer = new NativeBuffer(DType.MXFP4.ByteCount((long)rows * cols));
        var dst = (BlockMXFP4*)buffer.Pointer;                   // [rows, blocks]
        for (long b = 0; b < (long)rows * blocks; b++)
        {
            byte e = s.Data[b];
            if (e == 0xFF)
            {
                buffer.Dispose();
                throw new ModelFormatException($"{s.File}: tensor {s.Name} has the NaN scale 0xFF at row {b / blocks}, block {b % blocks}");
            }
            // V4 byte k of the block holds elements 2k (low) and 2k+1 (high); MXFP4 byte j holds j (low) and j+16 (high)
            byte* src = codes.Data + 16 * b;
            dst[b].E = e;
            for (int k = 0; k < 8; k++)
            {
                byte first = src[k], second = src[k + 8];        // elements 2k, 2k+1 and 16+2k, 17+2k
                dst[b].Qs[2 * k] = (byte)((first & 0x0F) | (second << 4));
                dst[b].Qs[2 * k + 1] = (byte)((first >> 4) | (second & 0xF0));
            }
        }
        return new WeightMatrix(codes.Name, DType.MXFP4, rows, cols, buffer.Pointer, null, buffer);
    }
}
