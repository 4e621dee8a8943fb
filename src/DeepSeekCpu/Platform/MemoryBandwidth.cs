using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace DeepSeekCpu.Platform;

/// <summary>
/// A STREAM-like read-bandwidth measurement (the roofline for decoding, which streams every weight once per token):
/// each thread sums its share of a buffer much larger than the caches with wide loads; the best of several passes is
/// reported, as STREAM does, since a shared host only ever makes it slower.
/// </summary>
public static unsafe class MemoryBandwidth
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

    /// <summary>Sums 64-bit words with four independent accumulators (so the loads, not the adds, set the pace).</summary>
    private static double Sum(byte* p, long bytes)
    {
        if (Vector512.IsHardwareAccelerated)
        {
            Vector512<ulong> a0 = default, a1 = default, a2 = default, a3 = default;
            for (long i = 0; i + 256 <= bytes; i += 256)
            {
                a0 += Vector512.Load((ulong*)(p + i));
                a1 += Vector512.Load((ulong*)(p + i + 64));
                a2 += Vector512.Load((ulong*)(p + i + 128));
                a3 += Vector512.Load((ulong*)(p + i + 192));
            }
            return Vector512.Sum(a0 + a1 + a2 + a3);
        }
        if (Vector256.IsHardwareAccelerated)
        {
            Vector256<ulong> a0 = default, a1 = default, a2 = default, a3 = default;
            long i = 0;
            for (; i + 128 <= bytes; i += 128)
            {
                a0 += Vector256.Load((ulong*)(p + i));
                a1 += Vector256.Load((ulong*)(p + i + 32));
                a2 += Vector256.Load((ulong*)(p + i + 64));
                a3 += Vector256.Load((ulong*)(p + i + 96));
            }
            return Vector256.Sum(a0 + a1 + a2 + a3);
        }
        Vector128<ulong> b0 = default, b1 = default, b2 = default, b3 = default;
        for (long i = 0; i + 64 <= bytes; i += 64)
        {
            b0 += Vector128.Load((ulong*)(p + i));
            b1 += Vector128.Load((ulong*)(p + i + 16));
            b2 += Vector128.Load((ulong*)(p + i + 32));
            b3 += Vector128.Load((ulong*)(p + i + 48));
        }
        return Vector128.Sum(b0 + b1 + b2 + b3);
    }
}
