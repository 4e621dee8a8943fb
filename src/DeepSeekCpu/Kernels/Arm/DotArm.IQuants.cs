using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace DeepSeekCpu.Kernels.Arm;

/// <summary>
/// The i-quants on Arm64 (driver: IQuantDecode.Dot): each 16 of a decoded super-block dotted with the Q8_K activations
/// (sdot, or widening multiplies without Dp: |v·x| pairs ≤ 2·62·127 fit int16) and scaled in int32 lanes. One body
/// serves all seven types.
/// </summary>
internal readonly unsafe struct IQuantDotNeon<TDot> : IDecodedDot where TDot : IS8Dot
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int Dot(DecodedBlock* d, sbyte* x)
    {
        var sumi = Vector128<int>.Zero;
        for (int k = 0; k < 16; k++)
            sumi += TDot.Dot(Vector128<int>.Zero, Vector128.Load(d->V + 16 * k), Vector128.Load(x + 16 * k)) * Vector128.Create((int)d->Scales[k]);
        return Vector128.Sum(sumi);
    }
}
