using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Numerics;

namespace DeepSeekCpu.Platform;

/// <summary>
/// A STREAM-like read-bandwidth measurement (the roofline for decoding, which streams every weight once per token):
/// each thread sums its share of a buffer much larger than the caches with wide loads; the best of several passes is
/// reported, as STREAM does, since a shared host only ever makes it slower.
/// </summary>
internal static unsafe class MemoryBandwidth
{
    /// <summary>Read bandwidth in GB/s (10^9 bytes/s) with <paramref name="threads"/> threads over a buffer of
    /// <paramref name="bytes"/> (default 1 GiB), best of <paramref name="passes"/>.</summary>
    public static double Measure(int threads, long bytes = 1L << 30, int passes = 5)
    {
        threads = Math.Max(1, threads);
        bytes = Math.Max(bytes / (threads * 4096L) * threads * 4096L, threads * 4096L);
        byte* buf = (byte*)NativeMemory.AlignedAlloc((nuint)bytes, 4096);
        try
        {
            new Span<byte>(buf, 1).Clear();
            for (long i = 0; i < bytes; i += 1L << 30) new Span<byte>(buf + i, (int)Math.Min(1L << 30, bytes - i)).Fill(1); // fault the pages in
            return Measure(buf, bytes, threads, passes);
        }
        finally { NativeMemory.AlignedFree(buf); }
    }

    /// <summary>Read bandwidth over existing memory (e.g. a memory-mapped file), best of <paramref name="passes"/>.</summary>
    public static double Measure(byte* data, long bytes, int threads, int passes = 3)
    {
        long share = bytes / threads / 64 * 64;
        double best = 0;
        var results = new double[threads];
        for (int p = 0; p < passes; p++)
        {
            using var start = new Barrier(threads + 1);
            var workers = new Thread[threads];
            for (int t = 0; t < threads; t++)
            {
                int id = t;
                workers[t] = new Thread(() =>
                {
                    start.SignalAndWait();
                    results[id] = Sum(data + id * share, share);
                }) { IsBackground = true };
                workers[t].Start();
            }
            start.SignalAndWait();
            var sw = Stopwatch.StartNew();
            foreach (var w in workers) w.Join();
            double gbs = share * threads / sw.Elapsed.TotalSeconds / 1e9;
            best = Math.Max(best, gbs);
        }
        return best;
    }

    /// <summary>
    /// Sums 64-bit words with four independent accumulators (so the loads, not the adds, set the pace), at
    /// <see cref="Vector{T}"/>'s width: any SIMD width saturates the memory bus, so one loop serves every ISA.
    /// </summary>
    private static double Sum(byte* p, long bytes)
    {
        int w = Vector<byte>.Count;
        Vector<ulong> a0 = default, a1 = default, a2 = default, a3 = default;
        for (long i = 0; i + 4 * w <= bytes; i += 4 * w)
        {
            a0 += Vector.Load((ulong*)(p + i));
            a1 += Vector.Load((ulong*)(p + i + w));
            a2 += Vector.Load((ulong*)(p + i + 2 * w));
            a3 += Vector.Load((ulong*)(p + i + 3 * w));
        }
        return Vector.Sum(a0 + a1 + a2 + a3);
    }
}
