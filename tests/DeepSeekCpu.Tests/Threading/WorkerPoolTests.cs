using DeepSeekCpu.Threading;
using Xunit;

namespace DeepSeekCpu.Tests.Threading;

public class WorkerPoolTests
{
    private sealed class CountJob(int[] hits) : IRangeJob
    {
        public void Run(int start, int end)
        {
            for (int i = start; i < end; i++) Interlocked.Increment(ref hits[i]);
        }
    }

    private sealed class ThrowJob : IRangeJob
    {
        public void Run(int start, int end)
        {
            if (start <= 500 && 500 < end) throw new InvalidOperationException("item 500");
        }
    }

    [Theory]
    [InlineData(1, 1000, 1)]
    [InlineData(2, 1000, 16)]
    [InlineData(3, 7, 1)]
    [InlineData(4, 12345, 64)]
    public void Every_item_runs_exactly_once(int threads, int count, int grain)
    {
        using var pool = new WorkerPool(threads);
        for (int round = 0; round < 20; round++)   // back-to-back jobs, as decoding issues them
        {
            var hits = new int[count];
            pool.Run(new CountJob(hits), count, grain);
            Assert.All(hits, h => Assert.Equal(1, h));
        }
    }

    [Fact]
    public void An_exception_in_a_job_reaches_the_caller_and_the_pool_keeps_working()
    {
        using var pool = new WorkerPool(2);
        var e = Assert.Throws<InvalidOperationException>(() => pool.Run(new ThrowJob(), 1000, 10));
        Assert.Equal("item 500", e.Message);
        var hits = new int[100];
        pool.Run(new CountJob(hits), 100, 1);
        Assert.All(hits, h => Assert.Equal(1, h));
    }

    /// <summary>
    /// The default size counts physical cores. On x86 Linux /proc/cpuinfo lists each logical processor's
    /// "physical id" and "core id", an independent account of the topology the pool reads from sysfs.
    /// </summary>
    [Fact]
    public void Default_size_is_the_physical_core_count()
    {
        Assert.InRange(WorkerPool.DefaultThreads, 1, Environment.ProcessorCount);
        if (!OperatingSystem.IsLinux() || !File.Exists("/proc/cpuinfo")) return;
        var processors = File.ReadAllText("/proc/cpuinfo").Split("\n\n", StringSplitOptions.RemoveEmptyEntries);
        string? Field(string block, string name) => block.Split('\n')
            .Where(l => l.StartsWith(name, StringComparison.Ordinal) && l.Contains(':'))
            .Select(l => l[(l.IndexOf(':') + 1)..].Trim()).FirstOrDefault();
        var cores = processors.Select(p => (Package: Field(p, "physical id"), Core: Field(p, "core id"))).ToList();
        if (cores.Any(c => c.Package == null || c.Core == null) || cores.Count != Environment.ProcessorCount) return; // ARM, or an affinity mask
        Assert.Equal(cores.Distinct().Count(), WorkerPool.DefaultThreads);
    }
}
