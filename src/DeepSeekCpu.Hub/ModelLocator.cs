namespace DeepSeekCpu.Hub;

/// <summary>A model present in the cache: what to open (<see cref="Path"/>), from which commit, in which format.</summary>
internal sealed record ResolvedModel(ModelReference Reference, string Commit, string Path, FileSelection Selection);

/// <summary>
/// Turns MODEL arguments into local paths. A path that exists wins; otherwise a repo id (org/repo[@rev][:TAG]) is
/// looked up: online, the hub says which commit the revision is and the selected files missing from the cache are
/// downloaded (several at once, resumable, verified); offline (HF_HUB_OFFLINE), or when the hub cannot be reached,
/// the cached snapshot the revision points to is used.
/// </summary>
internal sealed class ModelLocator(HubOptions options, HttpMessageHandler? handler = null)
{
    public HubOptions Options { get; } = options;
    public HfCache Cache { get; } = new(options.CacheDir);

    /// <summary>Free bytes at a folder (replaceable so tests can fill the disk).</summary>
    internal Func<string, long?> FreeSpace { get; set; } = dir =>
    {
        try { return new DriveInfo(Path.GetFullPath(dir)).AvailableFreeSpace; } catch (Exception) { return null; }
    };

    /// <summary>How downloads open their .incomplete file (tests: a full disk); null for the default.</summary>
    internal Func<string, bool, Stream>? OpenIncomplete { get; set; }

    /// <summary><see cref="ResolvePath"/> with the environment's settings (HF_HOME, HF_ENDPOINT, HF_TOKEN, HF_HUB_OFFLINE).</summary>
    public static string Resolve(string modelArg, IProgress<DownloadProgress>? progress = null) =>
        new ModelLocator(HubOptions.FromEnvironment()).ResolvePath(modelArg, progress);

    /// <summary>The local path for a MODEL argument: itself when it exists or is not a repo id (the loader then
    /// reports the missing file), else the cached model, downloaded first if needed.</summary>
    public string ResolvePath(string modelArg, IProgress<DownloadProgress>? progress = null)
    {
        if (File.Exists(modelArg) || Directory.Exists(modelArg) || !ModelReference.TryParse(modelArg, out var reference)) return modelArg;
        return Pull(reference, progress).Path;
    }

    public ResolvedModel Pull(ModelReference reference, IProgress<DownloadProgress>? progress = null, CancellationToken ct = default) =>
        PullAsync(reference, progress, ct).GetAwaiter().GetResult();

    public async Task<ResolvedModel> PullAsync(ModelReference r, IProgress<DownloadProgress>? progress = null, CancellationToken ct = default)
    {
        if (Options.Offline) return FromCache(r, "HF_HUB_OFFLINE is set");
        using var client = new HubClient(Options, handler);
        if (OpenIncomplete != null) client.OpenIncomplete = OpenIncomplete;
        RepoInfo info;
        try { info = await client.GetRepoInfoAsync(r.Repo, r.Revision, ct); }
        catch (HttpRequestException e)
        {
            // No network: what the cache holds is still usable, as with huggingface_hub.
            if (Cache.CommitFor(r.Repo, r.Revision) != null) return FromCache(r, null);
            throw new HubException($"{r}: cannot reach {new Uri(Options.Endpoint).Host} ({e.Message.Split('\n')[0]}) and it is not in the cache {Options.CacheDir}", e);
        }
        var selection = FileSelection.Select(r.ToString(), info.Files.Select(f => f.Path).ToList(), r.Tag);
        var missing = selection.Files.Where(f => !Cache.HasFile(r.Repo, info.Commit, f)).ToList();
        try
        {
            if (missing.Count > 0) await DownloadAsync(client, r, info, missing, progress, ct);
        }
        catch (HttpRequestException e)
        {
            throw new HubException($"{r}: lost the connection to {new Uri(Options.Endpoint).Host} ({e.Message.Split('\n')[0]}); run again to resume", e);
        }
        Cache.WriteRef(r.Repo, r.Revision, info.Commit);
        return Resolved(r, info.Commit, selection);
    }

    private async Task DownloadAsync(HubClient client, ModelReference r, RepoInfo info, List<string> files, IProgress<DownloadProgress>? progress, CancellationToken ct)
    {
        var sizes = info.Files.ToDictionary(f => f.Path, f => f.Size ?? 0);
        long total = files.Sum(f => sizes.GetValueOrDefault(f));
        string repoDir = Cache.RepoDir(r.Repo);
        Directory.CreateDirectory(Path.Combine(repoDir, "blobs"));
        if (FreeSpace(repoDir) is long free && free < total - PartialBytes(repoDir))
            throw new HubException($"{r}: needs {Bytes.Format(total)} but {repoDir} has {Bytes.Format(free)} free; free space or point HF_HOME at a larger disk");

        var tracker = new ProgressTracker(r.ToString(), files.Count, total, progress);
        var blobLocks = new Dictionary<string, SemaphoreSlim>();   // two paths with one blob download it once
        await Parallel.ForEachAsync(files, new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, Options.ParallelDownloads), CancellationToken = ct },
            async (path, token) =>
            {
                var meta = await client.HeadAsync(r.Repo, info.Commit, path, token);
                SemaphoreSlim gate;
                lock (blobLocks) gate = blobLocks.TryGetValue(meta.ETag, out var g) ? g : blobLocks[meta.ETag] = new SemaphoreSlim(1);
                await gate.WaitAsync(token);
                try
                {
                    string blob = Cache.BlobPath(r.Repo, meta.ETag);
                    if (File.Exists(blob)) tracker.Add(new FileInfo(blob).Length, fromNetwork: false);
                    else
                    {
                        await client.DownloadAsync(r.ToString(), meta, blob + ".incomplete", tracker.Add, token);
                        File.Move(blob + ".incomplete", blob, overwrite: true);   // atomic: the blob is complete or absent
                    }
                    Cache.Link(r.Repo, info.Commit, path, meta.ETag);
                    tracker.FileDone();
                }
                finally { gate.Release(); }
            });
        tracker.Finish();
    }

    // Bytes already in .incomplete files of this repo: they need no new space.
    private static long PartialBytes(string repoDir) =>
        Directory.EnumerateFiles(Path.Combine(repoDir, "blobs"), "*.incomplete").Sum(f => new FileInfo(f).Length);

    /// <summary>The snapshot the cache holds for a reference (no network).</summary>
    public ResolvedModel FromCache(ModelReference r, string? why)
    {
        string? commit = Cache.CommitFor(r.Repo, r.Revision);
        if (commit == null)
            throw new HubException($"{r}: not in the cache {Options.CacheDir}{(why != null ? $" and {why}" : "")}; run 'deepseek-cpu pull {r}' while online");
        var selection = FileSelection.Select(r.ToString(), Cache.SnapshotFiles(r.Repo, commit), r.Tag);
        return Resolved(r, commit, selection);
    }

    private ResolvedModel Resolved(ModelReference r, string commit, FileSelection selection)
    {
        string snapshot = Cache.SnapshotDir(r.Repo, commit);
        string path = selection.ModelPath == "" ? snapshot : Path.Combine(snapshot, selection.ModelPath.Replace('/', Path.DirectorySeparatorChar));
        return new ResolvedModel(r, commit, path, selection);
    }

    /// <summary>What the cache holds, one row per snapshot.</summary>
    public IReadOnlyList<CachedRepo> List() => Cache.Repos();

    /// <summary>Deletes a cached repo (all its revisions and files).</summary>
    public bool Remove(ModelReference r) => Cache.Remove(r.Repo);
}
