namespace DeepSeekCpu.Hub;

/// <summary>
/// Where models come from and where they are kept. <see cref="FromEnvironment()"/> reads the variables Hugging Face's
/// own tools read, so both share one cache and one login.
/// </summary>
internal sealed record HubOptions
{
    /// <summary>The hub's base URL (HF_ENDPOINT; default https://huggingface.co), without a trailing slash.</summary>
    public string Endpoint { get; init; } = DefaultEndpoint;

    /// <summary>Bearer token for gated and private repos (HF_TOKEN, or the file `huggingface-cli login` writes).</summary>
    public string? Token { get; init; }

    /// <summary>Use only what is cached; never touch the network (HF_HUB_OFFLINE=1).</summary>
    public bool Offline { get; init; }

    /// <summary>The hub cache folder holding models--ORG--NAME/ (HF_HUB_CACHE, else $HF_HOME/hub).</summary>
    public string CacheDir { get; init; } = Path.Combine(DefaultHome(Environment.GetEnvironmentVariable), "hub");

    /// <summary>Files downloaded at once.</summary>
    public int ParallelDownloads { get; init; } = 4;

    /// <summary>A transfer that delivers no byte for this long is cut and resumed (counts as one attempt).</summary>
    public TimeSpan StallTimeout { get; init; } = TimeSpan.FromSeconds(60);

    /// <summary>Attempts per file (each resumes where the previous one stopped).</summary>
    public int Attempts { get; init; } = 5;

    public const string DefaultEndpoint = "https://huggingface.co";

    public static HubOptions FromEnvironment() => FromEnvironment(Environment.GetEnvironmentVariable);

    /// <summary>Reads HF_ENDPOINT, HF_TOKEN (or HUGGING_FACE_HUB_TOKEN, or $HF_HOME/token), HF_HUB_OFFLINE,
    /// HF_HUB_CACHE, HF_HOME and XDG_CACHE_HOME through <paramref name="env"/> (tests pass their own).</summary>
    public static HubOptions FromEnvironment(Func<string, string?> env)
    {
        string home = DefaultHome(env);
        string? token = NonEmpty(env("HF_TOKEN")) ?? NonEmpty(env("HUGGING_FACE_HUB_TOKEN"));
        string tokenFile = NonEmpty(env("HF_TOKEN_PATH")) ?? Path.Combine(home, "token");
        if (token == null && File.Exists(tokenFile)) token = NonEmpty(File.ReadAllText(tokenFile).Trim());
        return new HubOptions
        {
            Endpoint = (NonEmpty(env("HF_ENDPOINT")) ?? DefaultEndpoint).TrimEnd('/'),
            Token = token,
            Offline = IsTrue(env("HF_HUB_OFFLINE")),
            CacheDir = NonEmpty(env("HF_HUB_CACHE")) ?? Path.Combine(home, "hub"),
        };
    }

    // huggingface_hub's constants: HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface.
    private static string DefaultHome(Func<string, string?> env) =>
        NonEmpty(env("HF_HOME"))
        ?? Path.Combine(NonEmpty(env("XDG_CACHE_HOME")) ?? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".cache"), "huggingface");

    private static string? NonEmpty(string? s) => string.IsNullOrWhiteSpace(s) ? null : s;

    // The values huggingface_hub treats as true.
    private static bool IsTrue(string? s) => s?.Trim().ToUpperInvariant() is "1" or "ON" or "YES" or "TRUE";
}
