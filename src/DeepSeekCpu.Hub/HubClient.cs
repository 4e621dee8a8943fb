using System.Net;
using System.Net.Http.Headers;
using System.Security.Cryptography;
using System.Text.Json;

namespace DeepSeekCpu.Hub;

/// <summary>A repo file as the hub's API lists it: size, and for LFS files the sha256 the download must have.</summary>
internal sealed record RepoFile(string Path, long? Size, string? BlobId, string? LfsSha256);

/// <summary>A revision of a repo: the commit it resolves to and its files.</summary>
internal sealed record RepoInfo(string Repo, string Commit, IReadOnlyList<RepoFile> Files);

/// <summary>
/// What the hub's resolve endpoint says about one file (HEAD, redirects not followed): the commit (X-Repo-Commit),
/// the ETag naming the blob (X-Linked-Etag for LFS files, whose answer is a redirect to the storage URL; ETag
/// otherwise), the size (X-Linked-Size or Content-Length) and the URL to download from.
/// </summary>
internal sealed record FileMeta(string Path, string Commit, string ETag, long? Size, Uri DownloadUrl, bool IsLfs);

/// <summary>
/// The hub's HTTP API, the part huggingface_hub's downloads use: GET /api/models/{repo}/revision/{rev}?blobs=true
/// (commit sha and siblings with sizes and LFS sha256) and /{repo}/resolve/{rev}/{path} (HEAD for metadata, GET
/// with Range to download). The token is sent to the endpoint's host only, never to the storage host an LFS
/// redirect points at.
/// </summary>
internal sealed class HubClient : IDisposable
{
    private readonly HttpClient _http;
    private readonly HubOptions _options;
    private readonly Uri _endpoint;

    public HubClient(HubOptions options, HttpMessageHandler? handler = null)
    {
        _options = options;
        _endpoint = new Uri(options.Endpoint.TrimEnd('/') + "/");
        _http = new HttpClient(handler ?? new SocketsHttpHandler
        {
            AllowAutoRedirect = false,                  // redirects are followed by hand: see HeadAsync
            ConnectTimeout = TimeSpan.FromSeconds(20),
            AutomaticDecompression = DecompressionMethods.None,   // sizes and ranges count the stored bytes
        })
        { Timeout = Timeout.InfiniteTimeSpan };     // per-request timeouts below; a download may take hours
        _http.DefaultRequestHeaders.UserAgent.ParseAdd("deepseek-cpu/1.0");
    }

    public void Dispose() => _http.Dispose();

    private static readonly TimeSpan MetadataTimeout = TimeSpan.FromSeconds(30);

    public async Task<RepoInfo> GetRepoInfoAsync(string repo, string revision, CancellationToken ct = default)
    {
        var url = new Uri(_endpoint, $"api/models/{repo}/revision/{Uri.EscapeDataString(revision)}?blobs=true");
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(MetadataTimeout);
        using var resp = await SendAsync(HttpMethod.Get, url, null, HttpCompletionOption.ResponseContentRead, repo, timeout.Token, ct);
        if (!resp.IsSuccessStatusCode) throw StatusError(resp, repo, revision, null);
        try
        {
            using var doc = JsonDocument.Parse(await resp.Content.ReadAsStreamAsync(timeout.Token));
            var root = doc.RootElement;
            string sha = root.GetProperty("sha").GetString() ?? throw new HubException($"{repo}: the hub's answer has no \"sha\"");
            var files = new List<RepoFile>();
            if (root.TryGetProperty("siblings", out var siblings))
                foreach (var s in siblings.EnumerateArray())
                {
                    string? name = s.GetProperty("rfilename").GetString();
                    if (name == null) continue;
                    long? size = s.TryGetProperty("size", out var z) && z.ValueKind == JsonValueKind.Number ? z.GetInt64() : null;
                    string? blob = s.TryGetProperty("blobId", out var b) ? b.GetString() : null;
                    string? lfs = s.TryGetProperty("lfs", out var l) && l.ValueKind == JsonValueKind.Object && l.TryGetProperty("sha256", out var h) ? h.GetString() : null;
                    files.Add(new RepoFile(name, size, blob, lfs));
                }
            return new RepoInfo(repo, sha, files);
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw new HubException($"{repo}: the hub's answer for revision {revision} is not the expected JSON ({e.Message.Split('\n')[0]})");
        }
    }

    /// <summary>HEAD on the resolve URL. Relative redirects (a renamed repo) are followed; an absolute one is the
    /// LFS storage URL and becomes the download URL, as huggingface_hub does.</summary>
    public async Task<FileMeta> HeadAsync(string repo, string revision, string path, CancellationToken ct = default)
    {
        var url = ResolveUrl(repo, revision, path);
        for (int hop = 0; hop < 5; hop++)
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
            timeout.CancelAfter(MetadataTimeout);
            using var resp = await SendAsync(HttpMethod.Head, url, null, HttpCompletionOption.ResponseHeadersRead, repo, timeout.Token, ct);
            int status = (int)resp.StatusCode;
            Uri? location = resp.Headers.Location;
            if (status is >= 300 and < 400 && location != null && !location.IsAbsoluteUri)
            {
                url = new Uri(url, location);
                continue;
            }
            if (!resp.IsSuccessStatusCode && status is not (>= 300 and < 400)) throw StatusError(resp, repo, revision, path);
            string? commit = Header(resp, "X-Repo-Commit");
            string? linkedEtag = Header(resp, "X-Linked-Etag");
            string? etag = linkedEtag ?? resp.Headers.ETag?.Tag ?? Header(resp, "ETag");
            if (commit == null || etag == null)
                throw new HubException($"{repo}/{path}: the hub's answer lacks X-Repo-Commit or ETag (is HF_ENDPOINT a Hugging Face hub?)");
            long? size = long.TryParse(Header(resp, "X-Linked-Size"), out long ls) ? ls : resp.Content.Headers.ContentLength;
            return new FileMeta(path, commit, NormalizeEtag(etag), size, location != null ? new Uri(url, location) : url, linkedEtag != null);
        }
        throw new HubException($"{repo}/{path}: too many redirects from {url.Host}");
    }

    /// <summary>
    /// Downloads <paramref name="meta"/> into <paramref name="incomplete"/>, resuming from what it already holds
    /// (HTTP Range) and after each cut transfer, up to <see cref="HubOptions.Attempts"/> times. Checks the size and,
    /// for LFS files, the sha256 (their ETag); on a mismatch the partial file is deleted. <paramref name="onBytes"/>
    /// gets each count of bytes as it lands, and whether it came from the network (the part found on disk does not).
    /// </summary>
    public async Task DownloadAsync(string repo, FileMeta meta, string incomplete, Action<long, bool> onBytes, CancellationToken ct = default)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(incomplete)!);
        long have = File.Exists(incomplete) ? new FileInfo(incomplete).Length : 0;
        if (meta.Size is long size0 && have > size0) { File.Delete(incomplete); have = 0; }
        using var sha = meta.IsLfs ? IncrementalHash.CreateHash(HashAlgorithmName.SHA256) : null;
        if (have > 0)
        {
            if (sha != null) await HashExisting(sha, incomplete, ct);
            onBytes(have, false);
        }
        var buffer = new byte[1 << 20];
        for (int attempt = 1; ; attempt++)
        {
            if (meta.Size is long s && have == s) break;
            try
            {
                using var resp = await SendAsync(HttpMethod.Get, meta.DownloadUrl, have > 0 ? have : null, HttpCompletionOption.ResponseHeadersRead, repo, ct, ct);
                if (resp.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable && meta.Size == have) break;
                if (!resp.IsSuccessStatusCode) throw StatusError(resp, repo, meta.Commit, meta.Path);
                if (have > 0 && resp.StatusCode != HttpStatusCode.PartialContent)
                {
                    // The server ignored the Range: start over.
                    onBytes(-have, false);
                    have = 0;
                    sha?.GetHashAndReset();
                }
                await using var body = await resp.Content.ReadAsStreamAsync(ct);
                await using var file = OpenIncomplete(incomplete, have > 0);
                using var stall = CancellationTokenSource.CreateLinkedTokenSource(ct);
                while (true)
                {
                    stall.CancelAfter(_options.StallTimeout);
                    int n = await body.ReadAsync(buffer, stall.Token);
                    if (n == 0) break;
                    try { await file.WriteAsync(buffer.AsMemory(0, n), ct); }
                    catch (IOException e) when (HubException.IsDiskFull(e)) { throw HubException.DiskFull(incomplete, (meta.Size ?? have) - have, e); }
                    sha?.AppendData(buffer, 0, n);
                    have += n;
                    onBytes(n, true);
                }
                if (meta.Size == null || have >= meta.Size) break;
                throw new IOException($"transfer ended at byte {have} of {meta.Size}");   // cut: resume
            }
            catch (Exception e) when (attempt < _options.Attempts && !ct.IsCancellationRequested
                                      && e is HttpRequestException or OperationCanceledException or IOException && e is not HubException)
            {
                long onDisk = File.Exists(incomplete) ? new FileInfo(incomplete).Length : 0;   // resume from what reached the disk
                if (onDisk != have) onBytes(onDisk - have, false);
                have = onDisk;
                if (sha != null) { sha.GetHashAndReset(); if (have > 0) await HashExisting(sha, incomplete, ct); }
                await Task.Delay(TimeSpan.FromMilliseconds(200 * attempt), ct);
            }
            catch (Exception e) when (e is HttpRequestException or OperationCanceledException or IOException && e is not HubException && !ct.IsCancellationRequested)
            {
                throw new HubException($"{repo}/{meta.Path}: download failed after {attempt} attempts ({e.Message.Split('\n')[0]}); run again to resume", e);
            }
        }
        if (meta.Size is long expected && have != expected)
        {
            File.Delete(incomplete);
            throw new HubException($"{repo}/{meta.Path}: got {have} bytes, the hub says {expected}; the partial download was deleted");
        }
        if (sha != null)
        {
            string got = Convert.ToHexStringLower(sha.GetHashAndReset());
            if (!got.Equals(meta.ETag, StringComparison.OrdinalIgnoreCase))
            {
                File.Delete(incomplete);
                throw new HubException($"{repo}/{meta.Path}: sha256 {got} does not match the hub's {meta.ETag}; the corrupt download was deleted");
            }
        }
    }

    /// <summary>Opens the .incomplete file for writing (appending when resuming). Unbuffered: the body arrives in
    /// 1 MiB pieces, and a full disk must surface at the write, not later at a flush. Replaceable for tests.</summary>
    internal Func<string, bool, Stream> OpenIncomplete { get; set; } = (path, append) =>
        new FileStream(path, append ? FileMode.Append : FileMode.Create, FileAccess.Write, FileShare.None, bufferSize: 0);

    private static async Task HashExisting(IncrementalHash sha, string path, CancellationToken ct)
    {
        await using var f = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1 << 20);
        var buf = new byte[1 << 20];
        int n;
        while ((n = await f.ReadAsync(buf, ct)) > 0) sha.AppendData(buf, 0, n);
    }

    private Uri ResolveUrl(string repo, string revision, string path) =>
        new(_endpoint, $"{repo}/resolve/{Uri.EscapeDataString(revision)}/{string.Join('/', path.Split('/').Select(Uri.EscapeDataString))}");

    private async Task<HttpResponseMessage> SendAsync(HttpMethod method, Uri url, long? from, HttpCompletionOption completion, string repo,
                                                      CancellationToken token, CancellationToken caller)
    {
        var req = new HttpRequestMessage(method, url);
        if (from is long f) req.Headers.Range = new RangeHeaderValue(f, null);
        if (_options.Token != null && url.Host == _endpoint.Host && url.Port == _endpoint.Port)
            req.Headers.Authorization = new AuthenticationHeaderValue("Bearer", _options.Token);
        try { return await _http.SendAsync(req, completion, token); }
        catch (OperationCanceledException) when (token.IsCancellationRequested && !caller.IsCancellationRequested)
        {
            throw new HubException($"{repo}: no answer from {url.Host} within {MetadataTimeout.TotalSeconds:F0} s");
        }
        finally { req.Dispose(); }
    }

    private static string? Header(HttpResponseMessage r, string name) =>
        r.Headers.TryGetValues(name, out var v) ? v.FirstOrDefault() : r.Content.Headers.TryGetValues(name, out var c) ? c.FirstOrDefault() : null;

    // huggingface_hub strips a weak marker and the quotes: W/"abc" → abc.
    private static string NormalizeEtag(string etag) => (etag.StartsWith("W/", StringComparison.Ordinal) ? etag[2..] : etag).Trim('"');

    /// <summary>The hub's error answers, one line each (X-Error-Code says which: RepoNotFound, GatedRepo, ...).</summary>
    private HubException StatusError(HttpResponseMessage resp, string repo, string revision, string? path)
    {
        int status = (int)resp.StatusCode;
        string? code = Header(resp, "X-Error-Code");
        string what = path == null ? repo : $"{repo}/{path}";
        string host = _endpoint.Host;
        if (code == "GatedRepo" || status == 403 || status == 401 && _options.Token == null && code != "RepoNotFound" && path != null)
            return new HubException(_options.Token == null
                ? $"{repo} is gated ({status}): accept its terms on {_endpoint}{repo} and set HF_TOKEN to a token with access"
                : $"{repo}: HF_TOKEN has no access ({status}); accept the repo's terms on {_endpoint}{repo} with that account");
        if (status == 401)
            return new HubException($"{repo}: no such model on {host}, or it is private ({status}; set HF_TOKEN if it is yours)");
        if (status == 404)
            return new HubException(code switch
            {
                "RevisionNotFound" => $"{repo}: no revision '{revision}' on {host} (404)",
                "EntryNotFound" => $"{what}: no such file at revision {revision} (404)",
                _ => $"{repo}: no such model on {host} (404; check the name)",
            });
        return new HubException($"{what}: {host} answered {status} {resp.ReasonPhrase}");
    }
}
