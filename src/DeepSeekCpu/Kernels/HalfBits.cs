using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace DeepSeekCpu.Kernels;

/// <summary>Fast scalar half → float for block scales in hot loops.</summary>
internal static class HalfBits
{
    /// <summary>
    /// Integer rebias of the exponent (15 → 127: add 112 &lt;&lt; 23 to the magnitude bits placed at float bit 13); a
    /// zero or subnormal half (exponent 0) instead gets exponent 113 and has 2^-14 subtracted, which leaves exactly
    /// mantissa · 2^-24. Exact for every finite half, and no floating-point operation ever sees a subnormal operand:
    /// x86 cores without flush-to-zero take a microcode assist (~100+ cycles) for each one, and the block scales of
    /// K-quants (d = largest sub-block scale / 63) are often below 2^-14. Infinities and NaNs become large finite
    /// numbers, which block scales never are.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static float ToFloat(Half h)
    {
        uint bits = BitConverter.HalfToUInt16Bits(h);
        uint mag = (bits & 0x7FFF) << 13;
        uint sub = mag < 0x0080_0000 ? 0xFFFF_FFFFu : 0;            // exponent 0: zero or subnormal
        float f = BitConverter.UInt32BitsToSingle(mag + 0x3800_0000 + (sub & 0x0080_0000))
                - BitConverter.UInt32BitsToSingle(sub & 0x3880_0000);  // − 2^-14 (− 0 for normal halves)
        return BitConverter.UInt32BitsToSingle(BitConverter.SingleToUInt32Bits(f) | ((bits & 0x8000) << 16));
    }

    /// <summary><see cref="ToFloat(Half)"/> of 4 halves (their bits in the low 16 bits of each lane), the same operations lane by lane, so the same floats.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> ToFloat(Vector128<uint> bits)
    {
        var mag = (bits & Vector128.Create(0x7FFFu)) << 13;
        var sub = Vector128.LessThan(mag.AsInt32(), Vector128.Create(0x0080_0000)).AsUInt32();   // mag < 2^28: the signed compare is the unsigned one
        var f = (mag + Vector128.Create(0x3800_0000u) + (sub & Vector128.Create(0x0080_0000u))).AsSingle()
              - (sub & Vector128.Create(0x3880_0000u)).AsSingle();
        return (f.AsUInt32() | ((bits & Vector128.Create(0x8000u)) << 16)).AsSingle();
    }
}
