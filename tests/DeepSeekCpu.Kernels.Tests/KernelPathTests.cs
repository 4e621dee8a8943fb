using DeepSeekCpu.Kernels;
using Xunit;

namespace DeepSeekCpu.Kernels.Tests;

/// <summary>
/// Which body runs. .ci/kernels.sh re-runs this project with ISAs switched off and sets DEEPSEEKCPU_EXPECT_PATH, so a
/// configuration whose intended path silently does not run fails here.
/// </summary>
public class KernelPathTests
{
    [Fact]
    public void Active_path_is_the_expected_one()
    {
        string? expect = Environment.GetEnvironmentVariable("DEEPSEEKCPU_EXPECT_PATH");
        string active = KernelInfo.ActivePath;
        TestContext.Current.SendDiagnosticMessage($"kernel path: {active}");
        Assert.Contains(active, new[] { "avx512", "avx2-vnni", "avx2", "neon-dp", "neon", "scalar" });
        if (!string.IsNullOrEmpty(expect)) Assert.Equal(expect, active);
        Assert.Contains(KernelInfo.Path, KernelInfo.Available);
    }
}
