using DeepSeekCpu.Kernels;
using Xunit;

namespace DeepSeekCpu.Kernels.Tests;

/// <summary>
/// Which body runs. Meaningful only under .ci/kernels.sh, which re-runs this project with ISAs switched off and sets
/// DEEPSEEKCPU_EXPECT_PATH from /proc/cpuinfo (not from .NET), so a configuration whose intended path silently does
/// not run fails here; elsewhere there is nothing independent to compare with, and the test skips.
/// </summary>
public class KernelPathTests
{
    [Fact]
    public void Active_path_is_the_expected_one()
    {
        string? expect = Environment.GetEnvironmentVariable("DEEPSEEKCPU_EXPECT_PATH");
        TestContext.Current.SendDiagnosticMessage($"kernel path: {KernelInfo.ActivePath}");
        if (string.IsNullOrEmpty(expect)) Assert.Skip("DEEPSEEKCPU_EXPECT_PATH is not set (.ci/kernels.sh sets it per configuration)");
        Assert.Equal(expect, KernelInfo.ActivePath);
    }
}
