using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace DeepSeekCpu.Kernels;

/// <summary>The instruction-set body every kernel entry dispatches to on this process (decided once).</summary>
internal enum KernelPath
{
    /// <summary>The scalar reference (the specification); also what runs with hardware intrinsics switched off.</summary>
    Scalar,
    /// <summary>x86 AVX2 + FMA, int8 dot products with vpmaddubsw/vpmaddwd.</summary>
    Avx2,
    /// <summary>x86 AVX2 + FMA with AVX-VNNI (256-bit vpdpbusd) for the int8 dot products.</summary>
    Avx2Vnni,
    /// <summary>
    /// x86 AVX-512 F/BW/VL with FMA: 512-bit bodies (int8 products via vpmaddubsw/vpmaddwd, two blocks per register).
    /// AVX-VNNI is not required (bodies that have a 256-bit VNNI flavour use it only where the CPU has it); the Q4_0
    /// body with activations in nibble order also needs AVX-512 VBMI and falls back to a plain AVX-512 body without it.
    /// </summary>
    Avx512,
    /// <summary>ARM64 AdvSimd without the dot-product extension (smull/sadalp).</summary>
    Neon,
    /// <summary>ARM64 AdvSimd with Dp (sdot).</summary>
    NeonDp,
}

internal static class KernelInfo
{
    /// <summary>Chosen from the ISAs the runtime reports, honouring DOTNET_EnableAVX512=0 and friends.</summary>
    public static KernelPath Path { get; } = Detect();

    /// <summary>"avx512", "avx2-vnni", "avx2", "neon-dp", "neon" or "scalar".</summary>
    public static string ActivePath => Name(Path);

    public static string Name(KernelPath p) => p switch
    {
        KernelPath.Avx512 => "avx512",
        KernelPath.Avx2Vnni => "avx2-vnni",
        KernelPath.Avx2 => "avx2",
        KernelPath.NeonDp => "neon-dp",
        KernelPath.Neon => "neon",
        _ => "scalar",
    };

    /// <summary>All paths this machine can run (the active one and the narrower ones), for tests and benchmarks.</summary>
    public static IReadOnlyList<KernelPath> Available { get; } = ListAvailable();

    private static KernelPath Detect()
    {
        if (Vector512.IsHardwareAccelerated && Avx512BW.IsSupported && Avx512F.VL.IsSupported && Fma.IsSupported)
            return KernelPath.Avx512;
        if (Avx2.IsSupported && Fma.IsSupported) return AvxVnni.IsSupported ? KernelPath.Avx2Vnni : KernelPath.Avx2;
        if (AdvSimd.Arm64.IsSupported) return Dp.IsSupported ? KernelPath.NeonDp : KernelPath.Neon;
        return KernelPath.Scalar;
    }

    private static List<KernelPath> ListAvailable()
    {
        var list = new List<KernelPath> { KernelPath.Scalar };
        if (Avx2.IsSupported && Fma.IsSupported) list.Add(KernelPath.Avx2);
        if (Avx2.IsSupported && Fma.IsSupported && AvxVnni.IsSupported) list.Add(KernelPath.Avx2Vnni);
        if (Detect() == KernelPath.Avx512) list.Add(KernelPath.Avx512);
        if (AdvSimd.Arm64.IsSupported) list.Add(KernelPath.Neon);
        if (AdvSimd.Arm64.IsSupported && Dp.IsSupported) list.Add(KernelPath.NeonDp);
        return list;
    }
}
