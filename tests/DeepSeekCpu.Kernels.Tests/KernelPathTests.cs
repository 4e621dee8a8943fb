using System.Runtime.InteropServices;
using DeepSeekCpu.Kernels;
using Xunit;

namespace DeepSeekCpu.Kernels.Tests;

/// <summary>
/// Which body runs, against what the CPU's flags in /proc/cpuinfo imply (read here, not from .NET): a machine whose
/// intended path silently does not run fails. .ci/kernels.sh re-runs this project with ISAs switched off and says
/// the path it expects in DEEPSEEKCPU_EXPECT_PATH (its rule is the one below); under qemu /proc/cpuinfo is the host's,
/// so there only that variable counts.
/// </summary>
public class KernelPathTests
{
    [Fact]
    public void Active_path_is_the_one_the_cpu_flags_imply()
    {
        string? expect = Environment.GetEnvironmentVariable("DEEPSEEKCPU_EXPECT_PATH");
        if (string.IsNullOrEmpty(expect)) expect = FromCpuInfo();
        TestContext.Current.SendDiagnosticMessage($"kernel path: {KernelInfo.ActivePath}, expected {expect ?? "(unknown)"}");
        if (expect == null) Assert.Skip("no /proc/cpuinfo flags for this architecture, or ISA switches set without DEEPSEEKCPU_EXPECT_PATH");
        Assert.Equal(expect, KernelInfo.ActivePath);
        Assert.Contains(KernelInfo.Path, KernelInfo.Available);
    }

    /// <summary>The path /proc/cpuinfo implies when no DOTNET_Enable*/PreferredVectorBitWidth switch is set, else null.</summary>
    private static string? FromCpuInfo()
    {
        foreach (System.Collections.DictionaryEntry e in Environment.GetEnvironmentVariables())
        {
            string name = (string)e.Key;
            if (name.StartsWith("DOTNET_Enable", StringComparison.OrdinalIgnoreCase) || name.Equals("DOTNET_PreferredVectorBitWidth", StringComparison.OrdinalIgnoreCase))
                return null;
        }
        if (!File.Exists("/proc/cpuinfo")) return null;
        string[] lines = File.ReadAllLines("/proc/cpuinfo");
        HashSet<string>? Words(string key) => lines.FirstOrDefault(l => l.StartsWith(key, StringComparison.Ordinal))?
            .Split(':', 2)[1].Split(' ', StringSplitOptions.RemoveEmptyEntries).ToHashSet();
        switch (RuntimeInformation.ProcessArchitecture)
        {
            case Architecture.X64:
                var flags = Words("flags");
                if (flags == null) return null;
                if (!flags.Contains("avx2") || !flags.Contains("fma")) return "scalar";
                if (flags.Contains("avx512bw") && flags.Contains("avx512vl")) return "avx512";   // AVX-VNNI not required
                return flags.Contains("avx_vnni") ? "avx2-vnni" : "avx2";
            case Architecture.Arm64:
                var features = Words("Features");
                if (features == null || !features.Contains("asimd")) return null;   // e.g. under qemu: the host's flags
                return features.Contains("asimddp") ? "neon-dp" : "neon";
            default:
                return null;
        }
    }
}
