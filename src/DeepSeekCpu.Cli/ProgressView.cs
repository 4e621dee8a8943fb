using System.Diagnostics;
using System.Globalization;
using DeepSeekCpu.Hub;
using Spectre.Console;

namespace DeepSeekCpu.Cli;

/// <summary>How far a long step has come: <see cref="Done"/> of <see cref="Total"/> bytes.</summary>
internal readonly record struct Step(long Done, long Total);

/// <summary>
/// Long steps (loading, quantizing, downloading) drawn on stderr: on a terminal a Spectre.Console progress bar with the
/// bytes done and the time left; when stderr is not a terminal, a plain line every <see cref="PipedInterval"/> once a
/// step has taken that long (a quick load prints nothing, so logs and one-line errors stay as they were) and a last
/// line when such a step ends. The engine only reports (IProgress); drawing is here.
/// </summary>
internal static class ProgressView
{
    public static readonly TimeSpan PipedInterval = TimeSpan.FromSeconds(10);

    /// <summary>Whether stderr is a terminal (tests replace it).</summary>
    internal static Func<bool> IsTerminal { get; set; } = () => !Console.IsErrorRedirected;

    /// <summary>The clock of the plain lines (tests replace it).</summary>
    internal static Func<TimeSpan> Clock { get; set; } = () => Stopwatch.GetElapsedTime(Started);
    private static readonly long Started = Stopwatch.GetTimestamp();

    /// <summary>Runs <paramref name="work"/> with its progress drawn under <paramref name="title"/>.</summary>
    public static T Run<T>(string title, Func<IProgress<Step>, T> work)
    {
        if (!IsTerminal())
        {
            var lines = new PlainLines(title, Console.Error);
            var result = work(lines);
            lines.End();
            return result;
        }
        var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
        T value = default!;
        console.Progress()
            .AutoClear(false)
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new DownloadedColumn(),
                     new RemainingTimeColumn(), new SpinnerColumn())
            .Start(ctx =>
            {
                var task = ctx.AddTask(Markup.Escape(title), maxValue: 1);
                value = work(new BarSink(task));
                task.Value = task.MaxValue;
                task.StopTask();
            });
        return value;
    }

    /// <summary>
    /// A download's progress (pull, or a MODEL given by name) in the same view. The bar appears with the first report
    /// of bytes still to come, so a model already in the cache draws nothing; <paramref name="end"/> closes it.
    /// </summary>
    public static IProgress<DownloadProgress> Download(string title, out Action end)
    {
        if (!IsTerminal())
        {
            end = () => { };
            return new ProgressLine(Console.Error, interactive: false);
        }
        var bar = new DownloadBar(title);
        end = bar.End;
        return bar;
    }

    /// <summary>A bar drawn by Spectre on a thread of its own while the download runs on the caller's.</summary>
    private sealed class DownloadBar(string title) : IProgress<DownloadProgress>
    {
        private readonly ManualResetEventSlim _finished = new();
        private ProgressTask? _task;
        private Task? _drawing;

        public void Report(DownloadProgress p)
        {
            lock (this)
            {
                if (_task == null)
                {
                    if (p.Finished) return;
                    var ready = new ManualResetEventSlim();
                    var console = AnsiConsole.Create(new AnsiConsoleSettings { Out = new AnsiConsoleOutput(Console.Error) });
                    _drawing = Task.Run(() => console.Progress().AutoClear(false)
                        .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new DownloadedColumn(),
                                 new TransferSpeedColumn(), new RemainingTimeColumn())
                        .Start(ctx =>
                        {
                            _task = ctx.AddTask(Markup.Escape(title), maxValue: 1);
                            ready.Set();
                            _finished.Wait();
                            _task.StopTask();
                        }));
                    ready.Wait();
                }
                _task!.MaxValue = Math.Max(1, p.BytesTotal);
                _task.Value = p.BytesDone;
            }
        }

        public void End()
        {
            _finished.Set();
            _drawing?.Wait();
        }
    }

    /// <summary>An IProgress that calls <paramref name="report"/> on the reporting thread (System.Progress posts to the
    /// thread pool, so reports could arrive after the step ended).</summary>
    internal sealed class Relay<T>(Action<T> report) : IProgress<T>
    {
        public void Report(T value) => report(value);
    }

    private sealed class BarSink(ProgressTask task) : IProgress<Step>
    {
        public void Report(Step s)
        {
            lock (task)
            {
                task.MaxValue = Math.Max(1, s.Total);
                task.Value = Math.Max(task.Value, Math.Min(s.Done, s.Total));   // reports from the pool may come out of order
            }
        }
    }

    /// <summary>The lines written when stderr is not a terminal.</summary>
    internal sealed class PlainLines(string title, TextWriter w) : IProgress<Step>
    {
        private readonly TimeSpan _start = Clock();
        private TimeSpan? _last;
        private Step _step;

        public void Report(Step s)
        {
            lock (this)
            {
                if (s.Done < _step.Done) return;
                _step = s;
                var now = Clock();
                if (now - (_last ?? _start) < PipedInterval) return;
                _last = now;
                w.WriteLine(Describe(title, s, now - _start));
                w.Flush();
            }
        }

        /// <summary>The closing line, only after a step long enough to have printed one.</summary>
        public void End()
        {
            lock (this)
                if (_last != null)
                    w.WriteLine(string.Format(CultureInfo.InvariantCulture, "{0}: done in {1:F0} s", title, (Clock() - _start).TotalSeconds));
        }
    }

    /// <summary>"TITLE: 1.2 GiB / 3.5 GiB (34%), 40s left": the time left from the average rate so far.</summary>
    internal static string Describe(string title, Step s, TimeSpan elapsed)
    {
        double share = s.Total > 0 ? (double)s.Done / s.Total : 0;
        string left = share > 0.001 && elapsed > TimeSpan.Zero
            ? ", " + ProgressLine.Eta(TimeSpan.FromSeconds(elapsed.TotalSeconds * (1 - share) / share)) + " left" : "";
        return string.Format(CultureInfo.InvariantCulture, "{0}: {1} / {2} ({3:F0}%){4}", title, Bytes.Format(s.Done), Bytes.Format(s.Total), 100 * share, left);
    }
}
