using System.Diagnostics;

namespace DeepSeekCpu.Generation;

/// <summary>
/// Told of every request's token timing by <see cref="ChatEngine"/>'s scheduler, for metrics (the server's
/// time-to-first-token and inter-token-latency histograms). Called on the scheduler thread between forward passes:
/// an implementation must be quick and must not throw.
/// </summary>
internal interface IEngineObserver
{
    /// <summary>A request's first sampled token: <paramref name="sinceSubmitted"/> counts its wait for a slot and its
    /// prompt, as vLLM's and llama.cpp's time to first token do.</summary>
    void FirstToken(TimeSpan sinceSubmitted);

    /// <summary>Each later token of a request: the time since its previous token.</summary>
    void NextToken(TimeSpan sincePrevious);
}

/// <summary>What the engine holds at one moment: slots taken, requests waiting for one, and the KV cache in use.</summary>
/// <param name="CachedTokens">Tokens whose keys and values the slots' caches hold (idle slots keep theirs for prefix reuse).</param>
/// <param name="CacheCapacity">Tokens all the caches can hold: slots × context.</param>
internal readonly record struct EngineLoad(int BusySlots, int Slots, int Waiting, long CachedTokens, long CacheCapacity);

public sealed partial class ChatEngine
{
    /// <summary>Receives token timings (null: none). Set it before serving.</summary>
    internal IEngineObserver? Observer { get; set; }

    /// <summary>The engine's load now (read under the scheduler's lock, so counts agree with each other).</summary>
    internal EngineLoad Load
    {
        get
        {
            lock (_lock)
            {
                int busy = 0;
                long cached = 0;
                foreach (var s in _slots)
                {
                    if (s.Job != null) busy++;
                    cached += s.Session.Position;   // an int the scheduler writes; a pass under way may be one chunk behind
                }
                return new EngineLoad(busy, _slots.Length, _waiting.Count, cached, (long)_slots.Length * ContextLength);
            }
        }
    }

    /// <summary>Reports the timing of the token about to be sampled for <paramref name="j"/> (scheduler thread).</summary>
    private void Observe(Job j)
    {
        long now = Stopwatch.GetTimestamp();
        var o = Observer;
        if (o != null)
        {
            if (j.LastToken == 0) o.FirstToken(Stopwatch.GetElapsedTime(j.Submitted, now));
            else o.NextToken(Stopwatch.GetElapsedTime(j.LastToken, now));
        }
        j.LastToken = now;
    }
}
