using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using DeepSeekCpu.Hub;

namespace DeepSeekCpu.Cli;

/// <summary>Models by name (issue 9): pull, list and rm over the Hugging Face cache, and MODEL arguments resolved
/// through it.</summary>
internal static partial class Commands
{
    /// <summary>The hub settings (HF_HOME, HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE); tests replace it.</summary>
    internal static Func<HubOptions> HubSettings { get; set; } = HubOptions.FromEnvironment;

    /// <summary>A MODEL argument as a local path: an existing path as is, a repo id from the cache (downloaded first,
    /// with progress on stderr).</summary>
    internal static string ModelPath(string modelArg)
    {
        var progress = ProgressView.Download(modelArg, out var end);
        try { return new ModelLocator(HubSettings()).ResolvePath(modelArg, progress); }
        finally { end(); }
    }

    private static Command PullCommand() => ModelCommand("pull", "download a model into the cache", "org/repo, org/repo@revision or org/repo:QUANT", Pull);
    private static Command ListCommand() => Cmd("list", "cached models (name, revision, size, format)", _ => List());
    private static Command RemoveCommand() => ModelCommand("rm", "delete a cached model (all revisions)", "org/repo", Remove);

    /// <summary>A command with one MODEL argument.</summary>
    private static Command ModelCommand(string name, string description, string forms, Func<string, int> body)
    {
        var model = new Argument<string>("MODEL") { Description = forms };
        var c = new Command(name, description) { model };
        c.SetAction(p => body(p.GetValue(model)!));
        return c;
    }

    private static int Pull(string model)
    {
        var locator = new ModelLocator(HubSettings());
        var progress = ProgressView.Download(model, out var end);
        ResolvedModel got;
        try { got = locator.Pull(ModelReference.Parse(model), progress); }
        finally { end(); }
        Console.Error.WriteLine($"{got.Reference} at {got.Commit[..Math.Min(12, got.Commit.Length)]}: {got.Selection.Files.Count} files, {got.Selection.Format.ToString().ToLowerInvariant()}");
        Console.WriteLine(got.Path);
        return 0;
    }

    private static int List()
    {
        var settings = HubSettings();
        var rows = new List<string[]> { new[] { "NAME", "REVISION", "SIZE", "FORMAT" } };
        foreach (var repo in new ModelLocator(settings).List())
            foreach (var snap in repo.Snapshots)
            {
                string dir = Path.Combine(repo.Folder, "snapshots", snap.Commit);
                long size = snap.Files.Sum(f => { var fi = new FileInfo(Path.Combine(dir, f)); return fi.Exists ? ((FileInfo?)fi.ResolveLinkTarget(true) ?? fi).Length : 0; });
                string rev = snap.Commit[..Math.Min(12, snap.Commit.Length)] + (snap.Refs.Count > 0 ? $" ({string.Join(", ", snap.Refs)})" : "");
                rows.Add([repo.Repo, rev, Bytes.Format(size), Format(snap.Files)]);
            }
        if (rows.Count == 1) { Console.Error.WriteLine($"no models in {settings.CacheDir}"); return 0; }
        int[] widths = Enumerable.Range(0, 4).Select(c => rows.Max(r => r[c].Length)).ToArray();
        foreach (var r in rows) Console.WriteLine(string.Join("  ", r.Select((v, c) => c == 3 ? v : v.PadRight(widths[c]))).TrimEnd());
        return 0;
    }

    // What a snapshot holds: safetensors, or GGUF with the quant tags present.
    private static string Format(IReadOnlyList<string> files)
    {
        if (files.Any(f => f.EndsWith(".safetensors", StringComparison.Ordinal))) return "safetensors";
        var ggufs = files.Where(f => f.EndsWith(".gguf", StringComparison.OrdinalIgnoreCase)).ToList();
        if (ggufs.Count > 0) return "gguf " + string.Join(",", FileSelection.Tags(ggufs));
        return "other";
    }

    private static int Remove(string model)
    {
        var r = ModelReference.Parse(model);
        var locator = new ModelLocator(HubSettings());
        string dir = locator.Cache.RepoDir(r.Repo);
        long size = Directory.Exists(Path.Combine(dir, "blobs")) ? Directory.EnumerateFiles(Path.Combine(dir, "blobs")).Sum(f => new FileInfo(f).Length) : 0;
        if (!locator.Remove(r)) throw new HubException($"{r.Repo}: not in the cache {locator.Options.CacheDir}");
        Console.Error.WriteLine($"removed {r.Repo} ({Bytes.Format(size)}, all revisions)");
        return 0;
    }
}

/// <summary>
/// Download progress as text: on a terminal one line redrawn in place (carriage return), when piped a plain line
/// every <see cref="PipedInterval"/> and at the end, so logs stay readable.
/// </summary>
internal sealed class ProgressLine(TextWriter w, bool interactive) : IProgress<DownloadProgress>
{
    public static readonly TimeSpan PipedInterval = TimeSpan.FromSeconds(10);
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private TimeSpan? _last;
    private int _width;

    public void Report(DownloadProgress p)
    {
        string line = Describe(p);
        lock (this)
        {
            if (interactive)
            {
                w.Write("\r" + line.PadRight(_width));
                _width = line.Length;
                if (p.Finished) w.WriteLine();
            }
            else if (p.Finished || _last == null || _clock.Elapsed - _last >= PipedInterval)
            {
                w.WriteLine(line);
                _last = _clock.Elapsed;
            }
            w.Flush();
        }
    }

    internal static string Describe(DownloadProgress p)
    {
        var inv = CultureInfo.InvariantCulture;
        double share = p.BytesTotal > 0 ? 100.0 * p.BytesDone / p.BytesTotal : 100;
        string speed = p.BytesPerSecond > 0 ? Bytes.Format((long)p.BytesPerSecond) + "/s" : "-";
        string left = p.Finished ? "done" : p.Remaining is { } t ? Eta(t) + " left" : "";
        return string.Format(inv, "{0}: {1} / {2} ({3:F0}%)  {4}  {5}  {6}/{7} files",
            p.Model, Bytes.Format(p.BytesDone), Bytes.Format(p.BytesTotal), share, speed, left, p.FilesDone, p.FilesTotal).Replace("    ", "  ");
    }

    internal static string Eta(TimeSpan t) =>
        t.TotalHours >= 1 ? $"{(int)t.TotalHours}h{t.Minutes:D2}m" : t.TotalMinutes >= 1 ? $"{t.Minutes}m{t.Seconds:D2}s" : $"{Math.Max(1, (int)Math.Ceiling(t.TotalSeconds))}s";
}
