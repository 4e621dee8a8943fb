using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;

namespace DeepSeekCpu.Kernels.Arm;

/// <summary>
/// Arm64 DotProd operators of the Q8_0 GEMM (<see cref="GemmQ8{TOps, TX, TAcc, TF}"/>): per 4 k one sdot per row and
/// panel multiplies the signed activations by the row's 4 signed weight bytes broadcast to every lane (no +128 offset:
/// sums start at 0); 4-token panels (one 128-bit register of int32 lanes), two per call. Checked against the integer
/// reference under qemu (tests/DeepSeekCpu.Kernels.Tests on neon-dp); its speed has not been measured on Arm hardware.
/// </summary>
internal readonly unsafe struct GemmQ8Neon : IQ8Ops<Vector128<sbyte>, Vector128<int>, Vector128<float>>
{
    public static Vector128<int> Dot(Vector128<int> acc, Vector128<sbyte> w, Vector128<sbyte> x) => Dp.DotProduct(acc, w, x);

    /// <summary>fmla computes a + b·c: f + float(acc)·(dx·dw), the x86 order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Scale(Vector128<float> f, Vector128<int> acc, float* dw, Vector128<float> dx) =>
        AdvSimd.FusedMultiplyAdd(f, AdvSimd.ConvertToSingle(acc), dx * Vector128.Create(*dw));

    public static Vector128<sbyte> Broadcast(sbyte* w) => Vector128.Create(*(int*)w).AsSByte();
    public static Vector128<int> Start(int bias) => Vector128.Create(bias);
    public static bool UnsignedActs => false;
    public static int SumOffset => 0;
    public static int Panel => 4;
    public static int TokenStep => 8;
}
