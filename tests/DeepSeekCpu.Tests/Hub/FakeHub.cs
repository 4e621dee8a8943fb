using System.Collections.Concurrent;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;

namespace DeepSeekCpu.Tests.Hub;

/// <summary>
/// A Hugging Face hub on 127.0.0.1 that answers as huggingface.co does (checked against huggingface_hub's client,
/// file_download.py and hf_api.py): GET /api/models/{org}/{name}/revision/{rev}?blobs=true gives the commit "sha"
/// and "siblings" (rfilename, size, blobId, lfs.sha256); HEAD/GET /{org}/{name}/resolve/{rev}/{path} answers small
/// files itself (ETag = git blob sha1) and redirects LFS files to a storage URL (302 with X-Linked-Etag = sha256,
/// X-Linked-Size), always with X-Repo-Commit; errors carry X-Error-Code (RepoNotFound, RevisionNotFound,
/// EntryNotFound, GatedRepo). Storage answers Range requests with 206. Knobs cut or corrupt a transfer.
/// </summary>
public sealed class FakeHub : IAsyncDisposable
{
    public sealed class Repo
    {
        public string Commit = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(20));
        public Dictionary<string, byte[]> Files = new();
        public bool Gated;
        /// <summary>Files at or above this size are LFS (the hub's rule is by .gitattributes; size is enough here).</summary>
        public int LfsThreshold = 1024;
        public bool IsLfs(string path) => Files[path].Length >= LfsThreshold;
    }

    public const string GoodToken = "hf_test_token";
    public ConcurrentDictionary<string, Repo> Repos { get; } = new();
    /// <summary>Every request: "METHOD path-and-query [Range]".</summary>
    public ConcurrentQueue<string> Log { get; } = new();
    /// <summary>Storage cuts the connection after this many bytes of the next GET of a blob (once per sha).</summary>
    public ConcurrentDictionary<string, long> CutOnce { get; } = new();
    /// <summary>Storage serves these blobs (by sha256) with one byte flipped.</summary>
    public ConcurrentDictionary<string, bool> Corrupt { get; } = new();
    /// <summary>Storage cuts every GET of these blobs after this many bytes of the body.</summary>
    public ConcurrentDictionary<string, long> CutAlways { get; } = new();

    /// <summary>Pause between 4 KiB pieces of a storage body (so concurrent transfers overlap measurably).</summary>
    public TimeSpan ChunkDelay { get; set; }
    /// <summary>The most storage transfers seen in flight at once.</summary>
    public int MaxInFlight => _maxInFlight;
    private int _inFlight, _maxInFlight;

    private readonly WebApplication _app;
    public string Url { get; }

    private FakeHub(WebApplication app) { _app = app; Url = app.Urls.First().TrimEnd('/'); }

    public static async Task<FakeHub> Start()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        FakeHub? hub = null;
        app.Run(ctx => hub!.Handle(ctx));
        await app.StartAsync();
        hub = new FakeHub(app);
        return hub;
    }

    public async ValueTask DisposeAsync() { await _app.StopAsync(); await _app.DisposeAsync(); }

    public static string Sha256(byte[] b) => Convert.ToHexStringLower(SHA256.HashData(b));
    public static string GitBlobSha1(byte[] b) =>
        Convert.ToHexStringLower(SHA1.HashData([.. Encoding.ASCII.GetBytes($"blob {b.Length}\0"), .. b]));

    private async Task Handle(HttpContext ctx)
    {
        var req = ctx.Request;
        string path = Uri.UnescapeDataString(req.Path.Value ?? "");
        Log.Enqueue($"{req.Method} {req.Path}{req.QueryString} {req.Headers.Range}".TrimEnd());
        var res = ctx.Response;
        string[] parts = path.Trim('/').Split('/');

        if (parts is ["cdn", var sha])
        {
            var (repoName, file) = Repos.SelectMany(r => r.Value.Files.Select(f => (r.Key, f))).FirstOrDefault(x => Sha256(x.f.Value) == sha);
            if (repoName == null) { res.StatusCode = 404; return; }
            await Serve(ctx, file.Value, sha, isStorage: true);
            return;
        }
        if (parts.Length >= 6 && parts[0] == "api" && parts[1] == "models" && parts[4] == "revision")
        {
            string name = parts[2] + "/" + parts[3], rev = string.Join('/', parts[5..]);
            if (!Repos.TryGetValue(name, out var repo)) { Error(res, 404, "RepoNotFound"); return; }
            if (rev != "main" && rev != repo.Commit) { Error(res, 404, "RevisionNotFound"); return; }
            res.ContentType = "application/json";
            await res.WriteAsync(JsonSerializer.Serialize(new
            {
                id = name, sha = repo.Commit, gated = repo.Gated ? "manual" : (object)false,
                siblings = repo.Files.OrderBy(f => f.Key, StringComparer.Ordinal).Select(f => new
                {
                    rfilename = f.Key, size = f.Value.Length, blobId = GitBlobSha1(f.Value),
                    lfs = repo.IsLfs(f.Key) ? new { sha256 = Sha256(f.Value), size = f.Value.Length, pointerSize = 134 } : null,
                }),
            }));
            return;
        }
        if (parts.Length >= 5 && parts[2] == "resolve")
        {
            string name = parts[0] + "/" + parts[1], rev = parts[3], file = string.Join('/', parts[4..]);
            if (!Repos.TryGetValue(name, out var repo)) { Error(res, 404, "RepoNotFound"); return; }
            if (repo.Gated && req.Headers.Authorization != $"Bearer {GoodToken}")
            {
                Error(res, req.Headers.Authorization.Count == 0 ? 401 : 403, "GatedRepo");
                return;
            }
            if (rev != "main" && rev != repo.Commit) { Error(res, 404, "RevisionNotFound"); return; }
            if (!repo.Files.TryGetValue(file, out var bytes)) { Error(res, 404, "EntryNotFound"); return; }
            res.Headers["X-Repo-Commit"] = repo.Commit;
            if (repo.IsLfs(file))
            {
                string lfsSha = Sha256(bytes);
                res.StatusCode = 302;
                res.Headers.Location = $"{Url}/cdn/{lfsSha}";
                res.Headers["X-Linked-Etag"] = $"\"{lfsSha}\"";
                res.Headers["X-Linked-Size"] = bytes.Length.ToString();
                res.Headers.ETag = $"\"{GitBlobSha1(Encoding.ASCII.GetBytes("version https://git-lfs.github.com/spec/v1"))}\"";
                return;
            }
            await Serve(ctx, bytes, GitBlobSha1(bytes), isStorage: false);
            return;
        }
        res.StatusCode = 404;
    }

    private static void Error(HttpResponse res, int status, string code)
    {
        res.StatusCode = status;
        res.Headers["X-Error-Code"] = code;
    }

    private async Task Serve(HttpContext ctx, byte[] bytes, string etag, bool isStorage)
    {
        var res = ctx.Response;
        res.Headers.ETag = $"\"{etag}\"";
        res.Headers.AcceptRanges = "bytes";
        long from = 0;
        string? range = ctx.Request.Headers.Range.FirstOrDefault();
        if (range != null && range.StartsWith("bytes=") && range.EndsWith('-') && long.TryParse(range[6..^1], out from))
        {
            if (from >= bytes.Length) { res.StatusCode = 416; return; }
            res.StatusCode = 206;
            res.Headers.ContentRange = $"bytes {from}-{bytes.Length - 1}/{bytes.Length}";
        }
        res.ContentLength = bytes.Length - from;
        if (HttpMethods.IsHead(ctx.Request.Method)) return;
        byte[] body = bytes;
        if (isStorage && Corrupt.ContainsKey(etag)) { body = (byte[])bytes.Clone(); body[body.Length / 2] ^= 0xFF; }
        long end = bytes.Length;
        if (isStorage && (CutOnce.TryRemove(etag, out long cutAt) || CutAlways.TryGetValue(etag, out cutAt))) end = Math.Min(end, from + cutAt);
        // In pieces, so a cut lands mid-body after real bytes went out.
        int now = Interlocked.Increment(ref _inFlight);
        for (int seen = _maxInFlight; now > seen; seen = _maxInFlight) Interlocked.CompareExchange(ref _maxInFlight, now, seen);
        try
        {
            for (long at = from; at < end; at += 4096)
            {
                await res.Body.WriteAsync(body.AsMemory((int)at, (int)Math.Min(4096, end - at)));
                await res.Body.FlushAsync();
                if (isStorage && ChunkDelay > TimeSpan.Zero) await Task.Delay(ChunkDelay);
            }
        }
        finally { Interlocked.Decrement(ref _inFlight); }
        if (end < bytes.Length)
        {
            // Give the client time to take the bytes out of its socket before the reset (Linux drops unread data on RST).
            await Task.Delay(300);
            ctx.Abort();
        }
    }
}
