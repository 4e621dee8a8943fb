using System.Text.RegularExpressions;

namespace DeepSeekCpu.Hub;

/// <summary>
/// The Hugging Face hub cache, in the layout huggingface_hub writes and reads, so models are shared with Python
/// tools both ways:
/// <code>
/// ROOT/models--ORG--NAME/blobs/ETAG                 file contents, named by the hub's ETag: the LFS sha256 for
///                                                   large files, the git blob sha1 for small ones
///                       blobs/ETAG.incomplete      a download in progress (resumed by either tool)
///                       snapshots/COMMIT/PATH      relative symlinks into ../../blobs/ETAG
///                       refs/REVISION              the commit a branch or tag pointed to when last fetched
/// </code>
/// </summary>
internal sealed partial class HfCache(string root)
{
    public string Root { get; } = root;

    public string RepoDir(string repo) => Path.Combine(Root, "models--" + repo.Replace("/", "--"));
    public string SnapshotDir(string repo, string commit) => Path.Combine(RepoDir(repo), "snapshots", commit);
    public string BlobPath(string repo, string etag) => Path.Combine(RepoDir(repo), "blobs", etag);

    /// <summary>The commit a revision names in the cache: refs/REVISION, or the revision itself when it is a
    /// cached commit; null when neither is there.</summary>
    public string? CommitFor(string repo, string revision)
    {
        string refFile = Path.Combine(RepoDir(repo), "refs", revision);
        if (File.Exists(refFile))
        {
            string commit = File.ReadAllText(refFile).Trim();
            if (commit.Length > 0 && Directory.Exists(SnapshotDir(repo, commit))) return commit;
        }
        return CommitPattern().IsMatch(revision) && Directory.Exists(SnapshotDir(repo, revision)) ? revision : null;
    }

    /// <summary>Records that <paramref name="revision"/> points at <paramref name="commit"/> (not done for a commit itself).</summary>
    public void WriteRef(string repo, string revision, string commit)
    {
        if (revision == commit) return;
        string refFile = Path.Combine(RepoDir(repo), "refs", revision);
        Directory.CreateDirectory(Path.GetDirectoryName(refFile)!);
        string tmp = refFile + "." + Environment.ProcessId + ".tmp";
        File.WriteAllText(tmp, commit);   // no newline, as huggingface_hub writes it
        File.Move(tmp, refFile, overwrite: true);
    }

    /// <summary>True when the snapshot holds <paramref name="path"/> and its link leads to a file.</summary>
    public bool HasFile(string repo, string commit, string path) => File.Exists(Path.Combine(SnapshotDir(repo, commit), path));

    /// <summary>Every file of a snapshot, '/'-separated and relative to it.</summary>
    public IReadOnlyList<string> SnapshotFiles(string repo, string commit)
    {
        string dir = SnapshotDir(repo, commit);
        if (!Directory.Exists(dir)) return [];
        return Directory.EnumerateFiles(dir, "*", new EnumerationOptions { RecurseSubdirectories = true, AttributesToSkip = 0 })
            .Select(f => Path.GetRelativePath(dir, f).Replace(Path.DirectorySeparatorChar, '/')).Order(StringComparer.Ordinal).ToList();
    }

    /// <summary>Makes snapshots/COMMIT/PATH a relative link to blobs/ETAG (a copy where links cannot be made).</summary>
    public void Link(string repo, string commit, string path, string etag)
    {
        string link = Path.Combine(SnapshotDir(repo, commit), path.Replace('/', Path.DirectorySeparatorChar));
        string blob = BlobPath(repo, etag);
        Directory.CreateDirectory(Path.GetDirectoryName(link)!);
        if (File.Exists(link) || new FileInfo(link).LinkTarget != null) File.Delete(link);
        try { File.CreateSymbolicLink(link, Path.GetRelativePath(Path.GetDirectoryName(link)!, blob)); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or PlatformNotSupportedException)
        {
            File.Copy(blob, link, overwrite: true);   // huggingface_hub does the same on filesystems without symlinks
        }
    }

    /// <summary>The cached repos: name, snapshots (with the refs pointing at each) and the bytes their blobs take.</summary>
    public IReadOnlyList<CachedRepo> Repos()
    {
        if (!Directory.Exists(Root)) return [];
        var list = new List<CachedRepo>();
        foreach (var dir in Directory.EnumerateDirectories(Root, "models--*").Order(StringComparer.Ordinal))
        {
            string[] parts = Path.GetFileName(dir)["models--".Length..].Split("--");
            if (parts.Length != 2) continue;
            string repo = parts[0] + "/" + parts[1];
            string blobs = Path.Combine(dir, "blobs");
            long size = Directory.Exists(blobs)
                ? Directory.EnumerateFiles(blobs).Where(f => !f.EndsWith(".incomplete", StringComparison.Ordinal)).Sum(f => new FileInfo(f).Length) : 0;
            var refs = new Dictionary<string, List<string>>();
            string refsDir = Path.Combine(dir, "refs");
            if (Directory.Exists(refsDir))
                foreach (var f in Directory.EnumerateFiles(refsDir, "*", SearchOption.AllDirectories))
                {
                    string commit = File.ReadAllText(f).Trim();
                    if (!refs.TryGetValue(commit, out var names)) refs[commit] = names = [];
                    names.Add(Path.GetRelativePath(refsDir, f).Replace(Path.DirectorySeparatorChar, '/'));
                }
            string snaps = Path.Combine(dir, "snapshots");
            var snapshots = Directory.Exists(snaps)
                ? Directory.EnumerateDirectories(snaps).Select(s => Path.GetFileName(s)!)
                    .Select(c => new CachedSnapshot(c, refs.GetValueOrDefault(c) ?? [], SnapshotFiles(repo, c))).ToList()
                : [];
            list.Add(new CachedRepo(repo, dir, size, snapshots));
        }
        return list;
    }

    /// <summary>Deletes a repo's folder (blobs, snapshots, refs) and huggingface_hub's lock folder for it.</summary>
    public bool Remove(string repo)
    {
        string dir = RepoDir(repo);
        if (!Directory.Exists(dir)) return false;
        Directory.Delete(dir, recursive: true);
        string locks = Path.Combine(Root, ".locks", Path.GetFileName(dir));
        if (Directory.Exists(locks)) Directory.Delete(locks, recursive: true);
        return true;
    }

    [GeneratedRegex("^[0-9a-f]{40}$")]
    private static partial Regex CommitPattern();
}

internal sealed record CachedSnapshot(string Commit, IReadOnlyList<string> Refs, IReadOnlyList<string> Files);

internal sealed record CachedRepo(string Repo, string Folder, long SizeOnDisk, IReadOnlyList<CachedSnapshot> Snapshots);
