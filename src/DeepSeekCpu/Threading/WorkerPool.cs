namespace DeepSeekCpu.Threading;

/// <summary>A unit of parallel work: called with disjoint [start, end) ranges of [0, count).</summary>
internal interface IRangeJob
{
    void Run(int start, int end);
}

/// <summary>
/// One persistent pool of worker threads for the whole engine (ENGINEERING.md: "one persistent pool sized to
/// physical cores, partitioning rows; no allocation, no Task per matmul"). The calling thread takes part, so a
/// pool of N threads starts N-1 workers. Workers spin briefly between jobs (decode issues hundreds of small jobs per
/// token) and then sleep on an event. Jobs are objects the caller keeps, so dispatch allocates nothing.
/// Not re-entrant: a job must not call <see cref="Run"/>.
/// </summary>
internal sealed class WorkerPool : IDisposable
{
    private static WorkerPool? _shared;
    private static readonly object SharedLock = new();

    /// <summary>The engine's pool; sized at load by LoadOptions.Threads through <see cref="Configure"/> (default: <see cref="DefaultThreads"/>).</summary>
    public static WorkerPool Shared
    {
        get
        {
            if (_shared != null) return _shared;
            lock (SharedLock) return _shared ??= new WorkerPool(DefaultThreads);
        }
    }

    /// <summary>
    /// Physical cores this process may use: logical processors (affinity and cgroup quota applied by .NET) less SMT
    /// siblings, as llama.cpp's default. Decoding is memory-bound and prompt processing fills each core's vector
    /// units, so a second hardware thread per core adds contention, not speed. Linux reads the sysfs topology; other
    /// systems (or an unreadable topology) use every logical processor.
    /// </summary>
    public static int DefaultThreads { get; } = CountDefaultThreads();

    private static int CountDefaultThreads()
    {
        int logical = Environment.ProcessorCount;
        if (!OperatingSystem.IsLinux()) return logical;
        try
        {
            var cores = new HashSet<string>();
            int cpus = 0;
            foreach (var dir in Directory.EnumerateDirectories("/sys/devices/system/cpu", "cpu*"))
            {
                string topo = Path.Combine(dir, "topology");
                if (!char.IsAsciiDigit(dir[^1]) || !Directory.Exists(topo)) continue;
                cpus++;
                cores.Add(File.ReadAllText(Path.Combine(topo, "physical_package_id")).Trim() + ":" + File.ReadAllText(Path.Combine(topo, "core_id")).Trim());
            }
            if (cpus == 0 || cores.Count == 0) return logical;
            // With SMT, cpus / cores logical processors share a core; keep that ratio within what this process may use.
            int perCore = Math.Max(1, cpus / cores.Count);
            return Math.Max(1, Math.Min(logical, (logical + perCore - 1) / perCore));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { return logical; }
    }

    /// <summary>
    /// Replaces the shared pool with one of <paramref name="threads"/> threads (0 or less: <see cref="DefaultThreads"/>).
    /// Applications set the count through LoadOptions.Threads (the loader calls this); kernel benchmarks call it directly.
    /// </summary>
    internal static void Configure(int threads)
    {
        lock (SharedLock)
        {
            int n = threads > 0 ? threads : DefaultThreads;
            if (_shared?.ThreadCount == n) return;
            _shared?.Dispose();
            _shared = new WorkerPool(n);
        }
    }

    // Pure spinning before yielding: PauseSpins turns of Thread.SpinWait(PauseBatch), about 50 µs in all
    // (one turn measured at 0.8 µs on this machine's Zen 5).
    private const int PauseSpins = 64, PauseBatch = 20;

    private readonly Thread[] _threads;
    private readonly ManualResetEventSlim[] _wake;
    private readonly object _runLock = new();
    private volatile IRangeJob? _job;
    private int _count, _grain;
    private int _next;          // next chunk start, taken with Interlocked.CompareExchange
    private int _pending;       // workers still busy with the current job
    private volatile int _generation;
    private volatile bool _disposed;
    private Exception? _error;

    public int ThreadCount { get; }

    public WorkerPool(int threads)
    {
        ThreadCount = Math.Max(1, threads);
        _threads = new Thread[ThreadCount - 1];
        _wake = new ManualResetEventSlim[ThreadCount - 1];
        for (int i = 0; i < _threads.Length; i++)
        {
            _wake[i] = new ManualResetEventSlim(false, spinCount: 1);
            int id = i;
            _threads[i] = new Thread(() => WorkerLoop(id)) { IsBackground = true, Name = $"deepseek-cpu worker {i + 1}" };
            _threads[i].Start();
        }
    }

    /// <summary>
    /// Runs <paramref name="job"/> over [0, count) in chunks of at least <paramref name="grain"/> items and returns
    /// when every chunk is done. Exceptions from any thread are rethrown here.
    /// </summary>
    public void Run(IRangeJob job, int count, int grain = 1)
    {
        if (count <= 0) return;
        grain = Math.Max(1, grain);
        if (ThreadCount == 1 || count <= grain) { job.Run(0, count); return; }
        lock (_runLock)
        {
            _count = count; _grain = grain; _next = 0; _error = null;
            _job = job;
            Volatile.Write(ref _pending, _threads.Length);
            _generation++;
            foreach (var w in _wake) w.Set();
            Work();
            // The last chunks usually finish within microseconds: spin on pause instructions first. SpinWait alone
            // soon turns to sched_yield, a system call (and a hypervisor exit here) per turn.
            var spin = new SpinWait();
            for (int i = 0; Volatile.Read(ref _pending) != 0; i++)
            {
                if (i < PauseSpins) Thread.SpinWait(PauseBatch);
                else spin.SpinOnce(sleep1Threshold: -1);
            }
            _job = null;
            if (_error != null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(_error).Throw();
        }
    }

    private void Work()
    {
        var job = _job!;
        try
        {
            while (true)
            {
                // Guided self-scheduling: each grab takes 1/(2·threads) of what is left (whole grains), so chunks
                // shrink toward the end and the threads finish within about one grain of each other; a fixed
                // chunk left one thread idle for up to a chunk per dispatch (7% of decoding on V2-Lite).
                int start = Volatile.Read(ref _next);
                int left = _count - start;
                if (left <= 0) break;
                int size = Math.Max(_grain, left / (2 * ThreadCount) / _grain * _grain);
                if (Interlocked.CompareExchange(ref _next, start + size, start) != start) continue;
                job.Run(start, Math.Min(_count, start + size));
            }
        }
        catch (Exception e) { _error ??= e; Volatile.Write(ref _next, _count); }
    }

    private void WorkerLoop(int id)
    {
        int seen = 0;
        while (true)
        {
            // Spin a little for the next job (decode dispatches back to back), then sleep.
            var spin = new SpinWait();
            for (int i = 0; _generation == seen && !_disposed; i++)
            {
                if (i < PauseSpins) Thread.SpinWait(PauseBatch);
                else if (spin.Count > 200) { _wake[id].Wait(); _wake[id].Reset(); }
                else spin.SpinOnce(sleep1Threshold: -1);
            }
            if (_disposed) return;
            seen = _generation;
            Work();
            Interlocked.Decrement(ref _pending);
        }
    }

    public void Dispose()
    {
        _disposed = true;
        foreach (var w in _wake) w.Set();
        foreach (var t in _threads) t.Join();
        foreach (var w in _wake) w.Dispose();
    }
}
