using DeepSeekCpu.Generation;
using Prometheus;

namespace DeepSeekCpu.Server;

/// <summary>
/// The server's Prometheus metrics (prometheus-net), in a registry of their own so that two servers in one process
/// (tests) never mix their counts, and without prometheus-net's default process metrics. Names follow Prometheus's
/// conventions (prometheus.io/docs/practices/naming: a unit suffix, _total on counters) and mirror what vLLM and
/// llama.cpp's server export: requests, tokens, time to first token, inter-token latency, queue, slots, KV cache.
/// </summary>
internal sealed class ServerMetrics : IEngineObserver
{
    public CollectorRegistry Registry { get; } = Metrics.NewCustomRegistry();

    private readonly Counter _requests, _promptTokens, _generatedTokens;
    private readonly Histogram _duration, _ttft, _itl;

    public ServerMetrics(ChatEngine engine)
    {
        var f = Metrics.WithCustomRegistry(Registry);
        _requests = f.CreateCounter("deepseekcpu_requests_total", "HTTP requests answered, by route and status (499: the client left).", ["route", "status"]);
        _duration = f.CreateHistogram("deepseekcpu_request_duration_seconds", "Time from a request's arrival to its last byte, by route.", ["route"],
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.001, 4, 10) });   // 1 ms .. 262 s
        _promptTokens = f.CreateCounter("deepseekcpu_prompt_tokens_total", "Prompt tokens of the requests served (a prefix reused from a slot's cache included).");
        _generatedTokens = f.CreateCounter("deepseekcpu_generation_tokens_total", "Tokens generated (reasoning included).");
        _ttft = f.CreateHistogram("deepseekcpu_time_to_first_token_seconds", "From a request's submission to the engine (its wait for a slot included) to its first token.",
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.005, 2, 14) });   // 5 ms .. 41 s
        _itl = f.CreateHistogram("deepseekcpu_inter_token_latency_seconds", "Time between two tokens of one request.",
            new HistogramConfiguration { Buckets = Histogram.ExponentialBuckets(0.001, 2, 13) });   // 1 ms .. 4.1 s
        var waiting = f.CreateGauge("deepseekcpu_requests_waiting", "Requests waiting for a free slot (the queue).");
        var busy = f.CreateGauge("deepseekcpu_slots_busy", "Slots generating or reading a prompt.");
        var slots = f.CreateGauge("deepseekcpu_slots", "Slots (--parallel).");
        var kvTokens = f.CreateGauge("deepseekcpu_kv_cache_tokens", "Tokens held in the slots' KV caches (idle slots keep theirs for prefix reuse).");
        var kvUse = f.CreateGauge("deepseekcpu_kv_cache_usage_ratio", "KV cache tokens held over the caches' capacity (slots x context), 0..1.");
        // the gauges are read from the engine when scraped, so they are never stale
        Registry.AddBeforeCollectCallback(() =>
        {
            var l = engine.Load;
            waiting.Set(l.Waiting); busy.Set(l.BusySlots); slots.Set(l.Slots);
            kvTokens.Set(l.CachedTokens); kvUse.Set(l.CacheCapacity == 0 ? 0 : (double)l.CachedTokens / l.CacheCapacity);
        });
    }

    /// <summary>One answered request; <paramref name="result"/> is set for the generation routes.</summary>
    public void Request(string route, int status, TimeSpan elapsed, GenerationResult? result)
    {
        _requests.WithLabels(route, status.ToString(System.Globalization.CultureInfo.InvariantCulture)).Inc();
        _duration.WithLabels(route).Observe(elapsed.TotalSeconds);
        if (result == null) return;
        _promptTokens.Inc(result.PromptTokens);
        _generatedTokens.Inc(result.CompletionTokens);
    }

    public void FirstToken(TimeSpan sinceSubmitted) => _ttft.Observe(sinceSubmitted.TotalSeconds);
    public void NextToken(TimeSpan sincePrevious) => _itl.Observe(sincePrevious.TotalSeconds);
}
