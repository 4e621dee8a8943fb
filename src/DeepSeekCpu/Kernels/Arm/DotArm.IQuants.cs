using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;

namespace DeepSeekCpu.Kernels.Arm;

// The i-quants on Arm64: each super-block is decoded to its integer form (IQuantDecode.Block: 256 signed bytes, a
// scale per 16), each 16 dotted with the Q8_K activations (sdot, or widening multiplies without Dp) and scaled in
// int32 lanes. One body serves all seven types.
internal static unsafe partial class DotArm
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static float IQuant<T, TDot>(byte* w, ActQ8* a) where T : IIQuant where TDot : IS8Dot
    {
        sbyte* v = stackalloc sbyte[256];
        short* sc = stackalloc short[16];
        ulong* masks = stackalloc ulong[32];
        int size = IQuantDecode.BlockBytes<T>();
        var acc = Vector128<float>.Zero;
        for (int b = 0; b < a->Cols / 256; b++, w += size)
        {
            float f = IQuantDecode.Block<T>(w, v, sc, masks);
            sbyte* x = a->Q + 256 * b;
            var sumi = Vector128<int>.Zero;
            for (int k = 0; k < 16; k++)
                sumi += TDot.Dot(Vector128<int>.Zero, Vector128.Load(v + 16 * k), Vector128.Load(x + 16 * k)) * Vector128.Create((int)sc[k]);
            acc = AdvSimd.FusedMultiplyAdd(acc, AdvSimd.ConvertToSingle(sumi), Vector128.Create(f * a->D[b]));
        }
        return Vector128.Sum(acc);
    }
}
