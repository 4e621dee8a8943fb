using System.Diagnostics;
using DeepSeekCpu.Formats;
using DeepSeekCpu.Platform;

namespace DeepSeekCpu.Bench;

/// <summary>
/// `mmap FILE [--threads N] [--passes N]`: read bandwidth of a memory-mapped file under each memory advice, each on a
/// fresh mapping, against the same bytes copied into anonymous memory. Prints GB/s per pass and the page faults taken.
/// Create a test file with e.g. `head -c 1536M /dev/urandom > /tmp/weights.bin`.
/// </summary>
internal static unsafe class MmapBench
{
    public static int Run(string[] args)
    {
        if (args.Length == 0) { Console.Error.WriteLine("usage: mmap FILE [--threads N] [--passes N]"); return 2; }
        string path = args[0];
        int threads = Arg(args, "--threads", Environment.ProcessorCount), passes = Arg(args, "--passes", 5);
        Console.WriteLine($"{path}: {new FileInfo(path).Length / 1e9:F2} GB, {threads} threads, {passes} passes; anonymous-memory reference {MemoryBandwidth.Measure(threads, 1L << 30):F1} GB/s");
        int idle = Arg(args, "--idle", 0);
        if (idle > 0) return Idle(path, threads, idle);
        foreach (var mode in new[] { "plain", "willneed", "populate", "hugepage+populate", "mlock", "copy-anon-huge", "read-anon-huge", "plain" })
        {
            using var f = MappedFile.Open(path);
            byte* p = f.Pointer;
            long n = f.Length;
            var (min0, maj0) = Faults();
            var sw = Stopwatch.StartNew();
            bool ok = true;
            Weights.NativeBuffer? copy = null;
            switch (mode)
            {
                case "willneed": ok = MemoryAdvice.WillNeed(p, n); break;
                case "populate": ok = MemoryAdvice.PopulateRead(p, n); break;
                case "hugepage+populate": ok = MemoryAdvice.HugePages(p, n) & MemoryAdvice.PopulateRead(p, n); break;
                case "mlock": ok = MemoryAdvice.Lock(p, n); break;
                case "copy-anon-huge": copy = MemoryAdvice.CopyToAnonymous(p, n); p = copy.Pointer; break;
                case "read-anon-huge": copy = MemoryAdvice.ReadFileToAnonymous(path); p = copy.Pointer; break;
            }
            double setup = sw.Elapsed.TotalSeconds;
            var (minS, majS) = Faults();
            var line = $"{mode,-18} advice {(ok ? "ok " : "REFUSED")} setup {setup,5:F2}s ({minS - min0} faults)  GB/s:";
            for (int i = 0; i < passes; i++) line += $" {MemoryBandwidth.Measure(p, n, threads, passes: 1),5:F1}";
            var (min1, maj1) = Faults();
            Console.WriteLine($"{line}   faults while reading: minor {min1 - minS}, major {maj1 - majS}");
            copy?.Dispose();
        }
        return 0;
    }

    /// <summary>
    /// Reads the file through a plain mapping, an mlock'ed mapping and an anonymous copy, then leaves them untouched
    /// for <paramref name="seconds"/> (a proactive reclaimer such as DAMON's pageout scheme acts on memory idle for
    /// about a minute here), then reads each again: major faults and lost bandwidth show what was reclaimed.
    /// </summary>
    private static int Idle(string path, int threads, int seconds)
    {
        using var plain = MappedFile.Open(path);
        using var locked = MappedFile.Open(path);
        long n = plain.Length;
        bool lockOk = MemoryAdvice.Lock(locked.Pointer, n);
        using var copy = MemoryAdvice.CopyToAnonymous(plain.Pointer, n);
        var targets = new (string Name, nint P)[] { ("plain mmap", (nint)plain.Pointer), ($"mlock mmap ({(lockOk ? "locked" : "REFUSED")})", (nint)locked.Pointer), ("anonymous copy", (nint)copy.Pointer) };
        foreach (var (name, p) in targets) MemoryBandwidth.Measure((byte*)p, n, threads, passes: 2);
        Console.WriteLine($"all read; idle {seconds}s ...");
        Thread.Sleep(seconds * 1000);
        foreach (var (name, p) in targets)
        {
            var (min0, maj0) = Faults();
            double first = MemoryBandwidth.Measure((byte*)p, n, threads, passes: 1);
            var (min1, maj1) = Faults();
            double second = MemoryBandwidth.Measure((byte*)p, n, threads, passes: 1);
            Console.WriteLine($"{name,-24} after idle: {first,5:F1} GB/s (minor faults {min1 - min0}, major {maj1 - maj0}), then {second,5:F1} GB/s");
        }
        return 0;
    }

    /// <summary>Minor and major page faults of this process so far (/proc/self/stat fields 10 and 12).</summary>
    private static (long Minor, long Major) Faults()
    {
        try
        {
            var s = File.ReadAllText("/proc/self/stat");
            var f = s[(s.LastIndexOf(')') + 2)..].Split(' ');
            return (long.Parse(f[7]), long.Parse(f[9]));
        }
        catch { return (0, 0); }
    }

    private static int Arg(string[] args, string name, int def)
    {
        int i = Array.IndexOf(args, name);
        return i >= 0 && i + 1 < args.Length ? int.Parse(args[i + 1]) : def;
    }
}
