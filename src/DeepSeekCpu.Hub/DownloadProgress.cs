using System.Diagnostics;

namespace DeepSeekCpu.Hub;

/// <summary>
/// Where a pull stands, for a front end to draw: bytes present of the total (resumed bytes count as present),
/// the transfer speed over the last few seconds and the time left at that speed (null until known).
/// </summary>
internal readonly record struct DownloadProgress(
    string Model, int FilesDone, int FilesTotal, long BytesDone, long BytesTotal, double BytesPerSecond, TimeSpan? Remaining, bool Finished);

/// <summary>Adds up the bytes of files downloading at once and reports at most every <see cref="Interval"/>.</summary>
internal sealed class ProgressTracker(string model, int filesTotal, long bytesTotal, IProgress<DownloadProgress>? sink)
{
    public static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(200);
    private static readonly TimeSpan Window = TimeSpan.FromSeconds(5);

    private readonly object _lock = new();
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private readonly Queue<(TimeSpan At, long Transferred)> _samples = new();
    private long _done, _transferred;
    private int _files;
    private TimeSpan? _lastReport;

    /// <summary>Bytes now present; <paramref name="fromNetwork"/> false for bytes found on disk (no speed).</summary>
    public void Add(long bytes, bool fromNetwork)
    {
        lock (_lock)
        {
            _done += bytes;
            if (fromNetwork) _transferred += bytes;
            ReportLocked(force: false);
        }
    }

    public void FileDone() { lock (_lock) { _files++; ReportLocked(force: true); } }

    public void Finish() { lock (_lock) ReportLocked(force: true, finished: true); }

    private void ReportLocked(bool force, bool finished = false)
    {
        var now = _clock.Elapsed;
        if (_samples.Count == 0 || now - _samples.Last().At >= Interval) _samples.Enqueue((now, _transferred));
        while (_samples.Count > 2 && now - _samples.Peek().At > Window) _samples.Dequeue();
        if (sink == null || !force && now - _lastReport < Interval) return;   // null compares false: the first report goes out
        _lastReport = now;
        var (t0, b0) = _samples.Peek();
        double seconds = (now - t0).TotalSeconds;
        double speed = seconds > 0.05 ? (_transferred - b0) / seconds : 0;
        TimeSpan? left = finished ? TimeSpan.Zero : speed > 0 ? TimeSpan.FromSeconds(Math.Max(0, bytesTotal - _done) / speed) : null;
        sink.Report(new DownloadProgress(model, _files, filesTotal, _done, bytesTotal, speed, left, finished));
    }
}
