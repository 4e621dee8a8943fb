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
    public static Vector128<float> ToFloat(Vector128<uint> bits) => ToFloat<FloatDot.W128, Vector128<float>>(bits.AsSingle());

    /// <summary>
    /// <see cref="ToFloat(Half)"/> of TW.Count halves at once (their bits in the low 16 bits of each lane, the lanes as
    /// <see cref="FloatDot.IWidth{TVector}"/>'s integer operations see them), the same operations lane by lane, so the
    /// same floats: 16 rows' scales of an interleaved group in one 512-bit register (<see cref="Int8Tiles.UnpackLanes"/>).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static TV ToFloat<TW, TV>(TV bits) where TW : FloatDot.IWidth<TV> where TV : unmanaged
    {
        var mag = TW.ShiftLeft(TW.And(bits, 0x7FFFu), 13);
        var sub = TW.LessThan(mag, 0x0080_0000u);                                          // exponent 0: zero or subnormal
        var f = TW.Subtract(TW.AddBits(TW.AddBits(mag, TW.Bits(0x3800_0000u)), TW.And(sub, 0x0080_0000u)),
                            TW.And(sub, 0x3880_0000u));                                   // − 2^-14 (− 0 for normal halves)
        return TW.Or(f, TW.ShiftLeft(TW.And(bits, 0x8000u), 16));
    }
}
