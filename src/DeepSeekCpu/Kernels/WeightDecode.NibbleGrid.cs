using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace DeepSeekCpu.Kernels;

internal static unsafe partial class WeightDecode
{
    /// <summary>
    /// Nibble-grid blocks (MXFP4) to float32 for the float GEMM: one table lookup per 16 indices (pshufb / tbl), then
    /// level × scale, the product Dequantize forms (so equal to it bit for bit).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void NibbleGrid<TGrid>(byte* src, int blocks, float* dst) where TGrid : INibbleGrid
    {
        var table = Vector128.Create(TGrid.Values);
        var m4 = Vector128.Create((byte)0x0F);
        for (int b = 0; b < blocks; b++, src += TGrid.BlockBytes, dst += 32)
        {
            var n = Vector128.Load(src + TGrid.BlockBytes - 16);
            var scale = Vector128.Create(TGrid.Scale(src));
            Store16(Vector128.Shuffle(table, (n & m4).AsSByte()), scale, dst);
            Store16(Vector128.Shuffle(table, Vector128.ShiftRightLogical(n, 4).AsSByte()), scale, dst + 16);
        }
    }
}
