namespace DeepSeekCpu.Server;

/// <summary>
/// What one request may ask of the server, and how many may wait. The server faces the network: without these a
/// single client could send a 30 MB body, a megabyte-long prompt that takes a minute to tokenize, or a thousand
/// requests that queue forever. Requests beyond a limit get a 4xx (413 body too large, 408 body too slow, 400 for the
/// rest) or, when the queue is full, 503 with Retry-After; all with OpenAI's error object.
/// </summary>
internal sealed record ServerLimits
{
    /// <summary>Largest request body in bytes (Kestrel answers 413 beyond it). 4 MiB holds a full 128K-token context.</summary>
    public long MaxBodyBytes { get; init; } = 4 << 20;

    /// <summary>
    /// Prompt characters (all messages' contents together), checked before any tokenization; 0: 32 per token of the
    /// context (131,072 for 4096 tokens). Text averages about 4 characters per token, so a prompt over this would not
    /// fit anyway, and tokenizing it is what costs: byte-level BPE takes ~50 µs per character of one long word.
    /// </summary>
    public int MaxPromptChars { get; init; }

    /// <summary>Characters per context token allowed when <see cref="MaxPromptChars"/> is 0.</summary>
    public const int PromptCharsPerToken = 32;

    /// <summary>Prompt tokens; 0: the engine's context (which always bounds it).</summary>
    public int MaxPromptTokens { get; init; }

    public int MaxMessages { get; init; } = 1024;

    /// <summary>Stop strings per request (OpenAI allows 4) and characters per stop string.</summary>
    public int MaxStopStrings { get; init; } = 4;
    public int MaxStopChars { get; init; } = 256;

    /// <summary>A request that has not finished by then is cancelled: 503 if nothing was sent yet, otherwise its stream
    /// ends with finish_reason "length".</summary>
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromMinutes(10);

    /// <summary>Requests that may wait for a slot beyond the ones being served; more get 503 with Retry-After.</summary>
    public int Queue { get; init; } = 16;

    /// <summary>A body that arrives slower than this (after the grace period) is dropped with 408 (Kestrel's check).</summary>
    public double MinBodyBytesPerSecond { get; init; } = 240;
    public TimeSpan BodyGracePeriod { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>Seconds a client is told to wait (Retry-After) when the queue is full or its request timed out.</summary>
    public int RetryAfterSeconds { get; init; } = 2;

    public static ServerLimits Default { get; } = new();
}
